"""The update stream: deterministic, dated, with held-out questions that share no phrasing with training ones,
and facts that change (a price updated twice)."""

import pytest

from minift.data.updates import HELDOUT_Q, TRAIN_Q, current_facts, update_stream


def test_the_stream_is_deterministic_and_dated():
    a, b = update_stream(seed=0), update_stream(seed=0)
    assert [u.documents for u in a] == [u.documents for u in b] and [u.train for u in a] == [u.train for u in b]
    assert [u.documents for u in update_stream(seed=1)] != [u.documents for u in a]
    assert [u.date for u in a] == ["2027-01-01", "2027-01-08", "2027-01-15", "2027-01-22", "2027-01-29"]
    assert all(len(u.facts) == 6 and len(u.documents) == 18 == len(u.doc_keys) for u in a)
    assert a[0].doc_keys[:3] == [a[0].facts[0]["key"]] * 3  # each fact's paraphrases, in order
    assert len(update_stream(n_updates=2, paraphrases=1)[0].documents) == 6
    with pytest.raises(ValueError):
        update_stream(paraphrases=5)


def test_heldout_questions_share_no_surface_form_with_training():
    stream = update_stream(n_updates=8)
    train = {q["instruction"] for u in stream for q in u.train}
    heldout = {q["instruction"] for u in stream for q in u.heldout}
    assert not train & heldout
    train_templates = {t for ts in TRAIN_Q.values() for t in ts}
    assert not train_templates & {t for ts in HELDOUT_Q.values() for t in ts}
    # every held-out question asks a fact that training asks too, with the same answer
    answers = {(q["key"], q["output"]) for u in stream for q in u.train}
    assert all((q["key"], q["output"]) in answers for u in stream for q in u.heldout)


def test_changed_facts_carry_their_old_value_and_the_latest_wins():
    stream = update_stream(n_updates=8)
    changed = [f for u in stream for f in u.facts if f["old"] is not None]
    assert changed and all(f["old"] != f["value"] for f in changed)
    keys = [f["key"] for u in stream for f in u.facts]
    twice = [k for k in set(keys) if keys.count(k) > 1]
    assert twice  # some fact changes more than once in eight updates
    k = twice[0]
    last = [f["value"] for u in stream for f in u.facts if f["key"] == k][-1]
    assert current_facts(stream, len(stream) - 1)[k] == last
