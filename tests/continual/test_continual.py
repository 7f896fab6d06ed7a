"""The continual run: a penalty enters the gradient exactly once per step, replay never replays an outdated fact,
the measures on crafted answers, and short runs of every variant on the `quick` base (λ = 0 and α = 0 change
nothing; lora-merge leaves a plain model; a sweep writes its table and plot)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from minift.cli import main
from minift.continual.config import ContinualConfig
from minift.continual.measures import score_answers
from minift.continual.regularizers import l2sp_penalty
from minift.continual.run import _still_true, _with_penalty, continual
from minift.continual.sweep import continual_sweep
from minift.data.updates import current_facts, update_examples, update_stream
from minift.errors import ConfigError
from minift.finetune.sft import encode_example, sft_collate, sft_loss_fn
from minift.finetune.templates import ALPACA
from minift.training.loop import accumulate_gradients

pytestmark = pytest.mark.xdist_group("quick_base")


def test_a_penalty_adds_its_gradient_once_whatever_the_micro_batches(quick_base):
    """Two micro-batches with different supervised-token counts: the loop's Σ∇(S_k + n_k Ω) / N equals
    ∇(token mean + Ω) computed in one piece."""
    model, tok = quick_base
    model = copy.deepcopy(model).double()
    start = {n: p.detach() + 0.01 * torch.randn_like(p) for n, p in model.named_parameters()}
    penalty = lambda params: l2sp_penalty(params, start, alpha=3.0)  # noqa: E731
    examples = [{"instruction": "How much is the lamp now?", "output": "23 dollars."},
                {"instruction": "Which town is Ashford near?", "output": "Millbrook, the town by the river."},
                {"instruction": "Hi", "output": "Hello."}]
    enc = [encode_example(tok, ex, ALPACA, 64) for ex in examples]
    collate = sft_collate(tok.pad_id)
    batches = [collate(enc[:1]), collate(enc[1:])]
    model.zero_grad(set_to_none=True)
    accumulate_gradients(model, _with_penalty(penalty), batches)
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    sums = [sft_loss_fn(model, b) for b in batches]
    n = sum(int(k) for _, k in sums)
    params = dict(model.named_parameters())
    (sum(s for s, _ in sums) / n + penalty(params)).backward()
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, rtol=1e-9, atol=1e-12), name


def test_replay_keeps_only_examples_whose_fact_is_still_true():
    stream = update_stream(n_updates=8, facts_per_update=6, paraphrases=2)
    changed_later = next(f for u in stream[1:] for f in u.facts if f["old"] is not None and
                         any(g["key"] == f["key"] for g in stream[0].facts + stream[1].facts if g is not f))
    first = next(u for u in stream if any(g["key"] == changed_later["key"] for g in u.facts))
    t = next(u.index for u in stream if changed_later in u.facts)
    old_examples = [ex for ex in update_examples(first) if ex["key"] == changed_later["key"]]
    assert old_examples and first.index < t
    assert all(_still_true(ex, current_facts(stream, first.index)) for ex in old_examples)
    assert not any(_still_true(ex, current_facts(stream, t)) for ex in old_examples)


def test_scores_on_crafted_answers():
    qs = [{"value": "12", "old": "10", "update": 1}, {"value": "Monday", "old": None, "update": 1},
          {"value": "7", "old": "5", "update": 0}, {"value": "Riverton", "old": None, "update": 0}]
    s = score_answers(["10 dollars.", "Monday.", "7 dollars.", "Oakvale."], qs, t=1)
    assert s["new"] == 0.5 and s["earlier"] == 0.5          # right: Monday (new), 7 (earlier)
    assert s["changed"] == 0.5 and s["stale"] == 0.5        # the lamp's old price 10 given: stale
    assert s["stale_new"] == 1.0 and (s["n_new"], s["n_earlier"], s["n_changed"]) == (2, 2, 2)
    assert math.isnan(score_answers(["x"], qs[:1], t=1)["earlier"])  # nothing to ask is not "all wrong"


def _run(quick_base, tmp_path, name, **kw):
    model, tok = quick_base
    cfg = ContinualConfig(base="quick", n_updates=2, facts=3, paraphrases=1, epochs=2, seed=0, **kw)
    return continual(cfg, tmp_path / name, progress=False, model_and_tok=(copy.deepcopy(model), tok, "quick"))


def test_a_short_stream_writes_its_files_and_measures(quick_base, tmp_path):
    r = _run(quick_base, tmp_path, "full")
    out = tmp_path / "full"
    assert {p.name for p in out.iterdir()} >= {"continual.json", "updates.jsonl", "results.json", "curves.png"}
    lines = [json.loads(x) for x in (out / "updates.jsonl").read_text().splitlines()]
    assert [u["update"] for u in lines] == [0, 1] == [u["update"] for u in r["updates"]]
    u = r["updates"][1]
    assert u["n_new"] == 3 and u["n_earlier"] + u["n_new"] == len(u["answers"])
    assert u["steps"] == math.ceil(2 * 9 / 8) and u["replayed"] == 0 and u["forgetting"] == pytest.approx(
        u["probe_loss"] - r["base_loss"])
    assert set(r["summary"]) >= {"learned", "retained", "changed", "stale", "forgetting", "seconds_per_update"}
    with pytest.raises(Exception, match="--force"):  # results are not overwritten
        _run(quick_base, tmp_path, "full")


def test_zero_strength_mitigations_change_nothing_and_replay_mixes(quick_base, tmp_path):
    keys = ("final_loss", "probe_loss")
    plain = _run(quick_base, tmp_path, "a")["updates"]
    for kw in ({"mitigation": "ewc", "ewc_lambda": 0.0}, {"mitigation": "l2sp", "l2sp_alpha": 0.0}):
        got = _run(quick_base, tmp_path, kw["mitigation"], **kw)["updates"]
        assert [u[k] for u in got for k in keys] == pytest.approx([u[k] for u in plain for k in keys], rel=1e-5)
    ewc = _run(quick_base, tmp_path, "ewc-strong", mitigation="ewc", ewc_lambda=1e4)["updates"]
    assert ewc[1]["final_loss"] != pytest.approx(plain[1]["final_loss"], rel=1e-5)
    replay = _run(quick_base, tmp_path, "replay", mitigation="replay", replay=0.25)["updates"]
    assert replay[0]["replayed"] == 0 and replay[1]["replayed"] == round(9 / 0.75) - 9


def test_lora_variants(quick_base, tmp_path):
    from minift.peft import method_config, method_of

    model, tok = quick_base
    m = copy.deepcopy(model)
    cfg = ContinualConfig(base="quick", method="lora-merge", n_updates=2, facts=2, paraphrases=1, epochs=1)
    continual(cfg, tmp_path / "lm", progress=False, model_and_tok=(m, tok, "quick"))
    assert method_of(m) is None  # every update's adapter merged: a plain model is left
    changed = [k for k, v in m.state_dict().items() if not torch.equal(v, model.state_dict()[k])]
    targets = method_config("lora").targets
    assert changed and all(k.rsplit(".", 1)[0].endswith(tuple(targets)) for k in changed)  # only LoRA's targets moved
    r = _run(quick_base, tmp_path, "lora", method="lora", mitigation="l2sp")
    assert r["lr"] == method_config("lora").default_lr


def test_configs_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="lora-merge"):
        ContinualConfig(method="lora-merge", mitigation="ewc")
    with pytest.raises(ConfigError, match="replay"):
        ContinualConfig(replay=1.0)
    with pytest.raises(ConfigError, match="facts"):
        ContinualConfig(facts=13)
    with pytest.raises(ConfigError, match="method"):
        ContinualConfig(method="adapter")


def test_a_sweep_runs_every_variant_from_the_same_start(quick_base, tmp_path, monkeypatch):
    from minift.base import cache

    model, tok = quick_base
    monkeypatch.setattr(cache, "resolve_base", lambda base, progress=False: (model, tok, "quick"))
    cfgs = [ContinualConfig(base="quick", n_updates=2, facts=2, paraphrases=1, epochs=1, mitigation=g)
            for g in ("none", "replay")]
    rows = continual_sweep(cfgs, tmp_path / "s", progress=False)
    assert [r["variant"] for r in rows] == ["full", "full+replay"]
    assert (tmp_path / "s" / "learning_vs_forgetting.png").stat().st_size > 10_000
    assert "full+replay" in (tmp_path / "s" / "table.md").read_text()
    with pytest.raises(ConfigError, match="share the base"):
        continual_sweep([cfgs[0], ContinualConfig(base="quick", seed=1, mitigation="ewc")], tmp_path / "t")


def test_cli_refuses_a_variant_that_cannot_work_in_one_line(tmp_path, capsys):
    code = main(["continual", "--method", "lora-merge", "--mitigation", "ewc", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "lora-merge" in err[0] and not (tmp_path / "o").exists()


def test_cli_exports_the_stream(tmp_path, capsys):
    assert main(["data", "export", "updates", "--updates", "2", "--facts", "3",
                 "--out", str(tmp_path / "u.jsonl")]) == 0
    lines = (tmp_path / "u.jsonl").read_text().splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["update"] == 0


def test_mitigations_combine():
    cfg = ContinualConfig(mitigation="replay+l2sp")
    assert cfg.mitigations == {"replay", "l2sp"} and cfg.name == "full+replay+l2sp"
    assert ContinualConfig().mitigations == set()
    for bad in ("replay+replay", "none+ewc", "replay+dropout"):
        with pytest.raises(ConfigError, match="mitigation"):
            ContinualConfig(mitigation=bad)
    with pytest.raises(ConfigError, match="lora-merge"):
        ContinualConfig(method="lora-merge", mitigation="replay+l2sp")


def test_the_command_runs_one_variant_and_a_sweep(quick_base, tmp_path, capsys):
    args = ["--base", "quick", "--updates", "1", "--facts", "1", "--paraphrases", "1", "--epochs", "1", "--quiet"]
    assert main(["continual", *args, "--out", str(tmp_path / "one")]) == 0
    assert "update 1 (2027-01-01): new" in capsys.readouterr().out
    assert main(["continual", *args, "--mitigation", "none", "l2sp", "--out", str(tmp_path / "two")]) == 0
    out = capsys.readouterr().out
    assert "| full+l2sp |" in out and (tmp_path / "two" / "full+l2sp" / "results.json").is_file()
