"""The compact transformer: a GPT-2-style decoder-only language model.

Architecture (Radford et al., 2019, "Language Models are Unsupervised Multitask Learners"; Vaswani et al., 2017):

    x₀ = E_tok[idx] + E_pos[pos]                         (B, T, d)
    for each block ℓ = 1..L   (pre-LayerNorm residual blocks)
        x ← x + Attn(LN₁(x))
        x ← x + MLP(LN₂(x))          MLP(h) = W₂ · GELU(W₁ h),  d → 4d → d
    logits = LN_f(x) · E_tokᵀ                            (B, T, V)   (LM head tied to the token embedding)

Attention, per head (d_h = d / n_head):   Attn(Q, K, V) = softmax(Q Kᵀ / √d_h + M) V,
with M = 0 where a query may look and −∞ where it may not (the future, padding). The attention layer, its mask and
the KV cache used for generation are in attention.py; this file assembles the model from them.

Names are chosen so parameter-efficient methods can find modules by name: every block has `attn.q`, `attn.k`,
`attn.v`, `attn.o` (four separate `nn.Linear`), `mlp.fc`, `mlp.proj`, `ln1`, `ln2`. Extension points used later:
  * each block's output (the residual stream) can be read or replaced with a forward hook on `model.blocks[i]`;
  * `CausalSelfAttention.prefix` may hold a module that returns extra key/value rows every query can see;
  * `forward(..., inputs_embeds=...)` accepts token embeddings instead of ids (prompt tuning);
  * `GPT.hidden(...)` returns the final hidden states, for a classification head.

Shift convention (one for all of minift): `targets[b, t]` is the token that should follow `idx[b, t]`; the data code
shifts, the model never does. Positions with target −100 are ignored by the loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.errors import ConfigError, InputError
from minift.model.attention import CausalSelfAttention, KVCache, causal_mask

IGNORE_INDEX = -100
# GELU(x) = x·Φ(x) exactly, or with Φ approximated by ½(1 + tanh(√(2/π)(x + 0.044715x³))) as GPT-2 was trained
ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}


@dataclass
class GPTConfig:
    """Hyper-parameters of the model. Validated on construction, so a config that cannot work fails early."""

    vocab_size: int = 4096
    block_size: int = 128  # the context length: the most positions the model has embeddings for
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 256
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu"  # "gelu" (exact, erf) or "gelu_tanh" (GPT-2's tanh approximation, "gelu_new")

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head != 0:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}; "
                f"choose n_head among the divisors of d_model (e.g. {_divisors_hint(self.d_model)})"
            )
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float))
                or not 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        return config_from_dict(cls, d)


def config_from_dict(cls, d: dict):
    """A config dataclass from a dict (a config.json), refusing fields it does not have, by name."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} fields {sorted(unknown)}; known fields are {sorted(known)}")
    return cls(**d)


def _divisors_hint(n: int) -> str:
    return ", ".join(str(k) for k in range(1, min(n, 32) + 1) if n % k == 0)


