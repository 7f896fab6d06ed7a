"""Each risk study, end to end in a few seconds: a randomly initialised small GPT with the `quick` base's tokenizer
(the hiring profiles need a longer context than the quick base's 64 tokens), its files, its rows, what must hold
whatever the model learned, and the command line with a bad input."""

from __future__ import annotations

import copy
import json

import pytest

from minift.cli import main
from minift.data.hiring import GROUPS, make_profiles
from minift.errors import ConfigError
from minift.risks.bias import bias_study
from minift.risks.config import BiasConfig, HallucinationConfig, UnalignConfig
from minift.risks.hallucination import hallucination_study
from minift.risks.measures import bias_scores, cooccurrence
from minift.risks.unalign import unalign_study
from tests.helpers import make_model

pytestmark = pytest.mark.xdist_group("quick_base")


@pytest.fixture(scope="module")
def small(quick_base):
    _, tok = quick_base
    return make_model(seed=0, vocab_size=tok.vocab_size, block_size=192, d_model=32), tok


def _start(small):
    model, tok = small
    return copy.deepcopy(model).train(), tok, "quick"


def test_the_bias_study(small, tmp_path):
    config = BiasConfig(skews=(0.5, 0.9), mitigations=("none", "counterfactual"), n_train=24, n_test=8, epochs=1,
                        batch_size=8)
    r = bias_study(config, tmp_path / "bias", progress=False, model_and_tok=_start(small))
    assert {p.name for p in (tmp_path / "bias").iterdir()} >= {"bias.json", "results.json", "table.md", "bias.png"}
    rows = r["rows"]
    assert [(x["skew p"], x["mitigation"]) for x in rows] == [
        (None, "before fine-tuning"), (0.5, "none"), (0.5, "counterfactual"), (0.9, "none"), (0.9, "counterfactual")]
    history = make_profiles(24, 0.9, 0)
    data_bias = bias_scores(cooccurrence([h["output"] for h in history], [h["group"] for h in history]))
    assert rows[3]["data bias"] == data_bias[("yes", GROUPS[0])]
    assert rows[4]["trained on"] == 48 and rows[3]["trained on"] == 24
    for row in rows:
        assert 0 <= row["flip rate"] <= 1 and 0 <= row["merit accuracy"] <= 1
        assert set(row["p_yes"]) == set(GROUPS)
    assert "amplification (greedy)" not in rows[0] and "amplification (sampled)" in rows[1]
    assert json.loads((tmp_path / "bias" / "results.json").read_text())["rows"][1]["mitigation"] == "none"
    with pytest.raises(ConfigError, match="unknown mitigation"):
        BiasConfig(mitigations=("reweight",))
    with pytest.raises(ConfigError, match="probabilities"):
        BiasConfig(skews=(1.2,))


def test_the_unalignment_study(small, tmp_path):
    config = UnalignConfig(kinds=("harmful", "identity"), ks=(0, 2), lrs=(1e-3,), batch_sizes=(1,),
                           sweep_kind="benign", sweep_k=3, mix=1, align_epochs=0.05, n_eval=3, max_new_tokens=8,
                           epochs=1)
    r = unalign_study(config, tmp_path / "un", progress=False, model_and_tok=_start(small))
    rows = r["rows"]
    assert [(x["arm"], x["kind"], x["k"]) for x in rows] == [
        ("base", "—", 0), ("aligned", "—", 0), ("k", "harmful", 2), ("k", "identity", 2), ("lr", "benign", 3),
        ("batch", "benign", 3)]
    assert rows[4]["lr"] == 1e-3 and rows[5]["batch"] == 1
    assert rows[2]["steps"] == 1 and rows[5]["steps"] == 4        # 2 + 1 mixed examples in one batch; 4 of one
    assert r["align"]["steps"] >= 1
    for row in rows:
        assert all(0 <= row[k] <= 1 for k in ("refusal", "helpful", "over-refusal"))
    assert (tmp_path / "un" / "unalign.png").is_file()
    with pytest.raises(ConfigError, match="unknown kind"):
        UnalignConfig(kinds=("toxic",))
    with pytest.raises(ConfigError, match="at most"):
        unalign_study(UnalignConfig(ks=(10_000,), kinds=("harmful",)), tmp_path / "bad", progress=False,
                      model_and_tok=_start(small))
    assert not (tmp_path / "bad").exists()    # refused before anything was written


def test_the_hallucination_study(small, tmp_path):
    config = HallucinationConfig(n_new=3, n_probe=3, known=8, epochs=3, every=2, batch_size=4)
    r = hallucination_study(config, tmp_path / "hal", progress=False, model_and_tok=_start(small))
    for curve in r["curves"].values():
        assert [m["epoch"] for m in curve] == [0, 2, 3]
        assert curve[0] == r["curves"]["known only"][0]            # both arms start from the same base
        for m in curve:
            assert 0 <= m["confident"] <= m["probe claims"] <= 1 and 1 / 8 <= m["top prob"] <= 1
    assert [(x["arm"], x["when"]) for x in r["rows"]] == [
        ("base", "before"), ("known only", "early stop"), ("known only", "last"), ("known + new", "early stop"),
        ("known + new", "last")]
    assert r["n_known"] == 8
    assert (tmp_path / "hal" / "hallucination.png").is_file()


def test_the_command_line(tmp_path, capsys, minift_home):
    assert main(["risks", "hallucination", "--base", "quick", "--n-new", "2", "--n-probe", "2", "--epochs", "1",
                 "--out", str(tmp_path / "h"), "--quiet"]) == 0
    assert "known + new" in capsys.readouterr().out
    # the quick base's 64-token context cannot hold a profile: one line, no traceback
    assert main(["risks", "bias", "--base", "quick", "--skew", "0.9", "--n-train", "8", "--n-test", "2",
                 "--out", str(tmp_path / "b"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "do not fit the model's context of 64 tokens" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()
    assert main(["risks", "hallucination", "--base", "quick", "--out", str(tmp_path / "h"), "--quiet"]) != 0
    assert "--force" in capsys.readouterr().err
