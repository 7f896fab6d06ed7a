"""Shared fixtures. MINIFT_HOME points at one temporary cache for the whole session, so tests never read or write
a user's ~/.cache/minift and the `quick` base model is pretrained at most once per run."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(scope="session", autouse=True)
def minift_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("minift_home")
    old = os.environ.get("MINIFT_HOME")
    os.environ["MINIFT_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("MINIFT_HOME", None)
    else:
        os.environ["MINIFT_HOME"] = old


@pytest.fixture(scope="session")
def quick_base(minift_home):
    """(model, tokenizer) of the `quick` preset, pretrained once into the session cache."""
    from minift.base.cache import load_base

    return load_base("quick", progress=False)
