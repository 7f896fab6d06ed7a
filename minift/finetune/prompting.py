"""Prompting instead of fine-tuning: a base model scored on a task as it is, zero-shot or with k worked examples
in front of each question (few-shot, "in-context learning": Brown et al., 2020). This is the baseline every
fine-tuning run should beat, measured on the same test examples with the same metrics.

    zero-shot   the test example alone, through the model's template
    k-shot      the first k training examples, each with its answer, then the test example
                  chat model (ChatML):  k user/assistant turn pairs, then the question as the last user turn
                  other templates:      k prompt+answer blocks, separated by a blank line, then the prompt

A classification task is asked as a question after the text ("…\n\nIs this text positive, negative or neutral?
Answer with one word."; small instruct models follow a question that comes last more often) and the answer is
read with a verbalizer (Schick & Schütze, 2021): the label whose word the answer names first, case aside, so
"This review is negative." counts as "negative"; an answer naming no label is wrong. That is accuracy. A
fine-tuned classifier instead reads the label off a trained head (minift/finetune/classify.py): the two numbers
answer the same question, "how often is the label right?".
"""

from __future__ import annotations

import re

import torch

from minift.data.loaders import reference_answer
from minift.data.metrics import exact_match
from minift.data.task_data import TaskData
from minift.errors import ConfigError
from minift.finetune.evaluation import max_new_tokens_for
from minift.finetune.sft import generate_batch
from minift.finetune.templates import ChatTemplate


def classification_question(labels: list[str]) -> str:
    """The question that turns a labelled example into one an instruct model can answer."""
    choices = ", ".join(labels[:-1]) + f" or {labels[-1]}" if len(labels) > 1 else labels[0]
    return f"Is this text {choices}? Answer with one word."


def as_questions(td: TaskData, examples: list[dict]) -> list[dict]:
    """Instruction examples (a labelled one becomes its text, a blank line and classification_question → the
    label); others unchanged."""
    if td.kind != "labelled":
        return list(examples)
    question = classification_question(td.labels)
    return [{"instruction": f"{ex['text']}\n\n{question}", "input": "", "output": ex["label"]} for ex in examples]


def verbalize(answer: str, labels: list[str]) -> str | None:
    """The label the answer names first (whole words, case aside), or None when it names none."""
    words = re.findall(r"[\w'-]+", answer.casefold())
    for word in words:
        for label in labels:
            if word == label.casefold():
                return label
    return None


def with_shots(example: dict, shots: list[dict], template) -> dict | str:
    """The test example with the worked examples in front: a conversation for a chat template (scored on its last
    turn), else the raw prompt text (generated with template=None and stripped by the caller)."""
    if isinstance(template, ChatTemplate):
        turns = []
        for s in shots:
            turns += [{"role": "user", "content": _user_text(s)}, {"role": "assistant", "content": s["output"]}]
        system = [{"role": "system", "content": template.system}] if template.system else []
        return {"messages": system + turns + [{"role": "user", "content": _user_text(example)},
                                               {"role": "assistant", "content": example["output"]}]}
    blocks = [template.format_prompt(s["instruction"], s.get("input", "")) + template.response_text(s["output"])
              for s in shots]
    return "\n\n".join(blocks + [template.format_prompt(example["instruction"], example.get("input", ""))])


def _user_text(ex: dict) -> str:
    return f"{ex['instruction']}\n\n{ex['input']}" if ex.get("input", "").strip() else ex["instruction"]


@torch.no_grad()
def evaluate_prompted(model, tok, td: TaskData, template, shots: int = 0, n_eval: int | None = None,
                      batch_size: int = 32) -> tuple[dict, list[dict]]:
    """Score a base model on td's evaluation splits by prompting it (module docstring). Returns ({split: metrics},
    a few samples), the same shape as `evaluate_task`: exact match (accuracy for a labelled task) and the task's
    extra metrics (json's validity and compliance, …)."""
    if shots < 0:
        raise ConfigError(f"shots must be ≥ 0, got {shots}")
    train = as_questions(td, td.splits["train"])
    if shots > len(train):
        raise ConfigError(f"{shots} shots, but the training split has only {len(train)} examples")
    demos = train[:shots]
    was_training = model.training
    model.eval()
    max_new = max_new_tokens_for(tok, train, model.config.block_size)
    metrics, samples = {}, []
    for split in td.eval_splits:
        examples = as_questions(td, td.splits[split][:n_eval])
        prompts = [with_shots(ex, demos, template) if shots else ex for ex in examples]
        raw = shots > 0 and not isinstance(template, ChatTemplate)  # few-shot text: no template around it
        pred = generate_batch(model, tok, prompts, max_new, None if raw else template, batch_size)
        if raw:
            pred = [template.strip_response(p).split("\n\n")[0].strip() for p in pred]  # up to the next block
        gold = [reference_answer(ex) for ex in examples]
        if td.kind == "labelled":
            named = [verbalize(p, td.labels) for p in pred]
            m = {"accuracy": sum(n == g for n, g in zip(named, gold)) / len(gold),
                 "no_label": sum(n is None for n in named) / len(gold), "n": len(gold)}
        else:
            m = {"exact_match": exact_match(pred, gold), "n": len(gold)}
            if td.extra_metrics is not None:
                m.update(td.extra_metrics(pred))
        metrics[split] = m
        samples += [{"split": split, "input": _user_text(ex), "prediction": p, "reference": g}
                    for ex, p, g in list(zip(examples, pred, gold))[:3]]
    model.train(was_training)
    return metrics, samples
