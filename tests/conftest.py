"""Shared fixtures. MINIFT_HOME points at one temporary cache for the whole session, so tests never read or write
a user's ~/.cache/minift and the `quick` base model is pretrained at most once per run."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")

# One thread for the whole run, set once and before torch is imported (so torch never has to switch): the suite's
# models are small enough that a second thread only adds synchronisation, and subprocesses (lessons, torchrun
# workers, compare's cells) inherit it. A run that sets OMP_NUM_THREADS itself keeps its own value.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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


@pytest.fixture(scope="session")
def chat_tok():
    """A small byte-level BPE with ChatML's tokens; <|im_end|> ends a turn (the tokenizer's end-of-text)."""
    from tokenizers import AddedToken

    from minift.data.corpus import generate_corpus
    from minift.model.tokenizer import Tokenizer

    base = Tokenizer.train(generate_corpus(n_docs=300, seed=0), vocab_size=600,
                           special_tokens=["<|endoftext|>", "<|pad|>"])
    backend = base._backend
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<|im_start|>", "<|im_end|>")])
    return Tokenizer(backend, eos_token="<|im_end|>", pad_token="<|pad|>")
