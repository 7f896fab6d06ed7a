"""One fine-tuning run, start to finish: base model + task + method → trained weights, scores and costs on disk.

    finetune(config, out_dir)
      1. load the base (a preset from the cache, or a model directory) and measure its loss on the pretraining
         corpus's validation windows: L_before
      2. resolve the task (runs.TaskData): classification → `Classifier` (a new head on the last real token);
         instruction → SFT (template, prompt masking, EOS as a target)
      3. the method: "full" trains every weight, or only the last k blocks + the final LayerNorm (freeze_until=k);
         any PEFT method is `apply_method(gpt, method_config(name, **options))`, then the classifier head is attached,
         so it stays trainable (applying a method freezes everything present)
      4. `train.train` with validation loss on the val split (early stopping with `patience`); the best checkpoint
         (lowest validation loss) is loaded back
      5. the task's metric on the test split (qa: also the heldout facts); classification also reports the majority
         and bag-of-words baselines trained on the same examples
      6. forgetting: L_after on the same windows, with the method applied (a classifier: its GPT body, whose tied
         LM head still predicts tokens)
      7. out_dir: finetune.json (this config and what was resolved), metrics.jsonl, loss.png, last.pt, best.pt, the
         weights (PEFT: adapter.pt, only the method's tensors and the head; full: model/ (a model directory) and
         head.pt for a classifier) and results.json (one record, written last: it marks a finished run)
    Under torchrun (minift/distributed.py) every rank does 1–4 and trains; rank 0 alone does the rest and writes.

results.json = eval.ResultRecord's fields (metrics per split, baselines, forgetting, trainable/total parameters —
a new classification head counts as trainable —, config, samples) plus trainable_pct, weights_bytes, adapter_bytes,
optimizer_state_bytes, lr, steps, best_step, stop_reason, train_loss, val_loss (best), final_val_loss,
tokens_per_s, wall_seconds, peak_memory_mb (+ its kind), mergeable (None for full), device, method_config.

The settings of a run, their defaults and the per-method learning rates: minift/finetune_config.py.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

from . import __version__, distributed
from .base import load_model_dir, save_model_dir
from .classify import (Classifier, bow_logreg_baseline, classify_collate, classify_loss_fn, encode_labelled,
                       majority_baseline)
from .device import describe_device, pick_device
from .errors import CheckpointError, ConfigError, MissingFileError
from .eval import ResultRecord, forgetting
from .finetune_config import DEFAULT_EPOCHS, METHOD_DEFAULTS, FinetuneConfig  # noqa: F401 (METHOD_DEFAULTS: re-export)
from .peft import MethodConfig, apply_method, count_parameters, load_adapter, save_adapter
from .peft.reft import pinned_loss_fn
from .runs import (TaskData, base_lm_loss, context_reserve, evaluate_task, fingerprint, load_base_model, load_head,
                   load_task_data, lm_val_loss, max_new_tokens_for, optimizer_state_bytes, path_bytes,
                   peak_memory_mb, pretraining_batches, reset_peak_memory, save_head)
from .sft import encode_dataset, get_template, resolve_template_name, sft_collate, sft_loss_fn
from .optim import param_groups as default_param_groups
from .train import TrainConfig, epoch_batches, load_best, train
from .utils import load_json, prepare_out_dir, save_json, seed_everything

FORMAT = "minift-finetune-1"
# may change between a run and its resume: they do not decide what the finished steps saw
RESUMABLE_CHANGES = {"device", "n_eval", "max_steps", "epochs", "patience", "eval_every"}


# -- building the model --------------------------------------------------------------------------------------------

def freeze_all_but_last(model, k: int) -> None:
    """Full fine-tuning of the top only: the last k blocks and the final LayerNorm train; the embeddings (and so
    the tied LM head) and the lower blocks are frozen. k = 0 leaves only the final LayerNorm."""
    n = len(model.blocks)
    if k > n:
        raise ConfigError(f"freeze_until={k}, but the model has only {n} blocks; use 0 … {n}")
    model.requires_grad_(False)
    for block in model.blocks[n - k:]:
        block.requires_grad_(True)
    model.ln_f.requires_grad_(True)


def build_model(config: FinetuneConfig, gpt, tok, td: TaskData):
    """Put the method into the base GPT and, for classification, wrap it in a Classifier whose head is attached
    after the method (so the head is neither frozen nor wrapped). Returns (model, method config or None)."""
    seed_everything(config.seed)  # the method's and the head's random init
    cfg = None
    if config.method == "full":
        if config.freeze_until is not None:
            freeze_all_but_last(gpt, config.freeze_until)
    else:
        cfg = config.method_config(tok)
        apply_method(gpt, cfg)
    if td.kind != "labelled":
        return gpt, cfg
    clf = Classifier(gpt, td.labels)
    if cfg is not None:
        clf.peft_config = cfg  # save_adapter / load_adapter read the method from the model they are given
    return clf, cfg


def _batches(config: FinetuneConfig, model, tok, td: TaskData, template):
    """(loss_fn, train_batches, val_batches, data stats) for the task's kind."""
    max_len = config.max_len or model.config.block_size - context_reserve(model)
    if td.kind == "labelled":
        collate = classify_collate(tok.pad_id)
        train_enc = encode_labelled(tok, td.splits["train"], td.labels, max_len)
        val_enc = encode_labelled(tok, td.splits["val"], td.labels, max_len)
        loss_fn, stats = classify_loss_fn, {"n_train": len(train_enc)}
    else:
        collate = sft_collate(tok.pad_id)
        train_enc, stats = encode_dataset(tok, td.splits["train"], template, max_len, config.train_on_prompt)
        val_enc, _ = encode_dataset(tok, td.splits["val"], template, max_len, config.train_on_prompt)
        loss_fn = pinned_loss_fn(sft_loss_fn) if config.method in ("loreft", "direft") else sft_loss_fn
        stats = {"n_train": len(train_enc), **stats}
    bs = config.batch_size
    val = [collate(val_enc[i:i + bs]) for i in range(0, len(val_enc), bs)]
    return loss_fn, epoch_batches(train_enc, bs, collate, seed=config.seed), val, stats