class MLP(nn.Module):
    """Position-wise feed-forward: W₂ · GELU(W₁ h), d → 4d → d (GELU exact or tanh-approximated, by the config)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.act = nn.GELU(approximate=ACTIVATIONS[cfg.activation])
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    """One pre-LayerNorm transformer block. Its output is the residual stream after layer `index`."""

    def __init__(self, cfg: GPTConfig, index: int):
        super().__init__()
        self.index = index
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg.d_model, cfg.n_head, cfg.bias, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x, mask=None, cache=None, rope=None):
        x = x + self.attn(self.ln1(x), mask, cache, self.index, rope)
        x = x + self.mlp(self.ln2(x))
        return x


class GPT(nn.Module):
    """GPT-2-style language model. See the module docstring for the maths and the extension points."""

    mlp_out = "mlp.proj"  # the MLP's output layer (its input is the inner activation): (IA)³ scales that input

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying (Press & Wolf, 2017): one V × d matrix
        self.apply(self._init_weights)
        # GPT-2: scale the init of the layers that write into the residual stream by 1/√(2L), since each of the
        # 2L sublayers adds to it and the variance of the sum would otherwise grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("attn.o.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # -- helpers -----------------------------------------------------------------------------------------------

    def num_parameters(self, trainable_only: bool = False, exclude_position: bool = False) -> int:
        """Count parameters once each (the tied LM head shares the token embedding, so it adds nothing).

        Closed form with bias and LayerNorm affine: V·d + T·d + L·(12d² + 13d) + 2d.
        """
        n = sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
        if exclude_position:
            n -= self.pos_emb.weight.numel()
        return n

    def set_fused_attention(self, fused: bool) -> None:
        """Switch every layer between the fused kernel (default) and the explicit maths."""
        for block in self.blocks:
            block.attn.fused = fused

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device

    def _check_ids(self, idx: torch.Tensor, past: int) -> None:
        """Shape, dtype and length always (cheap: Python integers); the ids' range only for a sequence's first call
        (past = 0): reading idx.min() and idx.max() waits for the device, twice per call, and during generation
        every later id is the model's own argmax or sample, inside the vocabulary by construction."""
        if idx.dim() != 2:
            raise InputError(f"expected token ids of shape (batch, time), got shape {tuple(idx.shape)}")
        if idx.dtype not in (torch.long, torch.int, torch.int32, torch.int16, torch.uint8):
            raise InputError(f"token ids must be an integer tensor, got {idx.dtype}")
        t = idx.size(1)
        if past + t > self.config.block_size:
            raise InputError(
                f"sequence of length {past + t} is longer than the model's context (block_size="
                f"{self.config.block_size}); truncate the input to {self.config.block_size} tokens"
            )
        if past == 0 and idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
            bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
            raise InputError(
                f"token id {bad} is outside the vocabulary [0, {self.config.vocab_size}); "
                "use the tokenizer this model was trained with"
            )

    # -- forward -----------------------------------------------------------------------------------------------

    def hidden(self, idx=None, attention_mask=None, cache: KVCache | None = None, inputs_embeds=None):
        """Final hidden states LN_f(x_L), shape (B, T, d).

        idx: (B, T) token ids, or `inputs_embeds` (B, T, d) in their place. attention_mask: (B, T) with 1 for real
        tokens and 0 for padding; positions then count real tokens only (pos = cumsum(mask) − 1), so a left-padded
        prompt gets the same positions it would have alone.
        """
        past = cache.n_tokens if cache is not None else 0
        if inputs_embeds is None:
            self._check_ids(idx, past)
            x = self.tok_emb(idx.long())  # nn.Embedding takes int32/int64 only
        else:
            x = inputs_embeds
            if past + x.size(1) > self.config.block_size:
                raise InputError(
                    f"sequence of length {past + x.size(1)} is longer than the model's context (block_size="
                    f"{self.config.block_size}); truncate the input"
                )
        b, t, _ = x.shape
        mask, pos = self._mask_and_positions(b, t, x.device, attention_mask, cache)
        x, rope = self.embed_positions(x, pos)
        for block in self.blocks:
            x = block(x, mask, cache, rope)
        if cache is not None:
            cache.n_tokens += t
        return self.ln_f(x)

    def embed_positions(self, x, pos):
        """GPT-2 adds a learned embedding of each position to its token's; nothing is left for the attention to do
        (no rotary angles: None). Llama overrides this."""
        return self.drop(x + self.pos_emb(pos)), None

    def _mask_and_positions(self, b, t, device, attention_mask, cache):
        past = cache.n_tokens if cache is not None else 0
        if attention_mask is None and (cache is None or cache.key_mask is None):
            return None, torch.arange(past, past + t, device=device)[None, :]
        new = (torch.ones(b, t, dtype=torch.bool, device=device) if attention_mask is None
               else attention_mask.to(device=device, dtype=torch.bool))
        if new.shape != (b, t):
            raise InputError(f"attention_mask has shape {tuple(new.shape)}, expected {(b, t)}")
        old = None if cache is None else cache.key_mask
        if old is None and past > 0:
            old = torch.ones(b, past, dtype=torch.bool, device=device)
        keys = new if old is None else torch.cat([old, new], dim=1)  # (B, S) real-token flags
        if cache is not None:
            cache.key_mask = keys
        if t == 1 and past > 0:  # one decoding step: its position is the count of real tokens before it, and a
            # single newest query is causally allowed every key, so the mask is just the real-token flags
            pos = (keys[:, :past].long().sum(1, keepdim=True) - 1 + new.long()).clamp(min=0)
            return (keys | (torch.arange(past + 1, device=device) == past))[:, None, None, :], pos
        pos = (keys.long().cumsum(1) - 1).clamp(min=0)[:, past:]
        # query i may see key j if j is causally visible and real; it always sees itself, so that a padding
        # query still has one key and its (ignored) output stays finite instead of NaN
        causal = causal_mask(t, past + t, device)[None]
        mask = causal & keys[:, None, :]
        me = torch.arange(t, device=device)[:, None] + past == torch.arange(past + t, device=device)[None, :]
        mask = mask | me[None]
        return mask[:, None], pos

    def forward(self, idx=None, targets=None, attention_mask=None, cache: KVCache | None = None, inputs_embeds=None,
                positions=None):
        """Returns (logits (B, T, V), loss). loss = mean cross-entropy over targets ≠ −100, or None without targets.

        positions: a bool (B, T) mask of the positions whose logits are wanted; then logits is (N, V) for its N
        True positions (row-major order) and targets, if given, must be the matching (N,) vector. The LM head is
        the largest matrix product of a small model (d × V per position), and a fine-tuning loss needs it only
        where a label is supervised (10–25 % of an instruction batch's positions): same loss, less work."""
        h = self.hidden(idx, attention_mask, cache, inputs_embeds)
        if positions is not None:
            h = h[positions]  # (N, d)
        logits = self.lm_head(h)
        loss = None
        if targets is not None:
            # bf16 logits are upcast for the loss; float64 stays float64 (exact tests)
            logits_f = logits.to(torch.promote_types(logits.dtype, torch.float32))
            loss = F.cross_entropy(logits_f.view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss

    # -- generation --------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 eos_id: int | None = None, use_cache: bool = True, attention_mask=None, generator=None):
        """Append up to `max_new_tokens` tokens to each row of idx (B, T) and return (B, T + n).

        temperature 0 → greedy (argmax); otherwise sample from softmax(logits / temperature), keeping only the
        top_k most likely tokens if given. A row stops at `eos_id` (later positions are filled with eos_id); the
        loop ends when every row has. `attention_mask` (B, T) marks real tokens of left-padded prompts.
        With `use_cache`, each step feeds only the newest token and reads the rest from a KVCache; once the
        context is full it falls back to re-running the last block_size tokens, as the uncached path does.
        """
        if max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
        was_training = self.training
        self.eval()
        bs = self.config.block_size
        mask = None if attention_mask is None else attention_mask.to(idx.device).long()
        done = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        cache, feed = None, idx
        for _ in range(max_new_tokens):
            if use_cache and idx.size(1) <= bs:
                if cache is None:  # room for the prompt and every new token, written in place
                    cache = KVCache(self.config.n_layer, capacity=min(bs, idx.size(1) + max_new_tokens))
                    logits, _ = self(feed, attention_mask=mask, cache=cache)
                else:
                    step_mask = None if mask is None else mask[:, -1:]
                    logits, _ = self(feed, attention_mask=step_mask, cache=cache)
            else:
                window_mask = None if mask is None else mask[:, -bs:]
                logits, _ = self(idx[:, -bs:], attention_mask=window_mask)
            nxt = self._pick(logits[:, -1, :].float(), temperature, top_k, generator)
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(nxt)[:, None]], dim=1)
            feed = nxt[:, None]
            if eos_id is not None and bool(done.all()):
                break
        self.train(was_training)
        return idx

    @staticmethod
    def _pick(logits, temperature, top_k, generator):
        if temperature == 0:
            return logits.argmax(dim=-1)
        logits = logits / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
