"""Evaluation: the numbers a fine-tuning run reports, and one JSON record per run.

    perplexity     PPL = exp( (1/N) Σ_{targets ≠ −100} −log p(target | context) )   (token-weighted, not by batch)
    accuracy       (1/n) Σ [pred_i = gold_i]
    macro-F1       (1/|C|) Σ_c F1_c,  F1_c = 2·TP_c / (2·TP_c + FP_c + FN_c)   (a class with no gold and no
                   predicted example scores 0, as scikit-learn's zero_division=0; C = labels given, or the union of
                   gold and predicted labels)
    exact match    (1/n) Σ [norm(pred_i) = norm(gold_i)],  norm = strip, collapse inner whitespace, case-fold, drop
                   one trailing period ("Paris." = "paris" = " Paris ")
    JSON validity  the share of generations that parse as one JSON object (the whole text, after stripping
                   whitespace: no prose around it); schema compliance additionally requires exactly the schema's keys
                   and, per key, a value from its allowed list
    forgetting     validation loss on the pretraining corpus before and after fine-tuning: Δ = after − before,
                   ratio = PPL_after / PPL_before (Δ > 0 means general language modelling got worse)

Helpers that produce the inputs: `stream_batches` / `corpus_loss` (deterministic windows over the pretraining
validation documents, for forgetting), `evaluate_generation` (greedy answers → exact match and JSON metrics),
`grouped_accuracy` (accuracy per sentiment construction). `ResultRecord` is the one-file summary of a run
(results.json); later stages add fields through `extra`.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F

from .errors import InputError
from .model import IGNORE_INDEX
from .utils import load_json, save_json


# ----------------------------------------------------------------------------------------------------------------
# Language-model metrics
# ----------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def mean_token_loss(model, token_batches: Iterable) -> tuple[float, int]:
    """(mean cross-entropy per supervised target, N) over batches of (ids, targets[, attention_mask]).

    Sums over all batches before dividing, so a batch with few targets weighs only as much as its targets.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for batch in token_batches:
        ids, targets = batch[0].to(device), batch[1].to(device)
        mask = batch[2].to(device) if len(batch) > 2 and batch[2] is not None else None
        logits, _ = model(ids, attention_mask=mask)
        total += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                                 ignore_index=IGNORE_INDEX, reduction="sum").item()
        n += int((targets != IGNORE_INDEX).sum())
    model.train(was_training)
    if n == 0:
        raise InputError("no supervised targets in the evaluation batches (all −100 or no batches)")
    return total / n, n


def perplexity(model, token_batches: Iterable) -> float:
    """exp(mean token loss): the effective number of equally likely next tokens the model hesitates between."""
    return math.exp(mean_token_loss(model, token_batches)[0])


def stream_batches(token_ids: Sequence[int], block_size: int, batch_size: int = 16,
                   max_windows: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut a token stream into consecutive, non-overlapping windows → [(x, y)] with y = x shifted by one.

    Deterministic (no random crops), so "before" and "after" losses are measured on exactly the same tokens.
    """
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    n = (len(ids) - 1) // block_size
    if n < 1:
        raise InputError(f"{len(ids)} tokens cannot fill one window of {block_size} + 1 tokens")
    n = min(n, max_windows) if max_windows else n
    x = ids[: n * block_size].view(n, block_size)
    y = ids[1: n * block_size + 1].view(n, block_size)
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, n, batch_size)]


def corpus_loss(model, tok, docs: Sequence[str], batch_size: int = 16, max_windows: int | None = 64) -> float:
    """Mean next-token loss on documents (each followed by EOS, joined, cut into block_size windows): with the
    pretraining validation documents, the before/after number `forgetting` compares."""
    ids = [i for d in docs for i in tok.encode(d, add_eos=True)]
    return mean_token_loss(model, stream_batches(ids, model.config.block_size, batch_size, max_windows))[0]


def forgetting(before_loss: float, after_loss: float) -> dict:
    """Before/after validation loss on the pretraining corpus, as a record."""
    return {"before_loss": before_loss, "after_loss": after_loss, "delta_loss": after_loss - before_loss,
            "before_ppl": math.exp(before_loss), "after_ppl": math.exp(after_loss),
            "ppl_ratio": math.exp(after_loss - before_loss)}


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


def evaluate_generation(model, tok, examples: Sequence[dict], template=None, max_new_tokens: int = 32,
                        schema: dict | None = None, n_samples: int = 5, batch_size: int = 32) -> tuple[dict, list]:
    """Greedy answers to instruction examples, scored: exact match always, JSON validity/compliance when a schema
    is given. Returns (metrics, the first n_samples {"prompt", "prediction", "reference"} for the record)."""
    from .sft import ALPACA, generate_batch  # local import: sft.py does not depend on eval.py, keep it that way

    preds = generate_batch(model, tok, list(examples), max_new_tokens, template or ALPACA, batch_size)
    refs = [ex["output"] for ex in examples]
    metrics = {"exact_match": exact_match(preds, refs), "n": len(refs)}
    if schema is not None:
        metrics.update({k: v for k, v in json_validity(preds, schema).items() if k != "n"})
    samples = [{"prompt": ex["instruction"] + (f" | {ex['input']}" if ex.get("input") else ""), "prediction": p,
                "reference": r} for ex, p, r in list(zip(examples, preds, refs))[:n_samples]]
    return metrics, samples


# ----------------------------------------------------------------------------------------------------------------
# The result record
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class ResultRecord:
    """Everything one run reports, saved as one JSON file. `schema_version` lets later readers adapt."""

    run: str
    task: str
    method: str = "full"
    base: str = ""
    metrics: dict = field(default_factory=dict)  # e.g. {"test": {"accuracy": 0.91}, "heldout": {...}}
    baselines: dict = field(default_factory=dict)  # e.g. {"majority": {...}, "bow_logreg_1gram": {...}}
    forgetting: dict = field(default_factory=dict)  # from forgetting(before, after)
    trainable_params: int = 0
    total_params: int = 0
    train_seconds: float = 0.0
    config: dict = field(default_factory=dict)  # the hyper-parameters of the run
    samples: list = field(default_factory=list)  # a few (prompt, prediction, reference) triples to eyeball
    extra: dict = field(default_factory=dict)  # room for later stages (memory, quantisation, alignment, ...)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    schema_version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ResultRecord":
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in d.items() if k not in known}  # fields from a newer version are kept, not lost
        rec = cls(**{k: v for k, v in d.items() if k in known})
        rec.extra.update(extra)
        return rec


def save_results(path, record: ResultRecord) -> None:
    """Write the record as JSON, atomically (a crash never leaves half a file)."""
    save_json(path, record.to_dict())


def load_results(path) -> ResultRecord:
    return ResultRecord.from_dict(load_json(path))
