"""The Llama family (Touvron et al., 2023), written out beside the GPT: the architecture of SmolLM2 and most open
models since. The same residual stream, with four changes:

    x₀ = E_tok[idx]                                   no position embeddings: positions enter through RoPE
    for each block ℓ:
        x ← x + Attn(RMSNorm₁(x))                     RoPE on q and k; grouped-query attention (fewer k/v heads)
        x ← x + MLP(RMSNorm₂(x))                      MLP(h) = W_down (SiLU(W_gate h) ⊙ W_up h)   (SwiGLU)
    logits = RMSNorm_f(x) · W_headᵀ                   tied to E_tok or not, as the checkpoint says; no biases

    RMSNorm(x) = x / √(mean(x²) + ε) · g              (Zhang & Sennrich, 2019): LayerNorm without the mean
    SwiGLU: Shazeer, 2020, "GLU Variants Improve Transformer"; RoPE: Su et al., 2021; GQA: Ainslie et al., 2023

`Llama` is a `GPT` with these parts swapped in, so everything built on the GPT works on it unchanged: the module
names (`blocks[i].attn.q/k/v/o`, `blocks[i].mlp.gate/up/down`, `ln1`, `ln2`, `ln_f`, `tok_emb`) that PEFT methods
target, `hidden` for a classification head, the KV cache (with n_kv_head heads, so it is smaller), left-padded
batched generation with positions from the mask, and the fused-or-explicit attention switch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from minift.errors import ConfigError
from minift.model.attention import CausalSelfAttention, rotary_angles
from minift.model.gpt import GPT, config_from_dict


@dataclass
class LlamaConfig:
    """Hyper-parameters of a Llama-family model (read from a checkpoint's metadata by the loaders in minift/base)."""

    vocab_size: int = 49152
    block_size: int = 2048     # the context this minift model accepts (positions are rotary: no table to size)
    n_layer: int = 30
    n_head: int = 9
    n_kv_head: int = 3
    d_model: int = 576
    d_ff: int = 1536
    rope_theta: float = 100000.0
    rms_eps: float = 1e-5
    tie_embeddings: bool = True
    dropout: float = 0.0
    bias: bool = False         # Llama has none; kept so code reading `config.bias` works on both families

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "d_model", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"LlamaConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise ConfigError(f"LlamaConfig: d_model={self.d_model} must be divisible by n_head={self.n_head}, and "
                              f"n_head by n_kv_head={self.n_kv_head}")
        if (self.d_model // self.n_head) % 2:
            raise ConfigError(f"LlamaConfig: the head size {self.d_model // self.n_head} must be even for RoPE")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LlamaConfig":
        return config_from_dict(cls, d)


class RMSNorm(nn.Module):
    """x / √(mean(x²) + ε) · g, computed in float32 (as the reference implementation does) and cast back."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class SwiGLU(nn.Module):
    """W_down (SiLU(W_gate h) ⊙ W_up h), d → d_ff → d. `act` is its own module (the activation the gate feeds) so
    that hooks and (IA)³ can find the inner activation, as `mlp.act` in the GPT."""

    def __init__(self, d: int, d_ff: int):
        super().__init__()
        self.gate = nn.Linear(d, d_ff, bias=False)
        self.up = nn.Linear(d, d_ff, bias=False)
        self.act = nn.SiLU()
        self.down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x):
        return self.down(self.act(self.gate(x)) * self.up(x))


class LlamaBlock(nn.Module):
    """A pre-RMSNorm block; its output is the residual stream after layer `index` (ReFT hooks read it here)."""

    def __init__(self, cfg: LlamaConfig, index: int):
        super().__init__()
        self.index = index
        self.ln1 = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.attn = CausalSelfAttention(cfg.d_model, cfg.n_head, bias=False, dropout=cfg.dropout,
                                        n_kv_head=cfg.n_kv_head)
        self.ln2 = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.d_ff)

    def forward(self, x, mask=None, cache=None, rope=None):
        x = x + self.attn(self.ln1(x), mask, cache, self.index, rope)
        return x + self.mlp(self.ln2(x))


class Llama(GPT):
    """A Llama-family decoder; see the module docstring. Initialised like the GPT (normal 0.02) when trained from
    scratch; real weights come from `minift.base` loaders."""

    mlp_out = "mlp.down"

    def __init__(self, cfg: LlamaConfig):
        nn.Module.__init__(self)
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(LlamaBlock(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def num_parameters(self, trainable_only: bool = False, exclude_position: bool = False) -> int:
        """Each parameter once (a tied head adds nothing); a Llama has no position table to exclude."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def embed_positions(self, x, pos):
        """No position is added to the embeddings; the rotary angles of every position go to every layer."""
        cfg = self.config
        return self.drop(x), rotary_angles(pos, cfg.d_model // cfg.n_head, cfg.rope_theta, x.dtype)
