"""Where an alignment run (or a reward-model run) starts: the model it starts from and the data it learns from."""

from __future__ import annotations

import random

from minift.align.config import AlignConfig
from minift.base.cache import resolve_base
from minift.data.preferences import json_records, load_preference_jsonl, load_preferences
from minift.errors import ConfigError
from minift.finetune.load import load_finetuned
from minift.peft import merge_and_unload, method_of


def starting_policy(config: AlignConfig):
    """(model, tokenizer, preset) the run starts from: the base, or an SFT run made into a plain model."""
    if config.from_run is None:
        return resolve_base(config.base, progress=False)
    model, tok, sft = load_finetuned(config.from_run)
    if not hasattr(model, "generate"):  # a classification run: a head on a body, no answers to prefer
        raise ConfigError(f"{config.from_run} is a classification run; align from an instruction-tuning run (or a "
                          "base)")
    if method_of(model) is not None:
        if not type(method_of(model)).mergeable or type(method_of(model)).merge_targets:
            raise ConfigError(f"{config.from_run} used {method_of(model).method!r}, which cannot be merged into its "
                              "base for free; align from a full, LoRA, DoRA or (IA)³ run")
        merge_and_unload(model)
    _, _, preset = resolve_base(sft.base, progress=False)
    return model.train(), tok, preset


def preference_data(config: AlignConfig) -> dict[str, list[dict]]:
    if config.task == "json":
        splits = {s: json_records(s, config.seed) for s in ("train", "val", "test")}
    elif config.task is not None:
        splits = {s: load_preferences(config.task, s, config.seed) for s in ("train", "val", "test")}
    else:
        records = load_preference_jsonl(config.data)
        records = records[:]
        random.Random(config.seed).shuffle(records)
        n_test = max(1, len(records) // 10)
        splits = {"test": records[:n_test], "val": records[n_test:2 * n_test], "train": records[2 * n_test:]}
    if config.n_train is not None:
        splits["train"] = splits["train"][:config.n_train]
    return splits
