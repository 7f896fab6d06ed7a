"""Scoring a fine-tuned model on its task: greedy generation for instruction tasks, the classifier's argmax for
classification, in batches.

    evaluate_task   the task's metrics on its test split (and qa's held-out split)
                        classification  accuracy, macro-F1 (and accuracy per sentiment construction)
                        instruction     exact match (`metrics.normalize_answer`: case, spaces, one final period)
                                        + whatever the task adds (`TaskSpec.extra_metrics`: json → validity and
                                        schema compliance; style → adherence to the pirate voice)
    headline        the one or two numbers a table shows for a run
    context_reserve the context positions a method takes from the input (a soft prompt's P)
"""

from __future__ import annotations

import torch

from minift.data.loaders import reference_answer
from minift.data.task_data import TaskData
from minift.errors import ConfigError
from minift.finetune.classify import Classifier, classify_collate, encode_labelled, predict
from minift.data.metrics import accuracy, exact_match, grouped_accuracy, macro_f1
from minift.finetune.sft import generate_batch
from minift.finetune.templates import PromptTemplate
from minift.peft import method_of


def context_reserve(model) -> int:
    """Context positions the model's method takes from the input (`MethodConfig.reserved_positions`: P for prompt
    tuning, 0 for every other method and for a model without one)."""
    cfg = method_of(model)
    return cfg.reserved_positions() if cfg is not None else 0


def generate_answers(model, tok, examples: list[dict], template: PromptTemplate, max_new_tokens: int,
                     batch_size: int = 32) -> list[str]:
    """Greedy answers with `minift.finetune.sft.generate_batch`, for every method. ReFT needs nothing extra:
    generate_batch uses the KV cache and never slides the window, so only the prefill (the prompt) is intervened.
    Prompt tuning needs P free positions in front of the prompt (`reserve`)."""
    return generate_batch(model, tok, examples, max_new_tokens, template, batch_size, reserve=context_reserve(model))


def _shown_prompt(ex: dict) -> str:
    """What a sample shows as the prompt: the instruction (and input), or a conversation's last user message."""
    if "messages" in ex:
        return [m["content"] for m in ex["messages"] if m["role"] == "user"][-1]
    return ex["instruction"] + (f" | {ex['input']}" if ex.get("input") else "")


def max_new_tokens_for(tok, examples: list[dict], block_size: int) -> int:
    """Room for the longest training answer plus a margin of 8 tokens (which also covers EOS and the template's
    response prefix, at most one token more), at most half the context."""
    longest = max(len(tok.encode(reference_answer(ex))) for ex in examples)
    return max(1, min(longest + 8, block_size // 2))


@torch.no_grad()
def evaluate_task(model, tok, td: TaskData, template: PromptTemplate | None = None, max_new_tokens: int = 32,
                  n_eval: int | None = None, batch_size: int = 32) -> tuple[dict, list[dict]]:
    """Score `model` (a Classifier for labelled tasks, a GPT for instruction tasks) on the task's test split (and
    qa's heldout split). Returns ({split: metrics}, a few samples to eyeball). n_eval: only the first n_eval
    examples of each split (quick checks)."""
    was_training = model.training
    model.eval()
    metrics, samples = {}, []
    for split in td.eval_splits:
        examples = td.splits[split][:n_eval]
        if td.kind == "labelled":
            if not isinstance(model, Classifier):
                raise ConfigError(f"task {td.name!r} is a classification task, but this run's model generates text")
            enc = encode_labelled(tok, examples, td.labels, model.config.block_size - context_reserve(model))
            collate = classify_collate(tok.pad_id)
            pred_ids = predict(model, [collate(enc[i:i + batch_size]) for i in range(0, len(enc), batch_size)])
            pred = [td.labels[i] for i in pred_ids.tolist()]
            gold = [ex["label"] for ex in examples]
            m = {"accuracy": accuracy(pred, gold), "macro_f1": macro_f1(pred, gold, td.labels), "n": len(gold)}
            if all("construction" in ex for ex in examples):
                m["accuracy_by_construction"] = grouped_accuracy(pred, gold, [ex["construction"] for ex in examples])
            refs = [ex["text"] for ex in examples]
        else:
            if isinstance(model, Classifier):
                raise ConfigError(f"task {td.name!r} needs generated answers, but this run trained a classifier")
            pred = generate_answers(model, tok, examples, template, max_new_tokens, batch_size)
            gold = [reference_answer(ex) for ex in examples]
            m = {"exact_match": exact_match(pred, gold), "n": len(gold)}
            if td.extra_metrics is not None:
                m.update(td.extra_metrics(pred))
            refs = [_shown_prompt(ex) for ex in examples]
        metrics[split] = m
        samples += [{"split": split, "input": r, "prediction": p, "reference": g}
                    for r, p, g in list(zip(refs, pred, gold))[:3]]
    model.train(was_training)
    return metrics, samples


def headline(metrics: dict) -> dict:
    """The numbers a table shows for a run: every number of the test split (accuracy and macro-F1; or exact match
    and the task's extra metrics) and, where there is one, the held-out split's exact match."""
    out = {f"test_{k}": v for k, v in metrics.get("test", {}).items()
           if k != "n" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "heldout" in metrics:
        out["heldout_exact_match"] = metrics["heldout"]["exact_match"]
    return out
