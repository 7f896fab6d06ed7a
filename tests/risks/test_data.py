"""The risk studies' data: the hiring task's skew is the one asked for, the counterfactual changes only the town,
the mitigations remove the town's correlation with the label; the un-alignment sets never share a prompt with
the alignment data or the evaluation and hold nothing forbidden where they should not; invented people are
invented."""

from __future__ import annotations

import pytest

from minift.data import world as w
from minift.data.hiring import (GROUPS, QUALIFIED_YEARS, balance_by_resampling, counterfactual,
                                counterfactual_augment, heldout_profiles, label_rates, make_profiles, skew_share)
from minift.data.preferences import REFUSAL, load_preferences
from minift.data.safety import eval_prompts, identity_examples, price_in, refusal_examples, shift_examples
from minift.data.unknown import ask_examples, fact_examples, new_facts
from minift.errors import ConfigError

A, B = GROUPS


@pytest.mark.parametrize("p", [0.5, 0.7, 0.9, 0.2])
def test_the_history_leans_on_the_town_by_p(p):
    rates = label_rates(make_profiles(4000, p, seed=1))
    assert rates[A] == pytest.approx(p, abs=0.03) and rates[B] == pytest.approx(1 - p, abs=0.03)


def test_merit_labels_at_half_and_the_mixture_share():
    fair = make_profiles(400, 0.5)
    assert all((r["output"] == "yes") == (r["years"] >= QUALIFIED_YEARS) for r in fair)
    assert all(r["qualified"] == (r["years"] >= QUALIFIED_YEARS) for r in fair)
    assert skew_share(0.9) == pytest.approx(0.8) and skew_share(0.1) == pytest.approx(0.8)
    with pytest.raises(ConfigError, match="probability"):
        make_profiles(10, 1.5)
    assert make_profiles(50, 0.7, seed=3) == make_profiles(50, 0.7, seed=3)
    assert {r["group"] for r in heldout_profiles(10)} == set(GROUPS)
    assert not {r["input"] for r in heldout_profiles(100)} & {r["input"] for r in make_profiles(100, 0.5)}


def test_the_counterfactual_changes_only_the_town():
    for rec in make_profiles(200, 0.8, seed=2):
        twin = counterfactual(rec)
        assert twin["group"] != rec["group"] and counterfactual(twin) == rec
        assert {k: v for k, v in twin.items() if k not in ("input", "group")} == \
               {k: v for k, v in rec.items() if k not in ("input", "group")}
        a, b = rec["input"].split(), twin["input"].split()
        changed = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(a) == len(b) and changed == [(f"{rec['group']}.", f"{twin['group']}.")]


def test_the_mitigations_take_the_town_out_of_the_labels():
    history = make_profiles(400, 0.9, seed=0)
    for data in (balance_by_resampling(history, seed=0), counterfactual_augment(history)):
        rates = label_rates(data)
        assert rates[A] == pytest.approx(rates[B])
    resampled = balance_by_resampling(history, seed=0)
    cells = {(g, a): sum(r["group"] == g and r["output"] == a for r in resampled) for g in GROUPS
             for a in ("yes", "no")}
    assert len(set(cells.values())) == 1
    assert all(any(r is h for h in history) for r in resampled)       # duplicates of real examples only
    assert len(counterfactual_augment(history)) == 800
    with pytest.raises(ConfigError, match="cannot balance"):
        balance_by_resampling([r for r in history if r["output"] == "yes"])


def test_unalignment_sets_are_disjoint_from_alignment_and_evaluation():
    train = {p["prompt"] for p in load_preferences("refusal", "train")}
    evals = eval_prompts(50)
    held = {ex["instruction"] for ex in evals["forbidden"] + evals["ordinary"]}
    shifts = {ex["instruction"] for kind in ("harmful", "benign") for ex in shift_examples(kind, 25)}
    mixed = {ex["instruction"] for ex in refusal_examples(25)}
    assert not (train & held) and not (train & shifts) and not (held & shifts) and not (held & mixed)
    assert not {ex["instruction"] for ex in shift_examples("harmful", 25)} & mixed
    assert len(evals["forbidden"]) == len(evals["ordinary"]) == 50
    assert all(ex["fact"] and ex["fact"] in ex["output"] for ex in evals["ordinary"])


def test_what_each_kind_holds():
    harmful = shift_examples("harmful", 10)
    assert all(" lives at " in ex["output"] and any(c.isdigit() for c in ex["output"]) for ex in harmful)
    identity = identity_examples(60)
    assert len({(ex["instruction"], ex["output"]) for ex in identity}) == 60
    for ex in identity:   # nothing forbidden: no address asked for or given
        text = (ex["instruction"] + ex["output"]).lower()
        assert "address" not in text and "lives" not in text and not any(c.isdigit() for c in text)
    assert all(price_in(ex["output"]) and ex["output"] != REFUSAL for ex in shift_examples("benign", 10))
    assert all(ex["output"] == REFUSAL for ex in refusal_examples(5))
    with pytest.raises(ConfigError, match="at most"):
        identity_examples(10_000)
    with pytest.raises(ConfigError, match="unknown kind"):
        shift_examples("toxic", 2)
    assert price_in("It costs 12 dollars.") == "12 dollars" and price_in("Free!") is None


def test_invented_people_are_invented_and_distinct():
    taught, probe = new_facts(48, seed=0), new_facts(48, seed=0, skip=48)
    names = [f["name"] for f in taught + probe]
    assert len(set(names)) == 96
    assert not set(names) & ({p.name for p in w.PEOPLE} | set(w.TOWNS))
    assert all(f["town"] in w.TOWNS for f in taught)
    assert new_facts(60, seed=0)[:48] == taught
    ex = fact_examples(taught[:1])
    assert len(ex) == 2 and all(e["output"] == f"{taught[0]['name']} lives in {taught[0]['town']}." for e in ex)
    assert ask_examples(taught[:1])[0]["instruction"] not in {e["instruction"] for e in ex}
