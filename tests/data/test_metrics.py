"""The task metrics against hand computations."""

import pytest

from minift.data.metrics import (accuracy, check_json, exact_match, grouped_accuracy, json_metrics, json_validity,
                                 macro_f1, normalize_answer, per_class_f1)
from minift.errors import InputError


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2, FP 0, FN 1 → 4/5; b: TP 1, FP 1, FN 1 → 2/4; c: TP 1, FP 1, FN 0 → 2/3
    assert per_class_f1(pred, gold) == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3})
    assert macro_f1(pred, gold) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert accuracy(pred, gold) == pytest.approx(4 / 6)
    # a class in `labels` that never occurs scores 0 (scikit-learn's zero_division=0)
    assert macro_f1(pred, gold, labels=["a", "b", "c", "d"]) == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)
    assert macro_f1(["x", "x"], ["x", "y"]) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(InputError):
        accuracy(["a"], ["a", "b"])


def test_exact_match_normalisation():
    assert normalize_answer("  Paris.  ") == "paris" == normalize_answer("PARIS")
    assert normalize_answer("New   Delhi.") == "new delhi"
    assert exact_match(["Paris.", "paris", "Paris!", "Lyon"], ["Paris", "Paris.", "Paris", "Paris"]) == 0.5
    assert normalize_answer("e.g..") == "e.g."  # only one trailing period is dropped


def test_json_validity_on_crafted_strings():
    schema = {"sentiment": ["positive", "negative"], "topic": ["food", "travel"]}
    cases = {
        '{"sentiment": "positive", "topic": "food"}': (True, True),
        ' {"topic":"travel","sentiment":"negative"}\n': (True, True),  # key order and whitespace are free
        '{"sentiment": "happy", "topic": "food"}': (True, False),  # value not allowed
        '{"sentiment": "positive"}': (True, False),  # key missing
        '{"sentiment": "positive", "topic": "food", "x": 1}': (True, False),  # extra key
        '["positive", "food"]': (False, False),  # JSON, but not an object
        '{"sentiment": "positive", "topic": "food"} Thanks!': (False, False),  # prose after the object
        "{'sentiment': 'positive', 'topic': 'food'}": (False, False),  # single quotes are not JSON
        '{"sentiment": "positive", "topic": ': (False, False),  # cut off
    }
    for text, expected in cases.items():
        assert check_json(text, schema)[:2] == expected, text
    r = json_validity(list(cases), schema)
    assert r["n"] == 9 and r["validity_rate"] == pytest.approx(5 / 9) and r["compliance_rate"] == pytest.approx(2 / 9)
    assert r["reasons"] == {"ok": 2, "bad_value": 1, "wrong_keys": 2, "not_object": 1, "not_json": 3}
    assert check_json('{"name": "Anna"}', {"name": None})[1] and not check_json('{"name": 3}', {"name": None})[1]


def test_grouped_accuracy():
    r = grouped_accuracy(["p", "n", "p", "p"], ["p", "p", "p", "n"], ["plain", "negated", "plain", "negated"])
    assert r == {"negated": 0.0, "plain": 1.0}


def test_json_metrics_are_the_validity_record_renamed():
    texts = ['{"a": "b"}', '{"a": "c"}', "no"]
    j = json_validity(texts, {"a": ["b"]})
    assert json_metrics(texts, {"a": ["b"]}) == {"json_validity": j["validity_rate"],
                                                 "json_compliance": j["compliance_rate"], "reasons": j["reasons"]}
