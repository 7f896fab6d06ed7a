"""Fine-tuning on a stream of updates, one after another, and what is kept: `continual(ContinualConfig(...), out)`.

For each update t of the changing world (data/updates.py), in order:

    1. the model is asked the held-out question of update t's facts BEFORE it learns them (a changed price: does it
       still give the old one?)
    2. training data: update t's training questions and documents (`train_on`), with `mitigation` (one, or several
       joined by "+": replay+l2sp):
         replay   a share p of the examples drawn from earlier updates — only those whose fact is still current: a
                  replayed old price would teach the stale answer again
         ewc      + Σ (λ/2) F (θ − θ*)²: θ* the weights after the previous update, F the sum of the diagonal Fishers
                  of every earlier update's examples (the empirical Fisher, continual/regularizers.py)
         l2sp     + (α/2) ‖θ − θ⁰‖²: θ⁰ the trainable weights at the start of the stream
       a penalty Ω enters the loss as n·Ω per micro-batch of n supervised tokens, so that the loop's division by the
       step's token count N (training/loop.py) leaves exactly ∇(token-mean loss) + ∇Ω
    3. `method`: full (every weight), lora (one adapter trained through the whole stream) or lora-merge (a new
       adapter per update, merged into the weights when the update is learned; keeping each update's adapter
       separate instead computes the same function — a merge is exact — and only adds the option to switch one off)
    4. measures, on questions no training example phrases (held-out templates): accuracy on update t's facts
       (`new`), on earlier facts still current (`earlier`), on every fact that replaced a value (`changed`, and
       `stale`: the answer gives the replaced value); `seen`: update t's own training questions (memorised, not
       necessarily learned); general forgetting: the loss on the base's pretraining text (general English for a
       real model) minus the base's

Files: continual.json (the config), updates.jsonl (one record per update), results.json, curves.png. The paper trail:
EWC — Kirkpatrick et al., 2017; L2-SP — Li et al., 2018; replay — Scialom et al., 2022 (docs/continual.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from minift.continual.measures import ask, save_curves, score_answers
from minift.continual.regularizers import diagonal_fisher, ewc_penalty, l2sp_penalty, mix_replay
from minift.data.loaders import export_jsonl
from minift.data.updates import current_facts, names_value, questions_after, update_examples, update_stream
from minift.continual.config import CONTINUAL_FULL_LR, ContinualConfig
from minift.files import PathLike, check_out_dir, prepare_out_dir, save_json
from minift.finetune.forgetting import lm_val_loss, pretraining_batches
from minift.finetune.sft import encode_example, encode_ids, sft_collate, sft_loss_fn
from minift.finetune.templates import get_template, resolve_template_name
from minift.training.batches import epoch_batches
from minift.training.config import TrainConfig
from minift.training.device import pick_device, seed_everything, use_threads
from minift.training.loop import move_to, train

FILES = ("continual.json", "updates.jsonl", "results.json", "curves.png")


def continual(config: ContinualConfig, out_dir: PathLike, force: bool = False, progress: bool = True,
              model_and_tok=None) -> dict:
    """Run the stream (module docstring); returns results.json's record. model_and_tok: (model, tok, preset) to
    start from instead of loading config.base (the model is changed in place)."""
    from minift.base.cache import resolve_base
    from minift.peft import apply_method, merge_and_unload, method_config

    use_threads(config.threads)
    out = Path(out_dir)
    check_out_dir(out, FILES, force=force)
    seed_everything(config.seed)
    model, tok, preset = model_and_tok or resolve_base(config.base, progress=False)
    model.to(pick_device(config.device))  # first, so that anchors, Fishers and batches all live where the model does
    template = get_template(resolve_template_name("auto", model.config.block_size, tok))
    probe = pretraining_batches(tok, preset)
    base_loss = lm_val_loss(model, probe)
    lora = config.method in ("lora", "lora-merge")
    lr = config.lr or (method_config("lora").default_lr if lora else CONTINUAL_FULL_LR)
    if config.method == "lora":
        apply_method(model, method_config("lora"))
    start = _trainable(model) if "l2sp" in config.mitigations else {}
    stream = update_stream(config.n_updates, config.facts, config.paraphrases, seed=config.seed)
    out = prepare_out_dir(out, FILES, force=force)
    save_json(out / "continual.json", {"format": "minift-continual", "config": config.to_dict()})
    fisher: dict[str, torch.Tensor] = {}
    anchors: dict[str, torch.Tensor] = {}
    seen_examples: list[dict] = []          # every earlier update's (raw) examples, for replay
    records = []
    for t, up in enumerate(stream):
        model.eval()
        questions = questions_after(stream, t)
        fresh = [q for q in questions if q["update"] == t]  # asked before they are learned
        before = score_answers(ask(model, tok, template, fresh, config.max_new_tokens), fresh, t)
        if config.method == "lora-merge":
            apply_method(model, method_config("lora"))
        new = update_examples(up, config.train_on)
        current = current_facts(stream, t)
        pool = [ex for ex in seen_examples if _still_true(ex, current)]
        replay = config.replay if "replay" in config.mitigations and pool else 0.0
        n_total = round(len(new) / (1 - replay))
        data = mix_replay(new, pool, replay, n_total,
                          seed=config.seed + t)
        enc = [_encode(tok, ex, template, model.config.block_size) for ex in data]
        steps = max(1, math.ceil(config.epochs * len(enc) / config.batch_size))
        penalty = _penalty(config, fisher, anchors, start)
        tcfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0,
                           eval_every=steps, log_every=max(1, min(10, steps)), seed=config.seed + t,
                           device=config.device, dtype=config.dtype, save_checkpoints=False, progress=progress,
                           desc=f"update {t + 1}/{len(stream)}")
        model.train()
        result = train(model, _with_penalty(penalty), epoch_batches(enc, config.batch_size,
                                                                   sft_collate(tok.pad_id), seed=config.seed + t),
                       tcfg)
        model.eval()
        if "ewc" in config.mitigations:  # this update's Fisher joins the earlier ones; θ* moves here
            own = [_encode(tok, ex, template, model.config.block_size) for ex in new]
            for name, f in _fisher(model, own, tok.pad_id).items():
                fisher[name] = fisher[name] + f if name in fisher else f
            anchors = _trainable(model)
        if config.method == "lora-merge":
            merge_and_unload(model)
        seen_examples += new
        answers = ask(model, tok, template, questions, config.max_new_tokens)
        scores = score_answers(answers, questions, t)
        seen = up.train
        seen_acc = score_answers(ask(model, tok, template, seen, config.max_new_tokens),
                                 [{**q, "old": None, "update": t} for q in seen], t)["new"]
        probe_loss = lm_val_loss(model, probe)
        records.append({"update": t, "date": up.date, "steps": result.steps, "examples": len(data),
                        "replayed": len(data) - len(new),
                        "train_seconds": result.elapsed_s, "final_loss": result.final_train_loss,
                        "new_before": before["new"], "stale_before": before["stale_new"], **scores,
                        "seen": seen_acc, "probe_loss": probe_loss, "forgetting": probe_loss - base_loss,
                        "answers": [{"question": q["instruction"], "value": q["value"], "old": q["old"],
                                     "update": q["update"], "answer": a} for q, a in zip(questions, answers)]})
        export_jsonl(records, out / "updates.jsonl")
    probe_text = "pretraining text" if preset is not None else "general English"  # what forgetting is measured on
    record = {"config": config.to_dict(), "name": config.name, "base_loss": base_loss, "lr": lr, "probe": probe_text,
              "updates": records, "summary": summarise(records)}
    save_json(out / "results.json", record)
    save_curves(records, out / "curves.png", title=f"{config.base}: {config.name}", probe=probe_text)
    return record


def summarise(records: list[dict]) -> dict:
    """The stream in a few numbers: mean accuracy on each update's new facts right after learning it, what is kept
    of earlier facts at the end, changed facts and stale answers at the end, final general forgetting, time."""
    last = records[-1]
    return {"learned": sum(r["new"] for r in records) / len(records), "retained": last["earlier"],
            "changed": last["changed"], "stale": last["stale"], "forgetting": last["forgetting"],
            "train_seconds": sum(r["train_seconds"] for r in records),
            "seconds_per_update": sum(r["train_seconds"] for r in records) / len(records)}


def _still_true(example: dict, current: dict[str, str]) -> bool:
    text = example["output"] if "output" in example else example["text"]
    return names_value(text, current[example["key"]])


def _encode(tok, example: dict, template, block_size: int) -> dict:
    if "text" in example:  # a document: plain text, every token a target
        return encode_ids([], tok.encode(example["text"]) + [tok.eos_id], block_size, train_on_prompt=True)
    return encode_example(tok, example, template, block_size)


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _penalty(config: ContinualConfig, fisher, anchors, start):
    """Ω(θ): the sum of the switched-on penalties (None when there is none)."""
    terms = []
    if "ewc" in config.mitigations and fisher:
        terms.append(lambda params: ewc_penalty(params, anchors, fisher, config.ewc_lambda))
    if "l2sp" in config.mitigations:
        terms.append(lambda params: l2sp_penalty(params, start, config.l2sp_alpha))
    return (lambda params: sum(term(params) for term in terms)) if terms else None


def _with_penalty(penalty):
    """sft_loss_fn, plus n·Ω(θ) for a micro-batch of n supervised tokens (the module docstring says why n)."""
    if penalty is None:
        return sft_loss_fn

    def loss_fn(model, batch):
        total, n = sft_loss_fn(model, batch)
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        return total + n * penalty(params).to(total.device), n
    return loss_fn


def _fisher(model, encoded: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """The empirical diagonal Fisher over one update's examples: log p(y|x) = −(summed token loss) of each."""
    collate, device = sft_collate(pad_id), next(model.parameters()).device
    return diagonal_fisher(model, encoded, lambda m, ex: -sft_loss_fn(m, move_to(collate([ex]), device))[0])
