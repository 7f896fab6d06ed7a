"""RL with verifiable rewards: GRPO and RLOO on the built-in sets, their rewards checked by rules (judges.py).

One optimizer step (the training loop's loss_fn, grpo.py for the maths):

    1. take the step's prompts; sample G answers to each from the current policy (temperature T, the KV cache,
       all B·G in one batch; an answer ends at its first end-of-turn token, which it is trained to produce)
    2. reward every answer with the set's rule (a pure function), advantages per group (GRPO: mean/std; Dr. GRPO:
       mean only; RLOO: leave-one-out); groups whose rewards are all equal are counted and skipped
    3. per-token log-probs with gradients; π_old = π_θ detached (one update per sample, so ρ = 1 in value);
       π_ref = the policy with its adapter switched off (or a frozen copy), for β · k3
    4. the clipped surrogate per token, averaged as `aggregation` says; logged: mean reward, KL (mean k3), clip
       fraction, share of zero-spread groups, answer length

Before the first step, `sanity_check` scores each prompt's known-good answer (the pair's chosen) and known-bad one
(its rejected): a reward that does not prefer the good ones refuses to train — a reward bug is the most common
way RL goes wrong (one that pays for failing to parse, or for a format while the content stays wrong).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from minift.align import grpo
from minift.align.logprobs import token_logps
from minift.align.objective import Reference
from minift.errors import ConfigError
from minift.finetune.sft import encode_ids, left_pad, sft_collate
from minift.model.gpt import IGNORE_INDEX

RL_METHODS = ("grpo", "rloo")


@dataclass
class RLConfig:
    method: str = "grpo"
    group: int = 8                 # G answers per prompt (2 works: a pairwise contrast, GRPO's bridge to DPO)
    beta: float = 0.04             # weight of the KL to the reference (DeepSeekMath's; 0 drops the reference)
    clip_eps: float = 0.2
    temperature: float = 1.0
    aggregation: str = "grpo"      # grpo | dapo | dr_grpo (grpo.py)
    scale_by_std: bool = True      # False: Dr. GRPO's advantages
    skip_zero_spread: bool = True
    max_new_tokens: int = 24
    metrics: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self):
        if self.method not in RL_METHODS:
            raise ConfigError(f"unknown RL method {self.method!r}; use one of {RL_METHODS}")
        if not isinstance(self.group, int) or self.group < 2:
            raise ConfigError(f"group (G answers per prompt) must be an integer ≥ 2, got {self.group!r}")
        if self.aggregation not in grpo.AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {grpo.AGGREGATIONS}, got {self.aggregation!r}")
        if not self.temperature > 0:
            raise ConfigError("RL samples its answers: temperature must be positive")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("method", "group", "beta", "clip_eps", "temperature", "aggregation",
                                               "scale_by_std", "skip_zero_spread", "max_new_tokens")}


def sanity_check(reward: Callable[[dict, str], float], records: list[dict], min_share: float = 0.9) -> dict:
    """Known-good answers must outscore known-bad ones on at least `min_share` of the records, else ConfigError."""
    good = [reward(r, r["chosen"]) for r in records]
    bad = [reward(r, r["rejected"]) for r in records]
    share = sum(g > b for g, b in zip(good, bad)) / len(records)
    report = {"good_mean": sum(good) / len(good), "bad_mean": sum(bad) / len(bad), "ordered_share": share}
    if share < min_share:
        raise ConfigError(f"the reward does not prefer known-good answers: good {report['good_mean']:.2f} vs bad "
                          f"{report['bad_mean']:.2f}, ordered on {share:.0%} of {len(records)} pairs (need "
                          f"{min_share:.0%}); fix the reward function before training on it")
    return report


@torch.no_grad()
def sample_group(model, tok, template, records: list[dict], cfg: RLConfig, generator: torch.Generator):
    """G sampled answers per record → (rows: SFT-encoded prompt + answer, texts, lengths), grouped consecutively."""
    prompts = [template.encode_prompt(tok, r["prompt"], "") for r in records]
    keep = model.config.block_size - cfg.max_new_tokens
    ids, mask = left_pad([p[-keep:] for p in prompts], tok.pad_id)
    ids, mask = ids.repeat_interleave(cfg.group, 0), mask.repeat_interleave(cfg.group, 0)
    device = next(model.parameters()).device
    out = model.generate(ids.to(device), cfg.max_new_tokens, temperature=cfg.temperature, eos_id=tok.eos_id,
                         attention_mask=mask.to(device), generator=generator)[:, ids.shape[1]:].tolist()
    rows, texts = [], []
    for i, new in enumerate(out):
        answer = new[:new.index(tok.eos_id) + 1] if tok.eos_id in new else new
        text_ids = answer[:-1] if answer and answer[-1] == tok.eos_id else answer
        texts.append(template.strip_response(tok.decode(text_ids)))
        rows.append(encode_ids(prompts[i // cfg.group][-keep:], answer or [tok.eos_id]))
    return rows, texts


def rl_loss_fn(cfg: RLConfig, reference: Reference | None, tok, template, reward: Callable[[dict, str], float],
               seed: int):
    """loss_fn(model, {"records", "index"}) for minift.training.train: samples, rewards, the aggregated loss."""
    def loss_fn(model, batch):
        records, device = batch["records"], next(model.parameters()).device
        g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + batch["index"])
        rows, texts = sample_group(model, tok, template, records, cfg, g)
        rewards = torch.tensor([reward(records[i // cfg.group], t) for i, t in enumerate(texts)],
                               dtype=torch.float32, device=device)
        adv = (grpo.rloo_advantages(rewards, cfg.group) if cfg.method == "rloo"
               else grpo.group_advantages(rewards, cfg.group, cfg.scale_by_std))
        flat = grpo.zero_spread(rewards, cfg.group)
        keep = ~flat.repeat_interleave(cfg.group) if cfg.skip_zero_spread else torch.ones_like(rewards, dtype=bool)
        ids, targets, mask = (t.to(device) for t in sft_collate(tok.pad_id)(rows))
        scored = targets != IGNORE_INDEX
        logp = token_logps(model, ids, targets, mask)
        ref = reference.token_logps(ids, targets, mask).to(logp.dtype) if reference is not None and cfg.beta else None
        loss_tok, clipped = grpo.token_losses(logp, logp.detach(), adv.to(logp.dtype), ref, cfg.beta, cfg.clip_eps)
        m = scored & keep[:, None]
        loss = grpo.aggregate(loss_tok, m, cfg.aggregation, cfg.group, cfg.max_new_tokens) if m.any() \
            else (loss_tok * 0).sum()
        kl = float((grpo.k3(logp.detach(), ref) * scored).sum() / scored.sum()) if ref is not None else 0.0
        cfg.metrics.append({"reward": float(rewards.mean()), "kl": kl, "zero_spread": float(flat.float().mean()),
                            "clip_fraction": float((clipped & scored).sum() / scored.sum()),
                            "length": float(scored.sum(dim=1).float().mean()), "loss": float(loss.detach()),
                            "training": model.training})
        return loss, torch.tensor(int(m.any()), device=device)

    return loss_fn
