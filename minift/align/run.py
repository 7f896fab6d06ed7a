"""One alignment run, end to end: `align(AlignConfig(...), out_dir)`.

    1. the starting policy: the base, or a finished SFT run — full runs load their model, a LoRA / DoRA / (IA)³ run
       is merged into its base first, so the reference (below) is the SFT model itself; with sft_epochs > 0, first
       a supervised fine-tune of every weight on the chosen answers (the classic SFT → preference pipeline)
    2. the trainable part: a new LoRA (default; the reference is the policy with it switched off) or every weight
       (the reference is a frozen copy); dropout switched off everywhere (objective.disable_dropout)
    3. the preference data: a built-in set (minift.data.preferences) or your JSONL, encoded with the run's template
    4. training with the explicit loop (minift.training.train): the objective's loss, its per-step numbers in
       preference.jsonl (rewards of chosen and rejected, margin, pair accuracy, log-probs, lengths; for GRPO and
       RLOO — align/rl.py, which first checks the reward on known-good and known-bad answers — mean reward, KL,
       clip fraction, share of zero-spread groups, answer length)
    5. scoring on the held-out pairs: pair accuracy and margin of the implicit reward; greedy answers of the policy
       and of the reference to the test prompts, judged by the set's rules (align/judges.py): scores, the win rate of
       policy over reference, the answers' length; the KL from the reference on the policy's own answers
       (mean of Σ_t log π − log π_ref); forgetting on the pretraining text (as fine-tuning measures it)
    6. files: adapter.pt (LoRA) or model/ (full), results.json, preference.jsonl, metrics.jsonl, loss.png
"""

from __future__ import annotations

import copy
import random
import time
from contextlib import nullcontext
from typing import Callable
from pathlib import Path

import torch

from minift.align.config import DEFAULT_LR, RL_METHODS, AlignConfig
from minift.align.judges import JUDGES, win_rate
from minift.align.logprobs import model_logps
from minift.align.objective import (PreferenceConfig, Reference, disable_dropout, kto_loss_fn, pair_loss_fn,
                                    precompute_reference)
from minift.align.pairs import collate_pairs, collate_unpaired, encode_pairs, encode_unpaired
from minift.align.rl import RLConfig, rl_loss_fn, sanity_check
from minift.align.start import preference_data, starting_policy
from minift.base.store import save_model_dir
from minift.data.preferences import to_unpaired
from minift.errors import ConfigError
from minift.data.loaders import export_jsonl
from minift.files import PathLike, check_out_dir, prepare_out_dir, save_json
from minift.finetune.forgetting import forgetting, lm_val_loss, pretraining_batches
from minift.finetune.config import FULL_FINETUNING_LR
from minift.finetune.run import check_resumable
from minift.finetune.sft import encode_dataset, encode_ids, generate_batch, sft_collate, sft_loss_fn
from minift.finetune.templates import get_template, resolve_template_name
from minift.peft import apply_method, disabled, method_config, save_adapter
from minift.training.batches import epoch_batches
from minift.training.config import TrainConfig
from minift.training.device import seed_everything, use_threads
from minift.training.loop import train

FILES = ("adapter.pt", "model", "results.json", "preference.jsonl", "metrics.jsonl", "loss.png", "last.pt",
         "best.pt", "align.json")