def param_groups(config: FinetuneConfig, model):
    """AdamW groups (optim.param_groups' decay rule); a classifier's head gets its own group scaled to head_lr."""
    groups = default_param_groups(model, config.weight_decay)
    if config.head_lr is None or not isinstance(model, Classifier):
        return groups
    head = {id(p) for p in model.head.parameters()}
    out = []
    for g in groups:
        for params, scale in (([p for p in g["params"] if id(p) not in head], 1.0),
                              ([p for p in g["params"] if id(p) in head], config.head_lr / config.resolved_lr)):
            if params:
                out.append({**g, "params": params, "lr_scale": scale})
    return out


def train_config(config: FinetuneConfig, batches_per_epoch: int, progress: bool, world_size: int = 1) -> TrainConfig:
    """A step takes grad_accum micro-batches on each of world_size processes, which sets the steps per epoch."""
    steps = config.max_steps or max(1, math.ceil((config.epochs or DEFAULT_EPOCHS) * batches_per_epoch
                                                 / (config.grad_accum * world_size)))
    eval_every = config.eval_every or max(1, steps // 10)
    warmup = min(steps, config.warmup if config.warmup is not None else steps // 20)
    return TrainConfig(max_steps=steps, grad_accum=config.grad_accum, lr=config.resolved_lr, warmup_steps=warmup,
                       weight_decay=config.weight_decay, eval_every=eval_every, log_every=min(10, eval_every),
                       patience=config.patience, seed=config.seed, device=config.device, progress=progress,
                       desc=f"finetune {config.method}")


# -- the run -------------------------------------------------------------------------------------------------------

def finetune(config: FinetuneConfig, out_dir, force: bool = False, resume: bool = False,
             progress: bool = True) -> dict | None:
    """Run fine-tuning as described in the module docstring; returns the results.json record (under torchrun:
    on rank 0; the other ranks return None once training is done)."""
    t_start = time.perf_counter()
    out = Path(out_dir)
    device = distributed.init_from_env(pick_device(config.device))  # torchrun: this rank's device
    rank, world = distributed.world()
    if resume and (out / "finetune.json").is_file():
        _check_resumable(out, config)
    if rank == 0:
        out = prepare_out_dir(out, force=force, resume=resume,
                              markers=("finetune.json", "results.json", "metrics.jsonl", "last.pt"))
    distributed.barrier()  # the directory is ready (or cleared) before any rank looks into it
    reset_peak_memory(device)
    gpt, tok, preset = load_base_model(config.base, progress)
    base_print = fingerprint(gpt)
    td = load_task_data(config.task, config.data, config.seed, config.n_train)
    template_name = resolve_template_name(config.template, gpt.config.block_size)
    template = get_template(template_name)
    model, cfg = build_model(config, gpt, tok, td)
    reserve = context_reserve(model)
    if rank == 0:  # the forgetting probe, the scores and every file: rank 0's alone
        probe = pretraining_batches(tok, preset, reserve)
        before = lm_val_loss(gpt.to(device), probe) if cfg is None else base_lm_loss(gpt, probe, device)
        max_new = max_new_tokens_for(tok, td.splits["train"], gpt.config.block_size) if td.kind != "labelled" else 0
        save_json(out / "finetune.json", {
            "format": FORMAT, "config": config.to_dict(), "kind": td.kind, "labels": td.labels, "preset": preset,
            "method_config": cfg.to_dict() if cfg is not None else None, "base_fingerprint": base_print,
            "max_new_tokens": max_new, "template": template_name, "minift_version": __version__})

    loss_fn, train_batches, val_batches, data_stats = _batches(config, model, tok, td, template)
    tcfg = train_config(config, len(train_batches), progress, world)
    result = train(model, loss_fn, train_batches, tcfg, val_batches=val_batches, out_dir=out,
                   param_groups=param_groups(config, model), resume=resume and (out / "last.pt").is_file())
    if rank > 0:
        return None
    if (out / "best.pt").is_file():
        load_best(model, out)
    model.eval()

    metrics, samples = evaluate_task(model, tok, td, template, max_new, config.n_eval)
    baselines = {}
    if td.kind == "labelled":
        test = td.splits["test"][:config.n_eval]
        baselines = {b["name"]: b for b in (majority_baseline(td.splits["train"], test),
                                            bow_logreg_baseline(td.splits["train"], test))}
    after = lm_val_loss(gpt, probe)
    weights = _save_weights(out, model, gpt, tok, td, cfg, preset)
    counts = count_parameters(model)
    val_losses = [r["val_loss"] for r in result.history if "val_loss" in r]
    record = ResultRecord(
        run=out.name, task=td.name, method=config.method, base=config.base, metrics=metrics, baselines=baselines,
        forgetting=forgetting(before, after), trainable_params=counts["trainable"], total_params=counts["total"],
        train_seconds=result.elapsed_s, config=config.to_dict(), samples=samples)
    extra = {
        "kind": td.kind, "preset": preset, "method_config": cfg.to_dict() if cfg is not None else None,
        "trainable_pct": 100 * counts["fraction"], "weights_file": weights.name, "weights_bytes": path_bytes(weights),
        "adapter_bytes": path_bytes(weights) if cfg is not None else None,
        "optimizer_state_bytes": optimizer_state_bytes(counts["trainable"]), "lr": tcfg.lr,
        "steps": result.steps, "best_step": result.best_step, "stop_reason": result.stop_reason,
        "train_loss": result.final_train_loss, "val_loss": result.best_val_loss,
        "final_val_loss": val_losses[-1] if val_losses else None, "tokens_per_s": result.tokens_per_s,
        "wall_seconds": time.perf_counter() - t_start, "peak_memory_mb": peak_memory_mb(device),
        "peak_memory_kind": "cuda_allocated" if device.type == "cuda" else "process_rss",
        "mergeable": None if cfg is None else type(cfg).mergeable, "world_size": world,
        "device": describe_device(device) + (f" × {world} processes (DDP)" if world > 1 else ""),
        "data": data_stats, "max_new_tokens": max_new}
    d = {**record.to_dict(), **extra}
    save_json(out / "results.json", d)
    return d


def _check_resumable(out: Path, config: FinetuneConfig) -> None:
    old = load_json(out / "finetune.json").get("config", {})
    new = config.to_dict()
    changed = sorted(k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k])
    if changed:
        was = ", ".join(f"{k}={old.get(k)!r} (now {new[k]!r})" for k in changed)
        raise ConfigError(f"cannot resume {out}: it was started with {was}; resume with the same settings or "
                          "start a new run (--force)")


def _save_weights(out: Path, model, gpt, tok, td: TaskData, cfg, preset: str) -> Path:
    """PEFT: adapter.pt (method tensors + head). Full: model/ (a plain model directory) + head.pt."""
    if cfg is not None:
        save_adapter(model, out / "adapter.pt")
        return out / "adapter.pt"
    save_model_dir(out / "model", gpt.cpu(), tok, preset=preset, finetuned_on=td.name)
    if isinstance(model, Classifier):
        save_head(out / "head.pt", model)
    return out / "model"


# -- loading a finished run ----------------------------------------------------------------------------------------

def load_finetuned(run_dir, device: str = "cpu"):
    """(model, tokenizer, config) of a run: a Classifier for classification runs, else the GPT, in eval mode.
    PEFT runs are rebuilt as base + method + adapter.pt (loaded strictly: a file for another method, rank or base
    is refused); full runs load model/ and head.pt. config.template is the template the run used ("auto" resolved)."""
    run = Path(run_dir)
    if not (run / "finetune.json").is_file():
        raise MissingFileError(f"{run} is not a fine-tuning run directory (no finetune.json); "
                               "create one with `minift finetune ... --out DIR`")
    meta = load_json(run / "finetune.json")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{run / 'finetune.json'} is not a minift fine-tuning record ({FORMAT})")
    config = FinetuneConfig.from_dict(meta["config"])
    if meta["method_config"] is None:
        gpt, tok = load_model_dir(run / "model")
    else:
        gpt, tok, _ = load_base_model(config.base, progress=False)
        if fingerprint(gpt) != meta["base_fingerprint"]:
            raise CheckpointError(f"the base {config.base!r} has changed since {run} was trained (its weights differ), "
                                  "so the adapter would not fit it; pretrain the same base again or re-run")
        apply_method(gpt, MethodConfig.from_dict(meta["method_config"]))
    config = replace(config, template=meta.get("template") or resolve_template_name(config.template,
                                                                                     gpt.config.block_size))
    model = gpt
    if meta["kind"] == "labelled" and meta["method_config"] is None:
        model = load_head(run / "head.pt", gpt, meta["labels"])
    elif meta["kind"] == "labelled":
        model = Classifier(gpt, meta["labels"])  # a fresh head: adapter.pt holds the trained one
        model.peft_config = gpt.peft_config
    if meta["method_config"] is not None:
        load_adapter(model, run / "adapter.pt")
    return model.to(device).eval(), tok, config


def evaluate_run(run_dir, task: str | None = None, n_eval: int | None = None) -> dict:
    """Score a finished run again: on its own task (and data), or on another built-in task of the same kind.
    Returns {split: metrics}, as results.json's "metrics"."""
    model, tok, config = load_finetuned(run_dir)
    meta = load_json(Path(run_dir) / "finetune.json")
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
