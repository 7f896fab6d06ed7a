"""One fine-tuning run, start to finish: base model + task + method → trained weights, scores and costs on disk.

    finetune(config, out_dir)
      1. load the base (a preset from the cache, or a model directory) and measure its loss on the pretraining
         corpus's validation windows: L_before (minift.finetune.forgetting)
      2. resolve the task (minift.data.task_data): classification → `Classifier` (a new head on the last real
         token); instruction → SFT (template, prompt masking, EOS as a target)
      3. the method: "full" trains every weight, or only the last k blocks + the final LayerNorm (freeze_until=k);
         any PEFT method is `apply_method(gpt, config.method_config())`, then the classifier head is attached, so
         it stays trainable (applying a method freezes everything present)
      4. `minift.training.train` with validation loss on the val split (early stopping with `patience`); the best
         checkpoint (lowest validation loss) is loaded back
      5. the task's metrics on the test split (qa: also the heldout facts); classification also reports the
         majority and bag-of-words baselines trained on the same examples
      6. forgetting: L_after on the same windows, with the method applied (a classifier: its GPT body, whose tied
         LM head still predicts tokens); a real model also compares its greedy answers to general questions
         before and after (greedy_same)
      7. out_dir: finetune.json (this config and what was resolved), metrics.jsonl, loss.png, last.pt, best.pt, the
         weights (PEFT: adapter.pt, only the method's tensors and the head; full: model/ (a model directory) and
         head.pt for a classifier) and results.json (`ResultRecord`, written last: it marks a finished run)
    Under torchrun (minift/training/distributed.py) every rank does 1–4 and trains; rank 0 alone does the rest.

What a method changes in a run comes from the method itself (`MethodConfig`: its default lr, the context it
reserves, its loss hook); what a task adds to the scores comes from the task (`TaskSpec.extra_metrics`). This file
names no method and no task. Reading a finished run back: minift/finetune/load.py.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from minift import __version__
from minift.base.cache import check_base, resolve_base
from minift.base.store import MODEL_FILES, fingerprint, save_model_dir
from minift.data.task_data import TaskData, load_task_data
from minift.files import PathLike, check_out_dir, file_sha256, load_json, prepare_out_dir, save_json
from minift.finetune.classify import (Classifier, bow_logreg_baseline, classify_collate, classify_loss_fn,
                                      encode_labelled, majority_baseline, save_head)
from minift.finetune.config import DEFAULT_EPOCHS, MIN_DEFAULT_STEPS, TOO_FEW_STEPS, FinetuneConfig
from minift.finetune.evaluation import context_reserve, evaluate_task, max_new_tokens_for
from minift.finetune.forgetting import base_measures, forgetting, general_answers, lm_val_loss
from minift.finetune.record import ResultRecord
from minift.finetune.sft import encode_dataset, sft_collate, sft_loss_fn
from minift.finetune.templates import get_template, resolve_template_name
from minift.base.presets import PRESETS
from minift.errors import ConfigError, MiniftError
from minift.model.gpt import GPT, GPTConfig
from minift.peft import apply_method, count_parameters, save_adapter
from minift.quant.linear4bit import weight_memory_bytes
from minift.training import distributed
from minift.training.batches import epoch_batches
from minift.training.checkpoints import TRAINING_FILES
from minift.training.config import TrainConfig
from minift.training.costs import optimizer_state_bytes, path_bytes, peak_memory_mb, reset_peak_memory
from minift.training.device import (describe_device, pick_device, resolve_precision, seed_everything,
                                    use_threads)
from minift.training.loop import load_best, train
from minift.training.optim import param_groups as default_param_groups

FORMAT = "minift-finetune-1"
# may change between a run and its resume: they do not decide what the finished steps saw
RESUMABLE_CHANGES = {"device", "threads", "n_eval", "max_steps", "epochs", "patience", "eval_every"}
# every file a run writes, and all that --force may replace (a full run's model/ is a model directory)
RUN_FILES = ("finetune.json", "results.json", "adapter.pt", "head.pt", *(f"model/{n}" for n in MODEL_FILES),
             *TRAINING_FILES)


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


def make_batches(config: FinetuneConfig, model, tok, td: TaskData, template, cfg=None):
    """(loss_fn, train_batches, val_batches, data stats) for the task's kind; a method may wrap the SFT loss.
    n_eval caps the validation split as it caps the test splits (a large model's validation pass is not cheap)."""
    max_len = config.max_len or model.config.block_size - context_reserve(model)
    if td.kind == "labelled":
        collate = classify_collate(tok.pad_id)
        train_enc = encode_labelled(tok, td.splits["train"], td.labels, max_len)
        val_enc = encode_labelled(tok, td.splits["val"][:config.n_eval], td.labels, max_len)
        loss_fn, stats = classify_loss_fn, {"n_train": len(train_enc)}
    else:
        collate = sft_collate(tok.pad_id)
        train_enc, stats = encode_dataset(tok, td.splits["train"], template, max_len, config.train_on_prompt)
        val_enc, _ = encode_dataset(tok, td.splits["val"][:config.n_eval], template, max_len, config.train_on_prompt)
        loss_fn = sft_loss_fn if cfg is None else cfg.wrap_sft_loss(sft_loss_fn)
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
    """A step takes grad_accum micro-batches on each of world_size processes, which sets the steps per epoch.
    With neither epochs nor max_steps given: DEFAULT_EPOCHS epochs, but at least MIN_DEFAULT_STEPS steps, so that
    a file of a few hundred rows is seen often enough to learn from (the built-in tasks have 220–320 steps)."""
    steps = config.max_steps or max(1, math.ceil((config.epochs or DEFAULT_EPOCHS) * batches_per_epoch
                                                 / (config.grad_accum * world_size)))
    if config.max_steps is None and config.epochs is None:
        steps = max(steps, MIN_DEFAULT_STEPS)
    eval_every = config.eval_every or max(1, steps // 10)
    warmup = min(steps, config.warmup if config.warmup is not None else steps // 20)
    return TrainConfig(max_steps=steps, grad_accum=config.grad_accum, lr=config.resolved_lr, warmup_steps=warmup,
                       weight_decay=config.weight_decay, eval_every=eval_every, log_every=min(10, eval_every),
                       patience=config.patience, seed=config.seed, device=config.device, dtype=config.dtype,
                       progress=progress,
                       desc=f"finetune {config.method}")


# -- the run -------------------------------------------------------------------------------------------------------

def finetune(config: FinetuneConfig, out_dir: PathLike, force: bool = False, resume: bool = False,
             progress: bool = True) -> dict | None:
    """Run fine-tuning as described in the module docstring; returns the results.json record as a dict (under
    torchrun: on rank 0; the other ranks return None once training is done)."""
    t_start = time.perf_counter()
    out = Path(out_dir)
    use_threads(config.threads)
    device = distributed.init_from_env(pick_device(config.device))  # torchrun: this rank's device
    resolve_precision(device, config.dtype)  # bf16 where it cannot run fails here, before anything is loaded
    rank, world = distributed.world()
    # everything that can be checked cheaply is checked before the base is loaded (or pretrained, minutes)
    check_out_dir(out, RUN_FILES, force=force, resume=resume)
    if resume and (out / "finetune.json").is_file():
        _check_resumable(out, config)
    check_base(config.base)
    td = load_task_data(config.task, config.data, config.seed, config.n_train)
    check_method_fits(config)
    if rank == 0:
        if resume and not (out / "last.pt").is_file():
            print(f"minift: nothing to resume in {out} (no last.pt): starting a new run", file=sys.stderr)
        out = prepare_out_dir(out, RUN_FILES, force=force, resume=resume)
    distributed.barrier()  # the directory is ready (or cleared) before any rank looks into it
    reset_peak_memory(device)
    gpt, tok, preset = resolve_base(config.base, progress)
    template_name = resolve_template_name(config.template, gpt.config.block_size, tok)
    template = get_template(template_name)
    base_print = fingerprint(gpt)
    if rank == 0:  # the forgetting probe, the scores and every file: rank 0's alone
        # the base's side of the forgetting probe (a real model: also its answers to general questions), cached;
        # measured on the base as given, before the method is applied (QLoRA replaces the base by a 4-bit copy, and
        # what that costs belongs in the run's Δ)
        reserve = 0 if config.method == "full" else config.method_config(tok).reserved_positions()
        probe, before, answers_before = base_measures(gpt, tok, preset, reserve, template, template_name, base_print,
                                                      device)
    model, cfg = build_model(config, gpt, tok, td)
    if rank == 0:
        max_new = max_new_tokens_for(tok, td.splits["train"], gpt.config.block_size) if td.kind != "labelled" else 0
        save_json(out / "finetune.json", {
            "format": FORMAT, "config": config.to_dict(), "kind": td.kind, "labels": td.labels, "preset": preset,
            "method_config": cfg.to_dict() if cfg is not None else None, "base_fingerprint": base_print,
            "max_new_tokens": max_new, "template": template_name, "minift_version": __version__,
            "data_sha256": file_sha256(config.data) if config.data else None})

    loss_fn, train_batches, val_batches, data_stats = make_batches(config, model, tok, td, template, cfg)
    tcfg = train_config(config, len(train_batches), progress, world)
    notes = []
    if tcfg.max_steps < TOO_FEW_STEPS:
        notes.append(f"only {tcfg.max_steps} optimizer steps ({data_stats['n_train']} training examples): probably "
                     "too few to learn the task; give more data, --epochs or --max-steps")
        if rank == 0:
            print(f"minift: warning: {notes[-1]}", file=sys.stderr)
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
    greedy = None if answers_before is None else (answers_before,
                                                  general_answers(gpt, tok, template, context_reserve(model)))
    notes += run_warnings(result, before, after, tcfg.lr)
    weights = _save_weights(out, model, gpt, tok, td, cfg, preset)
    counts = count_parameters(model)
    val_losses = [r["val_loss"] for r in result.history if "val_loss" in r]
    record = ResultRecord(
        run=out.name, task=td.name, kind=td.kind, method=config.method, base=config.base, preset=preset,
        config=config.to_dict(), method_config=cfg.to_dict() if cfg is not None else None,
        metrics=metrics, baselines=baselines, forgetting=forgetting(before, after, greedy),
        trainable_params=counts["trainable"], total_params=counts["total"],
        trainable_pct=100 * counts["fraction"], optimizer_state_bytes=optimizer_state_bytes(counts["trainable"]),
        weights_file=weights.name, weights_bytes=path_bytes(weights),
        adapter_bytes=path_bytes(weights) if cfg is not None else None,
        mergeable=None if cfg is None else type(cfg).mergeable, lr=tcfg.lr, steps=result.steps,
        best_step=result.best_step, stop_reason=result.stop_reason, train_loss=result.final_train_loss,
        val_loss=result.best_val_loss, final_val_loss=val_losses[-1] if val_losses else None,
        train_seconds=result.elapsed_s, wall_seconds=time.perf_counter() - t_start,
        tokens_per_s=result.tokens_per_s, peak_memory_mb=peak_memory_mb(device),
        peak_memory_kind="cuda_allocated" if device.type == "cuda" else "process_rss",
        device=describe_device(device, config.dtype) + (f" × {world} processes (DDP)" if world > 1 else ""),
        world_size=world, threads=use_threads(None), base_weight_bytes=weight_memory_bytes(model),
        data=data_stats, max_new_tokens=max_new, warnings=notes, samples=samples)
    record.save(out / "results.json")
    return record.to_dict()


def check_method_fits(config: FinetuneConfig) -> None:
    """Apply the method to a weightless copy of the base's architecture (the "meta" device: shapes, no numbers), so
    a method that cannot fit the model (LoRA rank above a layer's size, an unknown target) fails before the base
    is loaded or pretrained. A base whose architecture cannot be read yet is checked later, for real."""
    cfg = None if config.method == "full" else config.method_config()
    arch = _architecture(config.base)
    if cfg is None or arch is None or getattr(cfg, "init", None) == "text":  # text init needs the tokenizer
        return
    import torch

    try:
        with torch.device("meta"):
            apply_method(GPT(arch), cfg)
    except MiniftError:
        raise
    except Exception:  # an operation the meta device lacks: the real application below checks it all the same
        return


def _architecture(base: str) -> GPTConfig | None:
    if base in PRESETS:
        p = PRESETS[base]
        return GPTConfig(vocab_size=p.vocab_size, **p.model)
    config_file = Path(base) / "config.json"
    if config_file.is_file():
        try:
            meta = load_json(config_file)
            return GPTConfig.from_dict(meta["model"]) if meta.get("architecture", "gpt") == "gpt" else None
        except (MiniftError, KeyError, TypeError):
            return None  # resolve_base reports what is wrong with the directory
    return None


def run_warnings(result, before: float, after: float, lr: float) -> list[str]:
    """What went visibly wrong in a finished run, in words: a training loss that never came down (diverged or
    stuck), or a model that forgot most of what pretraining taught it."""
    notes = []
    losses = [r["train_loss"] for r in result.history if "train_loss" in r]
    if len(losses) >= 2 and losses[-1] >= losses[0]:
        notes.append(f"the training loss did not come down ({losses[0]:.3g} at the first log, {losses[-1]:.3g} at "
                     f"the end): the run diverged or is stuck; lower the learning rate (it was {lr:.3g})")
    if after - before > 1.0:
        notes.append(f"the model forgot much of its pretraining (pretraining-text loss {before:.3f} → {after:.3f}); "
                     "a lower learning rate, fewer steps or a PEFT method keep more of it")
    return notes


def _check_resumable(out: Path, config: FinetuneConfig) -> None:
    check_resumable(out, out / "finetune.json", config.to_dict(), RESUMABLE_CHANGES)


def check_resumable(out: Path, record: Path, new: dict, resumable) -> None:
    """Refuse to resume the run in `out` with settings other than those its `record` (a JSON file with a "config")
    was started with, except the keys in `resumable` (device, threads, a longer run, …)."""
    old = load_json(record).get("config", {})
    changed = sorted(k for k in new if k not in resumable and old.get(k) != new[k])
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
