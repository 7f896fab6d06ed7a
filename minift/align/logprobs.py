"""Sequence log-probabilities of responses: the quantity every preference method compares.

For a prompt x and a response y = (y₁ … y_m) (its end-of-turn token included), read as one sequence:

    log π(y | x) = Σ_t log softmax(logits_t)[target_t]     over the response's targets only (sum, the default)
    ā(y | x)     = log π(y | x) / m                         the per-token mean (SimPO, ORPO; optionally IPO)

The encoding is supervised fine-tuning's (minift/finetune/sft.py, docs/sft.md): `input_ids` and `targets` are
already shifted by one (target t is the token after input t) and targets are −100 on the prompt and on padding, so

    log π(y | x) = −cross_entropy(logits, targets, ignore_index=−100, reduction="sum")        per row.

A pair's chosen and rejected sequences are stacked into one batch (2B rows, chosen first) so that one forward pass
scores both; `split_pair` takes them apart. The DPO reference code (Rafailov et al., 2023) and TRL sum over tokens;
the mean is an option because some losses are defined on it.
"""

from __future__ import annotations

import torch

from minift.model.gpt import IGNORE_INDEX


def sequence_logps(logits: torch.Tensor, targets: torch.Tensor, average: bool = False) -> torch.Tensor:
    """log π(y | x) per row (B,) from full logits (B, T, V) and aligned targets (B, T); the mean with average=True."""
    mask = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits.float() if logits.dtype != torch.float64 else logits, dim=-1)
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    total = picked.sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1) if average else total


def model_logps(model, ids: torch.Tensor, targets: torch.Tensor, attention_mask: torch.Tensor | None = None,
                average: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(sequence log-probs (B,), response lengths (B,)) of `model` on right-padded `ids` (B, T) and aligned
    `targets` (B, T). The LM head runs on the scored positions only (`GPT.forward(positions=...)`): a response is a
    fraction of a sequence, and the head over a 49k-token vocabulary is a small model's largest product. Equal to
    `sequence_logps(model(ids)[0], targets)` (a test checks it)."""
    scored = targets != IGNORE_INDEX                                   # (B, T)
    logits, _ = model(ids, attention_mask=attention_mask, positions=scored)   # (N, V), row-major order
    logp = torch.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
    picked = logp.gather(-1, targets[scored].unsqueeze(-1)).squeeze(-1)      # (N,)
    rows = scored.nonzero()[:, 0]                                      # the sequence each position belongs to
    total = torch.zeros(ids.shape[0], dtype=picked.dtype, device=picked.device).index_add(0, rows, picked)
    n = scored.sum(dim=-1)
    return (total / n.clamp(min=1) if average else total), n


def token_logps(model, ids: torch.Tensor, targets: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Per-token log-probs (B, T) of the scored targets, 0 elsewhere (the head on the scored positions only): what
    the RL losses weigh token by token."""
    scored = targets != IGNORE_INDEX
    logits, _ = model(ids, attention_mask=attention_mask, positions=scored)
    logp = torch.log_softmax(logits if logits.dtype == torch.float64 else logits.float(), dim=-1)
    out = torch.zeros(targets.shape, dtype=logp.dtype, device=logp.device)
    out[scored] = logp.gather(-1, targets[scored].unsqueeze(-1)).squeeze(-1)
    return out


def split_pair(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A stacked (2B, …) tensor → (chosen (B, …), rejected (B, …))."""
    half = x.shape[0] // 2
    return x[:half], x[half:]
