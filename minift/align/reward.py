"""A reward model: the language model's body with a scalar head, trained on preference pairs (Bradley–Terry).

    h = body.hidden(prompt + response)                 (B, T, d)
    r(x, y) = w · h[b, ℓ_b] + c                        ℓ_b: the last REAL token of row b (never a pad; left or right
                                                       padding), which in a causal model has read the whole text
    P(y_c ≻ y_r | x) = σ(r(x, y_c) − r(x, y_r))        Bradley & Terry (1952); Ouyang et al. (2022), InstructGPT
    loss = −log σ(r_c − r_r − m)                       m: an optional margin (Llama 2's, for pairs rated far apart)
           + c · mean((r_c + r_r)²)                    optional centring: rewards only matter up to a constant

Metrics on held-out pairs: accuracy = mean[r_c > r_r] (strict) and the mean margin r_c − r_r. The response is
laid out with the run's template and ends with the end-of-turn token, exactly as the policy reads it, so the model
scores what a policy produces. The head is a new, fully trainable nn.Linear; the body can be LoRA-adapted.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from minift.align.logprobs import split_pair
from minift.align.losses import bradley_terry_loss
from minift.finetune.classify import Classifier
from minift.finetune.sft import left_pad
from minift.finetune.templates import PromptTemplate


class RewardModel(nn.Module):
    """body: a GPT or Llama (anything with `.hidden(ids, attention_mask)` and `.config.d_model`)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.head = nn.Linear(body.config.d_model, 1)
        nn.init.normal_(self.head.weight, std=1 / (body.config.d_model + 1) ** 0.5)  # TRL's initialisation
        nn.init.zeros_(self.head.bias)
        self.head.is_task_head = True  # adapter code leaves it alone

    @property
    def config(self):
        return self.body.config

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids, attention_mask (B, T) → rewards (B,), read at each row's last real token."""
        h = self.body.hidden(ids, attention_mask=attention_mask)
        last = (torch.full((ids.size(0),), ids.size(1) - 1, device=ids.device) if attention_mask is None
                else Classifier.last_token_index(attention_mask.to(ids.device)))
        return self.head(h[torch.arange(ids.size(0), device=ids.device), last]).squeeze(-1)


def encode_scored(tok, prompt: str, answer: str, template: PromptTemplate, max_len: int) -> list[int]:
    """The token ids a reward model reads: prompt + answer + end-of-turn, the last max_len kept."""
    ids = template.encode_prompt(tok, prompt, "") + tok.encode(template.response_text(answer)) + [tok.eos_id]
    return ids[-max_len:]


def encode_reward_pairs(tok, pairs: Sequence[dict], template: PromptTemplate, max_len: int) -> list[dict]:
    return [{"chosen": encode_scored(tok, p["prompt"], p["chosen"], template, max_len),
             "rejected": encode_scored(tok, p["prompt"], p["rejected"], template, max_len)} for p in pairs]


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, T), mask (B, T)), padded on the right (or on the left, as batched generation pads)."""
    if left:
        return left_pad(rows, pad_id)
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(list(r)), 1
    return ids, mask


def collate_reward_pairs(pad_id: int):
    """B encoded pairs → (ids, mask) of 2B rows, chosen first."""
    return lambda batch: pad_rows([b["chosen"] for b in batch] + [b["rejected"] for b in batch], pad_id)


def reward_loss_fn(margin: float = 0.0, center: float = 0.0):
    """loss_fn(model, (ids, mask)) → (Σ over pairs of the Bradley–Terry loss, number of pairs)."""
    def loss_fn(model, batch):
        device = next(model.parameters()).device
        ids, mask = (t.to(device) for t in batch)
        rc, rr = split_pair(model(ids, mask))
        loss = bradley_terry_loss(rc, rr, margin)
        if center:
            loss = loss + center * (rc + rr) ** 2
        return loss.sum(), torch.tensor(rc.shape[0], device=device)
    return loss_fn


@torch.no_grad()
def score_pairs(model: RewardModel, encoded: list[dict], pad_id: int, batch_size: int = 32) -> dict:
    """{"accuracy", "margin", "n"} of a reward model on encoded pairs (strict accuracy: ties count as wrong)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    margins = []
    for start in range(0, len(encoded), batch_size):
        ids, mask = collate_reward_pairs(pad_id)(encoded[start:start + batch_size])
        rc, rr = split_pair(model(ids.to(device), mask.to(device)))
        margins.append(rc - rr)
    model.train(was)
    m = torch.cat(margins)
    return {"accuracy": float((m > 0).float().mean()), "margin": float(m.mean()), "n": len(encoded)}


@torch.no_grad()
def score_texts(model: RewardModel, rows: list[list[int]], pad_id: int, batch_size: int = 32) -> list[float]:
    """The reward of each encoded (prompt + response) row."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(rows), batch_size):
        ids, mask = pad_rows(rows[start:start + batch_size], pad_id)
        out += model(ids.to(device), mask.to(device)).tolist()
    model.train(was)
    return out
