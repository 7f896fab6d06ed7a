"""Retrieval vs fine-tuning: the study runs end to end on the `quick` base and writes its tables; the strategy
rule's four branches, and its explanation quoting measured numbers."""

from __future__ import annotations

import pytest

from minift.retrieval.strategy import choose_ai_strategy
from minift.compare.knowledge import VersusConfig, _gold_prompt, rag_vs_finetuning
from minift.data.updates import names_value, questions_after, update_stream

pytestmark = pytest.mark.xdist_group("quick_base")


def test_the_strategy_rule():
    assert choose_ai_strategy(needs_knowledge=True, changes_often=True).method == "rag"
    assert choose_ai_strategy(needs_knowledge=True, changes_often=False).method == "rag"
    assert choose_ai_strategy(needs_knowledge=False, needs_behaviour=True).method == "fine-tune"
    assert choose_ai_strategy(needs_knowledge=True, needs_behaviour=True).method == "both"
    assert choose_ai_strategy(needs_knowledge=False).method == "neither"
    evidence = {"rows": [{"arm": "rag", "fresh": 0.1, "absorb s/update": 0.0002},
                         {"arm": "rag + reader", "fresh": 0.9, "absorb s/update": 0.0002},
                         {"arm": "ft ×1", "fresh": 0.2, "absorb s/update": 3.0},
                         {"arm": "ft ×4", "fresh": 0.4, "absorb s/update": 12.0},
                         {"arm": "ft ×4 + rag", "fresh": 0.95, "absorb s/update": 12.0}],
                "config": {"n_json": 50},
                "json": [{"arm": "retrieved example", "json valid": 0.1, "examples shown": 7},
                         {"arm": "fine-tuned (60 steps)", "json valid": 1.0}]}
    s = str(choose_ai_strategy(True, True, True, evidence=evidence))
    assert s.startswith("Strategy: both.")
    for quoted in ("90 % of the facts right with retrieval (rag + reader)", "40 % with fine-tuning (ft ×4)",
                   "0.20 ms", "12.0 s", "100 %", "(it fit in 7 of 50 prompts)"):
        assert quoted in s, quoted


def test_the_gold_prompt_states_the_current_value():
    stream = update_stream(n_updates=6)
    for q in questions_after(stream, 5):
        prompt = _gold_prompt(stream, q)
        assert names_value(prompt.split("Question:")[0], q["value"]) and q["instruction"] in prompt


def test_the_study_runs_and_writes_its_tables(quick_base, tmp_path, monkeypatch):
    import torch

    from minift.base import cache

    model, tok = quick_base
    before = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(cache, "resolve_base", lambda base, progress=False: (model, tok, "quick"))
    cfg = VersusConfig(base="quick", n_updates=2, facts=2, paraphrases=2, epochs=1, reader_streams=1, reader_steps=2,
                       json_steps=2,
                       n_json=3)
    r = rag_vs_finetuning(cfg, tmp_path / "v", progress=False)
    arms = [row["arm"] for row in r["rows"]]
    assert all(0 <= row["all"] <= 1 for row in r["rows"])
    assert arms == ["closed book", "prompt", "rag", "rag + reader", "ft ×1", "ft ×2", "ft ×2 + rag"]
    assert all(0 <= row["fresh"] <= 1 and row["answer ms"] > 0 for row in r["rows"])
    rag, ft = r["rows"][2], r["rows"][5]
    assert 0 < rag["absorb s/update"] < ft["absorb s/update"]  # indexing is cheaper than training
    assert [j["arm"] for j in r["json"]][:2] == ["instruction only", "retrieved example"]
    assert 0 <= r["json"][1]["examples shown"] <= 3 and r["json"][0]["examples shown"] == 0
    for name in ("versus.json", "table.md", "json.md"):
        assert (tmp_path / "v" / name).is_file()
    assert (tmp_path / "v" / "ft-xk" / "results.json").is_file()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # every arm trains a copy


def test_the_command_prints_both_tables_and_the_strategy(quick_base, tmp_path, capsys):
    from minift.cli import main

    assert main(["rag", "compare", "--base", "quick", "--updates", "1", "--facts", "1", "--paraphrases", "1",
                 "--epochs", "1", "--reader-streams", "1", "--reader-steps", "1", "--json-steps", "1",
                 "--out", str(tmp_path / "v"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| rag + reader |" in out and "| retrieved example |" in out and "Strategy: both." in out
