"""A task resolved into splits, ready to train on: a built-in task (`minift.data.tasks`) or a user's JSONL/CSV file
(`minift.data.loaders`). The records' shape decides the kind: {"text", "label"} → classification ("labelled"),
{"instruction", "output"} or a conversation {"messages"} → instruction tuning ("instruction").

A user file has no splits, so it is shuffled with its own seeded generator and cut into train / val / test
(10% each for val and test, at least one example each).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from minift.data.loaders import label_set, load_examples
from minift.data.tasks import get_task, load_task
from minift.errors import InputError


@dataclass
class TaskData:
    """A task ready to train on: its kind, splits and how it is scored."""

    name: str                       # the built-in task name, or the data file's name
    kind: str                       # "labelled" (classification) or "instruction" (SFT)
    splits: dict[str, list[dict]]   # train, val, test (and heldout for qa)
    labels: list[str] = field(default_factory=list)  # classification: the class order of the head
    extra_metrics: Callable[[list[str]], dict] | None = None  # the task's own numbers (TaskSpec.extra_metrics)

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in ("test", "heldout") if s in self.splits]


def load_task_data(task: str | None = None, data: str | None = None, seed: int = 0, n_train: int | None = None
                   ) -> TaskData:
    """Resolve a built-in task name or a user file into a TaskData. n_train keeps a seeded random subset of the
    training split (the other splits stay whole, so runs with different n_train are scored on the same examples)."""
    if task is not None:
        spec = get_task(task)
        splits = {s: load_task(task, s, seed=seed) for s in spec.splits}
        td = TaskData(task, spec.kind, splits, list(spec.labels), spec.extra_metrics)
    else:
        examples = load_examples(data)
        kind = "instruction" if examples.report.kind == "chat" else examples.report.kind  # both are SFT
        if kind == "text":
            raise InputError(f"{data}: plain text (or records with only 'text') cannot be fine-tuned on here; give "
                             "{\"text\", \"label\"} records (classification), {\"instruction\", \"output\"} or "
                             "{\"messages\": [...]} (SFT)")
        if len(examples) < 5:
            raise InputError(f"{data}: {len(examples)} examples are too few to split into train / val / test; "
                             "give at least 5")
        pool = list(examples)
        random.Random(f"data-{seed}").shuffle(pool)
        n_held = max(1, round(0.1 * len(pool)))
        splits = {"val": pool[:n_held], "test": pool[n_held:2 * n_held], "train": pool[2 * n_held:]}
        td = TaskData(Path(data).name, kind, splits, label_set(pool) if kind == "labelled" else [])
    if n_train is not None and n_train < len(td.splits["train"]):
        td.splits["train"] = random.Random(f"n_train-{seed}").sample(td.splits["train"], n_train)
    return td
