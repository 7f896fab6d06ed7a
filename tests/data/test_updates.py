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


def test_names_value_matches_whole_words_only():
    from minift.data.updates import names_value

    assert names_value("12 dollars.", "12") and names_value("It is on monday.", "Monday")
    assert not names_value("112 dollars.", "12") and not names_value("12.5 dollars", "2")
    assert not names_value("From 2027-01-01 on", "1")


def test_questions_after_an_update_ask_each_known_fact_once_with_its_latest_value():
    from minift.data.updates import questions_after

    stream = update_stream(n_updates=8)
    for t in (0, 3, 7):
        qs = questions_after(stream, t)
        facts = current_facts(stream, t)
        assert sorted(q["key"] for q in qs) == sorted(facts)
        assert all(q["value"] == facts[q["key"]] and q["update"] <= t for q in qs)
    last = {q["key"]: q for q in questions_after(stream, 7)}
    for u in stream:  # a key changed later is attributed to its latest update, with the value it replaced
        for f in u.facts:
            if last[f["key"]]["update"] == u.index:
                assert last[f["key"]]["old"] == f["old"]


def test_update_examples_and_exported_records():
    from minift.data.updates import stream_records, update_examples

    up = update_stream(n_updates=1, paraphrases=2)[0]
    qs, docs = update_examples(up, "questions"), update_examples(up, "documents")
    assert len(qs) == 12 and len(docs) == 12 and update_examples(up) == qs + docs
    assert all(set(d) == {"text", "key"} for d in docs)
    with pytest.raises(ValueError):
        update_examples(up, "pictures")
    records = stream_records(update_stream(n_updates=2, paraphrases=2))
    assert len(records) == 12
    r = records[0]
    assert len(r["documents"]) == 2 and len(r["questions"]) == 2 and len(r["heldout"]) == 1
    assert all(r["value"] in d for d in r["documents"]) and r["value"] in r["answer"]
