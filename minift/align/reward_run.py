"""A reward-model run: `train_reward(RewardConfig(...), out_dir)`, and `load_reward_model(out_dir)` to use it.

    body  = the base (or an SFT run, merged) ;  RewardModel(body) = body + scalar head (reward.py)
    train = Bradley–Terry on the training pairs with the explicit loop (a LoRA on the body and the head, or every
            weight), validation loss on the val pairs
    score = accuracy (strict r_c > r_r) and mean margin on the held-out test pairs
    files = adapter.pt (LoRA + head) or model/ + head.pt (full), reward.json (what to rebuild it from), results.json

InstructGPT (Ouyang et al., 2022) trains its reward model from the SFT model with the LM head replaced by a scalar
head; a reward model is a classifier of pairs, so its accuracy on held-out pairs is the first thing to check.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from minift.align.config import DEFAULT_LR, AlignConfig, RewardConfig
from minift.align.reward import (RewardModel, collate_reward_pairs, encode_reward_pairs, encode_scored,
                                 reward_loss_fn, score_pairs, score_texts)
from minift.align.start import preference_data, starting_policy
from minift.base.store import load_model_dir, save_model_dir
from minift.errors import ConfigError, MissingFileError
from minift.files import PathLike, check_out_dir, load_json, prepare_out_dir, save_json, torch_load, torch_save_atomic
from minift.finetune.templates import get_template, resolve_template_name
from minift.peft import apply_method, load_adapter, method_config, save_adapter
from minift.training.batches import epoch_batches
from minift.training.config import TrainConfig
from minift.training.device import seed_everything, use_threads
from minift.training.loop import train

FILES = ("adapter.pt", "model", "head.pt", "reward.json", "results.json", "metrics.jsonl", "loss.png", "last.pt",
         "best.pt")


def train_reward(config: RewardConfig, out_dir: PathLike, force: bool = False, progress: bool = True) -> dict:
    t_start = time.perf_counter()
    use_threads(config.threads)
    out = Path(out_dir)
    check_out_dir(out, FILES, force=force)
    as_align = AlignConfig(base=config.base, from_run=config.from_run, task=config.task, data=config.data,
                           n_train=config.n_train, seed=config.seed)
    splits = preference_data(as_align)
    if "chosen" not in splits["train"][0]:
        raise ConfigError("a reward model learns from pairs ({prompt, chosen, rejected}); this file is unpaired")
    seed_everything(config.seed)
    body, tok, _ = starting_policy(as_align)
    template_name = resolve_template_name(config.template, body.config.block_size, tok)
    template = get_template(template_name)
    if config.update == "lora":
        apply_method(body, method_config("lora"))
    rm = RewardModel(body)
    if config.update == "lora":
        rm.peft_config = body.peft_config  # save_adapter reads the method from the model it is given
    max_len = config.max_len or body.config.block_size
    enc = {s: encode_reward_pairs(tok, splits[s], template, max_len) for s in ("train", "val", "test")}
    out = prepare_out_dir(out, FILES, force=force)
    bs, collate = config.batch_size, collate_reward_pairs(tok.pad_id)
    steps = config.max_steps or max(1, round(config.epochs * -(-len(enc["train"]) // bs)))
    lr = config.lr or DEFAULT_LR[config.update]
    tcfg = TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 10), weight_decay=0.0,
                       eval_every=max(1, steps // 5), log_every=max(1, min(10, steps // 5)), seed=config.seed,
                       device=config.device, dtype=config.dtype, progress=progress, desc="reward model")
    val = [collate(enc["val"][i:i + bs]) for i in range(0, len(enc["val"]), bs)]
    loss_fn = reward_loss_fn(config.margin, config.center)
    result = train(rm, loss_fn, epoch_batches(enc["train"], bs, collate, seed=config.seed), tcfg, val_batches=val,
                   out_dir=out)
    rm.eval()
    test = score_pairs(rm, enc["test"], tok.pad_id)
    save_json(out / "reward.json", {"format": "minift-reward", "config": config.to_dict(), "template": template_name})
    if config.update == "lora":
        save_adapter(rm, out / "adapter.pt")
    else:
        save_model_dir(out / "model", body.cpu(), tok)
        torch_save_atomic({k: v.detach().cpu() for k, v in rm.head.state_dict().items()}, out / "head.pt")
    record = {"task": config.task, "data": config.data, "update": config.update, "steps": result.steps, "lr": lr,
              "test": test, "train": score_pairs(rm, enc["train"][:200], tok.pad_id),
              "train_seconds": result.elapsed_s, "wall_seconds": time.perf_counter() - t_start}
    save_json(out / "results.json", record)
    return record


def load_reward_model(run_dir: PathLike) -> tuple[RewardModel, object, object]:
    """(reward model in eval mode, tokenizer, template) of a finished `train_reward` run."""
    run = Path(run_dir)
    if not (run / "reward.json").is_file():
        raise MissingFileError(f"{run} is not a reward-model run (no reward.json); train one with "
                               "`minift reward train ... --out DIR`")
    meta = load_json(run / "reward.json")
    config = RewardConfig(**meta["config"])
    if config.update == "lora":
        body, tok, _ = starting_policy(AlignConfig(base=config.base, from_run=config.from_run, task=config.task,
                                                   data=config.data))
        apply_method(body, method_config("lora"))
        rm = RewardModel(body)
        rm.peft_config = body.peft_config
        load_adapter(rm, run / "adapter.pt")
    else:
        body, tok = load_model_dir(run / "model")
        rm = RewardModel(body)
        rm.head.load_state_dict(torch_load(run / "head.pt"))
    return rm.eval(), tok, get_template(meta["template"])


@torch.no_grad()
def score(rm: RewardModel, tok, template, prompts: list[str], answers: list[str]) -> list[float]:
    """r(x, y) for each (prompt, answer), laid out as the reward model was trained."""
    rows = [encode_scored(tok, p, a, template, rm.config.block_size) for p, a in zip(prompts, answers)]
    return score_texts(rm, rows, tok.pad_id)

