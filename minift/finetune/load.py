"""A finished fine-tuning run, read back: `load_finetuned(run_dir)` rebuilds the model exactly as it was scored,
`evaluate_run(run_dir)` scores it again (on its own task, or on another built-in task of the same kind).

PEFT runs are rebuilt as base + method + adapter.pt, loaded strictly: the base must have the fingerprint the run
recorded (its weights, not only its shapes), and the adapter file must be for the same method and options.
Full runs load their model/ directory and head.pt.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from minift.base.cache import resolve_base
from minift.base.store import fingerprint, load_model_dir
from minift.data.task_data import load_task_data
from minift.errors import CheckpointError, ConfigError, InputError, MissingFileError
from minift.files import PathLike, file_sha256, load_json
from minift.finetune.classify import Classifier, load_head
from minift.finetune.config import FinetuneConfig
from minift.model.tokenizer import Tokenizer
from minift.finetune.evaluation import evaluate_task, max_new_tokens_for
from minift.finetune.run import FORMAT
from minift.finetune.templates import get_template, resolve_template_name
from minift.peft import MethodConfig, apply_method, load_adapter


def load_finetuned(run_dir: PathLike, device: str = "cpu", allow_other_base: bool = False
                   ) -> tuple[torch.nn.Module, Tokenizer, FinetuneConfig]:
    """(model, tokenizer, config) of a run: a Classifier for classification runs, else the GPT, in eval mode.
    PEFT runs are rebuilt as base + method + adapter.pt (loaded strictly: a file for another method, rank or base
    is refused; `allow_other_base=True` accepts a base whose weights changed); full runs load model/ and head.pt.
    config.template is the template the run used ("auto" resolved)."""
    run = Path(run_dir)
    meta = read_run(run)
    config = FinetuneConfig.from_dict(meta["config"])
    if meta["method_config"] is None:
        gpt, tok = load_model_dir(run / "model")
    else:
        gpt, tok, _ = resolve_base(config.base, progress=False)
        if fingerprint(gpt) != meta["base_fingerprint"] and not allow_other_base:
            raise CheckpointError(f"the base {config.base!r} has changed since {run} was trained (weights fingerprint "
                                  f"{meta['base_fingerprint']} then, {fingerprint(gpt)} now), so the adapter would "
                                  "not fit it; pretrain the same base again, re-run the fine-tuning, or pass "
                                  "--allow-other-base if you know the two are equivalent")
        apply_method(gpt, MethodConfig.from_dict(meta["method_config"]))
    config = replace(config, template=meta.get("template") or resolve_template_name(config.template,
                                                                                     gpt.config.block_size, tok))
    model = gpt
    if meta["kind"] == "labelled" and meta["method_config"] is None:
        model = load_head(run / "head.pt", gpt, meta["labels"])
    elif meta["kind"] == "labelled":
        model = Classifier(gpt, meta["labels"])  # a fresh head: adapter.pt holds the trained one
        model.peft_config = gpt.peft_config
    if meta["method_config"] is not None:
        load_adapter(model, run / "adapter.pt", allow_other_base=allow_other_base)
    return model.to(device).eval(), tok, config


def evaluate_run(run_dir: PathLike, task: str | None = None, n_eval: int | None = None,
                 allow_changed_data: bool = False, allow_other_base: bool = False) -> dict:
    """Score a finished run again: on its own task (and data), or on another built-in task of the same kind.
    Returns {split: metrics}, as results.json's "metrics".

    A run on a user's file is re-split from that file, so the file must be the one it trained on: its SHA-256 is
    compared with the one the run recorded, and an edited file is refused (its test split could now hold training
    rows), unless `allow_changed_data=True` (score on the new contents, knowing that)."""
    meta = read_run(Path(run_dir))
    config = FinetuneConfig.from_dict(meta["config"])
    if config.data and not task:
        check_data_unchanged(run_dir, config.data, meta.get("data_sha256"), allow_changed_data)
    model, tok, config = load_finetuned(run_dir, allow_other_base=allow_other_base)
    td = load_task_data(task or config.task, None if task else config.data, config.seed)
    if td.kind != meta["kind"] or (td.kind == "labelled" and td.labels != meta["labels"]):
        what = {"labelled": "a classification task", "instruction": "an instruction task"}
        raise ConfigError(f"the run {run_dir} learned {what[meta['kind']]}"
                          + (f" with labels {meta['labels']}" if meta["kind"] == "labelled" else "")
                          + f"; task {td.name!r} is {what[td.kind]}"
                          + (f" with labels {td.labels}" if td.kind == "labelled" else ""))
    max_new = meta["max_new_tokens"] or 32
    if task and td.kind == "instruction":
        max_new = max_new_tokens_for(tok, td.splits["train"], model.config.block_size)
    metrics, _ = evaluate_task(model, tok, td, get_template(config.template), max_new,
                               n_eval if n_eval is not None else config.n_eval)
    return metrics


def read_run(run: Path) -> dict:
    """finetune.json of a finished run; a directory that is not one, or a run that did not finish, is refused with
    what to do instead."""
    if not (run / "finetune.json").is_file():
        raise MissingFileError(f"{run} is not a fine-tuning run directory (no finetune.json); "
                               "create one with `minift finetune ... --out DIR`")
    if not (run / "results.json").is_file():
        raise MissingFileError(f"{run} holds a fine-tuning run that did not finish (no results.json); continue it "
                               "with the same `minift finetune` command and --resume, or run it again with --force")
    meta = load_json(run / "finetune.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise CheckpointError(f"{run / 'finetune.json'} is not a minift fine-tuning record ({FORMAT})")
    return meta


def check_data_unchanged(run_dir, data: str, recorded: str | None, allow_changed: bool) -> None:
    """The run's data file must still exist and hold the bytes it trained on (see `evaluate_run`)."""
    if not Path(data).is_file():
        raise MissingFileError(f"the data file {data} that {run_dir} trained on is gone; restore it, or score the run "
                               "on a built-in task with --task")
    if recorded is not None and file_sha256(data) != recorded and not allow_changed:
        raise InputError(f"{data} changed since {run_dir} trained on it, so its test split may now hold training "
                         "rows; restore the file, or pass --allow-changed-data to score on the new contents anyway")