def align(config: AlignConfig, out_dir: PathLike, force: bool = False, progress: bool = True,
          reward: Callable[[dict, str], float] | None = None, resume: bool = False) -> dict:
    """Run the stage (module docstring); returns results.json's record. `reward` (grpo, rloo): a function
    (record, answer) → score to train on instead of the set's rule — the scores reported stay the rule's.
    resume: continue from out_dir/last.pt (same settings; the loop restores weights, optimizer, step and random
    state, and batches are a function of the step). preference.jsonl then holds the steps trained after the
    resume, numbered as they were; metrics.jsonl holds them all."""
    t_start = time.perf_counter()
    use_threads(config.threads)
    out = Path(out_dir)
    check_out_dir(out, FILES, force=force, resume=resume)
    if resume and (out / "align.json").is_file():
        _check_resumable(out, config)
    splits = preference_data(config)
    rl = config.method in RL_METHODS
    kto = config.method == "kto" or "completion" in splits["train"][0]
    if kto and config.method != "kto":
        raise ConfigError(f"{config.data} holds unpaired records (completion, label): only kto trains on those")
    # the objective's settings, checked before anything is loaded; the held-out pairs are scored with DPO's
    # implicit reward whatever the method
    scfg = RLConfig(config.method, max_new_tokens=config.max_new_tokens, **config.options) if rl else \
        PreferenceConfig(config.method, **config.options)
    pcfg = PreferenceConfig("dpo") if rl else scfg
    train_reward = reward or (JUDGES[config.task] if rl else None)
    sanity = sanity_check(train_reward, splits["train"]) if rl else None
    seed_everything(config.seed)
    model, tok, preset = starting_policy(config)
    template = get_template(resolve_template_name(config.template, model.config.block_size, tok))
    probe = pretraining_batches(tok, preset)
    before_loss = lm_val_loss(model, probe)
    sft = sft_stage(model, tok, template, splits["train"], config, progress) if config.sft_epochs else None
    frozen = None
    if config.update == "lora":
        apply_method(model, method_config("lora"))
    else:
        frozen = copy.deepcopy(model)
    disable_dropout(model)
    reference = Reference(model, frozen)
    out = prepare_out_dir(out, FILES, force=force, resume=resume)
    if rl:
        loss_fn, batches, val, n_items, stats = _rl_objective(config, scfg, reference, tok, template, splits,
                                                              train_reward)
    else:
        loss_fn, batches, val, n_items, stats = _preference_objective(config, scfg, reference, tok, template, splits,
                                                                      kto, model.config.block_size)
    bs = config.batch_size
    steps = config.max_steps or max(1, round(config.epochs * -(-n_items // bs) / config.grad_accum))
    lr = config.lr or DEFAULT_LR[config.update]
    tcfg = TrainConfig(max_steps=steps, grad_accum=config.grad_accum, lr=lr, warmup_steps=max(1, steps // 10),
                       weight_decay=0.0, eval_every=max(1, steps // 5), log_every=max(1, min(10, steps // 5)),
                       seed=config.seed, device=config.device, dtype=config.dtype, progress=progress,
                       desc=f"align {config.method}")
    save_json(out / "align.json", {"format": "minift-align", "config": config.to_dict(), "objective": scfg.to_dict(),
                                   "kind": "rl" if rl else "unpaired" if kto else "paired"})
    result = train(model, loss_fn, batches, tcfg, val_batches=val, out_dir=out,
                   resume=resume and (out / "last.pt").is_file())
    records = [m for m in scfg.metrics if m["training"]]  # validation left out
    per_step = _per_step(records, config.grad_accum, first=result.steps - len(records) // config.grad_accum + 1)
    export_jsonl(per_step, out / "preference.jsonl")
    model.eval()
    scores = evaluate_alignment(model, reference, tok, template, splits["test"], config, pcfg)
    after_loss = lm_val_loss(model, probe)
    if config.update == "lora":
        save_adapter(model, out / "adapter.pt")
    else:
        save_model_dir(out / "model", model.cpu(), tok, preset=preset)
    record = {"method": config.method, "update": config.update, "task": config.task, "data": config.data,
              "config": config.to_dict(), "objective": scfg.to_dict(), "steps": result.steps, "lr": lr,
              "data_stats": stats, "sft": sft, "sanity": sanity, "train_seconds": result.elapsed_s,
              "wall_seconds": time.perf_counter() - t_start,
              "final_step": per_step[-1] if per_step else None, "forgetting": forgetting(before_loss, after_loss),
              **scores}
    save_json(out / "results.json", record)
    return record


def _preference_objective(config, pcfg, reference, tok, template, splits, kto: bool, block_size: int):
    """(loss_fn, train batches, val batches, training items, encoding stats) of a preference method."""
    max_len = config.max_len or block_size
    if kto:
        train_rec = splits["train"] if "completion" in splits["train"][0] else to_unpaired(splits["train"])
        val_rec = splits["val"] if "completion" in splits["val"][0] else to_unpaired(splits["val"])
        train_enc, stats = encode_unpaired(tok, train_rec, template, max_len)
        val_enc, _ = encode_unpaired(tok, val_rec, template, max_len)
        collate, loss_fn = collate_unpaired(tok.pad_id), kto_loss_fn(pcfg, reference)
    else:
        train_enc, stats = encode_pairs(tok, splits["train"], template, max_len)
        val_enc, _ = encode_pairs(tok, splits["val"], template, max_len)
        collate = collate_pairs(tok.pad_id)
        if config.precompute_ref and pcfg.needs_reference:
            for enc in (train_enc, val_enc):
                precompute_reference(enc, collate, reference, pcfg.average)
        loss_fn = pair_loss_fn(pcfg, reference)
    if not train_enc:
        raise ConfigError("no training pair is left after encoding (every answer was cut off); raise max_len")
    bs = config.batch_size
    val = [collate(val_enc[i:i + bs]) for i in range(0, len(val_enc), bs)]
    return loss_fn, epoch_batches(train_enc, bs, collate, seed=config.seed), val, len(train_enc), stats


def _rl_objective(config, rcfg, reference, tok, template, splits, reward):
    """(loss_fn, batches, None, training prompts, stats) of GRPO / RLOO: batch i is config.batch_size prompts of
    the shuffled training split (a pure function of i, as the loop requires)."""
    records = splits["train"][:]
    random.Random(config.seed).shuffle(records)
    bs = config.batch_size

    def batches(i: int) -> dict:
        return {"records": [records[(i * bs + j) % len(records)] for j in range(bs)], "index": i}

    loss_fn = rl_loss_fn(rcfg, reference if rcfg.beta else None, tok, template, reward, config.seed)
    return loss_fn, batches, None, len(records), {"n_prompts": len(records)}


def sft_stage(model, tok, template, train_pairs: list[dict], config: AlignConfig, progress: bool) -> dict:
    """Fine-tune every weight on the chosen answers (or on both answers of each pair: config.sft_on), in place;
    returns its numbers."""
    answers = ("chosen", "rejected") if config.sft_on == "both" else ("chosen",)
    if "completion" in train_pairs[0]:  # unpaired records: the desirable ones (or all)
        examples = [{"instruction": p["prompt"], "input": "", "output": p["completion"]} for p in train_pairs
                    if p["label"] or config.sft_on == "both"]
    else:
        examples = [{"instruction": p["prompt"], "input": "", "output": p[a]} for p in train_pairs for a in answers]
    enc, _ = encode_dataset(tok, examples, template, config.max_len or model.config.block_size)
    steps = max(1, round(config.sft_epochs * -(-len(enc) // config.sft_batch_size)))
    tcfg = TrainConfig(max_steps=steps, lr=FULL_FINETUNING_LR, warmup_steps=max(1, steps // 20), weight_decay=0.0,
                       eval_every=steps, log_every=max(1, min(10, steps)), seed=config.seed, device=config.device,
                       dtype=config.dtype, progress=progress, desc="align: sft on chosen")
    result = train(model, sft_loss_fn, epoch_batches(enc, config.sft_batch_size, sft_collate(tok.pad_id),
                                                      seed=config.seed), tcfg)
    model.train()
    return {"steps": result.steps, "final_loss": result.final_train_loss, "seconds": result.elapsed_s}


def _per_step(records: list[dict], k: int, first: int = 1) -> list[dict]:
    """Micro-batch records of the training passes → one per optimizer step (means), numbered from `first`."""
    out = []
    for i in range(0, len(records), k):
        chunk = records[i:i + k]
        out.append({"step": first + i // k, **{key: sum(r[key] for r in chunk) / len(chunk) for key in chunk[0]
                                               if key != "training"}})
    return out


RESUMABLE = {"device", "threads", "n_eval", "max_steps", "epochs"}  # a run may be extended


def _check_resumable(out: Path, config: AlignConfig) -> None:
    check_resumable(out, out / "align.json", config.to_dict(), RESUMABLE)


@torch.no_grad()
def evaluate_alignment(model, reference: Reference, tok, template, test: list[dict], config: AlignConfig,
                       pcfg: PreferenceConfig) -> dict:
    """Held-out pairs: accuracy and margin of the implicit reward β(log π − log π_ref); generated answers: rule
    scores, win rate, length, KL."""
    test = test[:config.n_eval] if config.n_eval else test
    out: dict = {"n_test": len(test)}
    if "chosen" in test[0]:
        enc, _ = encode_pairs(tok, test, template, config.max_len or model.config.block_size)
        # the implicit reward β(log π − log π_ref) of every method, reference-free ones included: did training
        # raise the chosen answer against the rejected one, relative to where the model started?
        collate = collate_pairs(tok.pad_id)
        pcfg_eval = PreferenceConfig("dpo", beta=pcfg.beta, average=pcfg.average)
        loss_fn = pair_loss_fn(pcfg_eval, reference)
        for i in range(0, len(enc), 16):
            loss_fn(model, collate(enc[i:i + 16]))
        n = len(pcfg_eval.metrics)
        for key in ("accuracy", "margin", "rewards_chosen", "rewards_rejected"):
            out[f"pair_{key}"] = sum(m[key] for m in pcfg_eval.metrics) / n
    prompts = [p["prompt"] for p in test]
    policy_answers = generate_batch(model, tok, prompts, config.max_new_tokens, template)
    ref_model = reference.frozen if reference.frozen is not None else model
    with disabled(ref_model) if reference.frozen is None else nullcontext():
        ref_answers = generate_batch(ref_model, tok, prompts, config.max_new_tokens, template)
    out["kl_policy_answers"] = _kl_on(model, reference, tok, template, prompts, policy_answers)
    out["length_policy"] = sum(len(tok.encode(a)) for a in policy_answers) / len(prompts)
    out["length_reference"] = sum(len(tok.encode(a)) for a in ref_answers) / len(prompts)
    judge = JUDGES.get(config.task) if config.task else None
    if judge is not None:
        sp = [judge(p, a) for p, a in zip(test, policy_answers)]
        sr = [judge(p, a) for p, a in zip(test, ref_answers)]
        out.update(judge_policy=sum(sp) / len(sp), judge_reference=sum(sr) / len(sr), win_rate=win_rate(sp, sr))
    if config.reward_model:  # the learned judge beside the rules
        from minift.align.reward_run import load_reward_model, score

        rm, rm_tok, rm_template = load_reward_model(config.reward_model)
        if rm_tok.vocab_size != tok.vocab_size:
            raise ConfigError(f"the reward model {config.reward_model} has another tokenizer than the policy; "
                              "train it on the same base")
        rp, rr = score(rm, rm_tok, rm_template, prompts, policy_answers), score(rm, rm_tok, rm_template, prompts,
                                                                                 ref_answers)
        out.update(rm_reward_policy=sum(rp) / len(rp), rm_reward_reference=sum(rr) / len(rr),
                   rm_win_rate=win_rate(rp, rr))
    out["samples"] = [{"prompt": p, "policy": a, "reference": b}
                      for p, a, b in list(zip(prompts, policy_answers, ref_answers))[:5]]
    return out


def _kl_on(model, reference, tok, template, prompts, answers) -> float:
    """Mean over prompts of Σ_t (log π − log π_ref) on the policy's own greedy answers (a KL estimate, k1)."""
    rows = [encode_ids(template.encode_prompt(tok, p, ""), tok.encode(template.response_text(a)) + [tok.eos_id],
                       model.config.block_size) for p, a in zip(prompts, answers)]
    rows = [r for r in rows if r is not None]
    total, n = 0.0, 0
    for i in range(0, len(rows), 16):
        ids, targets, mask = sft_collate(tok.pad_id)(rows[i:i + 16])
        lp = model_logps(model, ids, targets, mask)[0]
        total += float((lp - reference.logps(ids, targets, mask)).sum())
        n += ids.shape[0]
    return total / max(n, 1)
