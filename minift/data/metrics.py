"""How a task's answers are scored: plain Python over lists of predictions and references (no model, no torch).
A task (`minift.data.tasks.TaskSpec`) names the metrics it adds; `minift.finetune.evaluation` collects the
predictions.

    accuracy       (1/n) Σ [pred_i = gold_i]
    macro-F1       (1/|C|) Σ_c F1_c,  F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c)   (a class with no gold and no
                   predicted example scores 0, as scikit-learn's zero_division=0; C = labels given, or the union of
                   gold and predicted labels)
    exact match    (1/n) Σ [norm(pred_i) = norm(gold_i)],  norm = strip, collapse inner whitespace, case-fold, drop
                   one trailing period ("Paris." = "paris" = " Paris ")
    JSON validity  the share of generations that parse as one JSON object (the whole text, after stripping
                   whitespace: no prose around it); schema compliance additionally requires exactly the schema's keys
                   and, per key, a value from its allowed list

`grouped_accuracy` breaks accuracy down by a group (e.g. the sentiment post's construction). The language-model
number a run also reports (forgetting) is `minift.finetune.forgetting`.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Sequence

from minift.errors import InputError


# ----------------------------------------------------------------------------------------------------------------
# Classification metrics
# ----------------------------------------------------------------------------------------------------------------

def _check_pair(pred: Sequence, gold: Sequence) -> None:
    if len(pred) != len(gold):
        raise InputError(f"{len(pred)} predictions for {len(gold)} references")
    if not gold:
        raise InputError("no examples to score")


def accuracy(pred: Sequence, gold: Sequence) -> float:
    _check_pair(pred, gold)
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


def grouped_accuracy(pred: Sequence, gold: Sequence, groups: Sequence[str]) -> dict:
    """{group: accuracy within the group}, e.g. per sentiment construction (plain / negated / but / although)."""
    _check_pair(pred, gold)
    hits, counts = Counter(), Counter(groups)
    for p, g, k in zip(pred, gold, groups):
        hits[k] += p == g
    return {k: hits[k] / counts[k] for k in sorted(counts)}


def per_class_f1(pred: Sequence, gold: Sequence, labels: Sequence | None = None) -> dict:
    """{label: F1} with F1 = 2TP / (2TP + FP + FN), 0 when the denominator is 0."""
    _check_pair(pred, gold)
    labels = sorted(set(gold) | set(pred), key=str) if labels is None else list(labels)
    tp, fp, fn = Counter(), Counter(), Counter()
    for p, g in zip(pred, gold):
        if p == g:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    out = {}
    for c in labels:
        denom = 2 * tp[c] + fp[c] + fn[c]
        out[c] = 2 * tp[c] / denom if denom else 0.0
    return out


def macro_f1(pred: Sequence, gold: Sequence, labels: Sequence | None = None) -> float:
    """Unweighted mean of the per-class F1: every class counts the same, however rare."""
    scores = per_class_f1(pred, gold, labels)
    return sum(scores.values()) / len(scores)


# ----------------------------------------------------------------------------------------------------------------
# Generation metrics
# ----------------------------------------------------------------------------------------------------------------

def normalize_answer(text: str) -> str:
    """strip, collapse whitespace, case-fold, drop one trailing period."""
    text = " ".join(text.split()).casefold()
    return text[:-1].rstrip() if text.endswith(".") else text


def exact_match(pred: Sequence[str], gold: Sequence[str]) -> float:
    _check_pair(pred, gold)
    return sum(normalize_answer(p) == normalize_answer(g) for p, g in zip(pred, gold)) / len(gold)


def check_json(text: str, schema: dict[str, Sequence | None]) -> tuple[bool, bool, str]:
    """(valid, compliant, reason) for one generation; reason starts with a code: ok, not_json, not_object,
    wrong_keys, bad_value.

    schema maps each required key to its allowed values, or to None for "any string". valid: the stripped text is
    exactly one JSON object. compliant: valid, the key set equals the schema's, every value is allowed.
    """
    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError as e:
        return False, False, f"not_json: {e.msg}"
    if not isinstance(obj, dict):
        return False, False, f"not_object: a JSON {type(obj).__name__}"
    missing, extra = sorted(set(schema) - set(obj)), sorted(set(obj) - set(schema))
    if missing or extra:
        return True, False, f"wrong_keys: missing {missing}, unexpected {extra}"
    for key, allowed in schema.items():
        value = obj[key]
        if allowed is None:
            if not isinstance(value, str):
                return True, False, f"bad_value: {key} should be a string, got {value!r}"
        elif value not in allowed:
            return True, False, f"bad_value: {key}={value!r} is not one of {list(allowed)}"
    return True, True, "ok"


def json_validity(texts: Sequence[str], schema: dict[str, Sequence | None]) -> dict:
    """{"validity_rate", "compliance_rate", "n", "reasons": {reason code: count}} over generations."""
    if not texts:
        raise InputError("no generations to check")
    valid = compliant = 0
    reasons: Counter = Counter()
    for t in texts:
        v, c, why = check_json(t, schema)
        valid += v
        compliant += c
        reasons[why.split(":")[0]] += 1
    return {"validity_rate": valid / len(texts), "compliance_rate": compliant / len(texts), "n": len(texts),
            "reasons": dict(reasons)}


def json_metrics(texts: Sequence[str], schema: dict[str, Sequence | None]) -> dict:
    """The json task's extra numbers: validity and schema compliance rates, and how often each failure occurred."""
    j = json_validity(texts, schema)
    return {"json_validity": j["validity_rate"], "json_compliance": j["compliance_rate"], "reasons": j["reasons"]}
