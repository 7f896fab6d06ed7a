"""Prefix tuning (Li & Liang, 2021) and prompt tuning (Lester et al., 2021): learn activations, not weights.

PREFIX TUNING. Every layer ℓ gets P trainable key rows and P value rows that every query attends to:

    K′ = [P_K^ℓ ; K],  V′ = [P_V^ℓ ; V],   o_t = softmax(q_t K′ᵀ_{visible} / √d_h) V′_{visible}
    P_K^ℓ, P_V^ℓ: (H, P, d_h) per layer;  trainable 2·L·P·d   (d = 384, L = 6, P = 10: 46,080)

  They reach the model through `CausalSelfAttention.prefix` (a module called with no argument that returns
  (k_p, v_p)); the attention concatenates them to the keys/values on every call, AFTER the KV cache, so the cache
  holds real tokens only and cached generation equals uncached generation.
  Reparametrisation (`reparam=True`, the paper's training aid): E = MLP(Emb), Emb ∈ ℝ^{P×d},
  MLP = Linear(d, h) → tanh → Linear(h, 2Ld); one MLP shared by all layers, so the rows of different layers are
  coupled during training (+ P·d + dh + h + 2Ldh + 2Ld trainable numbers). `fold_prefix(model)` replaces it by the
  plain table E it computes (what the paper keeps after training).

PROMPT TUNING. P trainable vectors are put in front of the token embeddings:

    inputs_embeds′ = [Pmt ; E_tok[x]] ∈ ℝ^{(P+T)×d};  targets′ = [−100 × P ; targets];  mask′ = [1 × P ; mask]
    trainable P·d   (P = 10, d = 384: 3,840)

  `inject` installs `hidden_with_prompt` as the model's `hidden` (an instance attribute shadowing GPT.hidden): it
  prepends the prompt, runs the blocks on P + T positions and returns the T real ones. So `model(idx, targets,
  attention_mask)`, `model.generate(idx, ...)` and `model.hidden(...)` (classification) work unchanged, with logits
  (B, T, V) aligned with idx. With a KV cache the prompt is prepended once (the prefill); later steps find it in
  the cache; prompt + generated tokens must fit in block_size − P. `SoftPrompt.extend` gives the explicit
  (inputs_embeds, targets with −100, mask) form.

Decisions (docs/peft.md derives the method):
  * prefix positions: the prefix has no position; real tokens keep positions 0…T−1 (the model's own convention,
    with left padding counted out). This differs from huggingface/peft's GPT-2 convention (real tokens start at
    P because the prefix is passed as a KV cache); here the prefix costs no context, the full block_size remains.
  * prompt positions: the soft prompt takes positions 0…P−1 and real tokens start at P, exactly as if a hard prompt
    of P tokens had been typed (so a soft prompt initialised from a text's embeddings IS that hard prompt). It
    consumes context: P + T ≤ block_size, else InputError. With left padding the prompt comes before the pads
    ([prompt, pad, pad, tokens]); the mask keeps pads invisible and positions count real slots only.
  * init: prefix "random" = N(0, 1) (huggingface/peft's embedding default) or "vocab" = the base model's own
    keys/values of P random vocabulary tokens (the paper reports that real activations help with little data);
    reparametrised: Emb ~ N(0, 1), PyTorch-default Linear init. Prompt "random" = N(0, σ²) with σ the std of the
    token-embedding matrix (N(0, 1) would be far off the embedding scale of a small model), "vocab" = embedding
    rows of random vocabulary ids, "text" = the embeddings of `init_ids` (tokenise `init_text` with
    `PromptConfig.with_tokenizer(tok)`), repeated / truncated to P.
  * weight decay: the prefix table, Emb and the soft prompt are activations, not weights: marked `no_decay = True`
    (decay would pull them towards an all-zero prompt, which is not a neutral point). The reparam MLP follows the
    usual dim ≥ 2 rule.
  * not mergeable: the prefix adds key/value slots and the prompt adds input positions; neither is a change of an
    existing weight matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar

import torch
import torch.nn as nn

from minift.errors import ConfigError, InputError
from minift.model.gpt import IGNORE_INDEX, KVCache
from minift.peft.adapters import gpt_of
from minift.peft.core import MethodConfig, PeftModule, register

# ------------------------------------------------------------------------------------------------------------
# Prefix tuning
# ------------------------------------------------------------------------------------------------------------


class PrefixEncoder(PeftModule):
    """All layers' prefix rows as one tensor (L, 2, H_kv, P, d_h): a plain table, or MLP(Emb) when reparametrised.
    Lives at `model.prefix_encoder`; each layer's `attn.prefix` is a `PrefixSlot` that reads its slice.

    H_kv is the number of key/value heads: the GPT's n_head, a grouped-query model's n_kv_head (its prefix rows,
    like its keys, are shared by the query heads of a group)."""

    def __init__(self, n_layer: int, n_kv_head: int, d_head: int, d_model: int, n_virtual: int,
                 reparam_hidden: int | None = None):
        super().__init__()
        self.shape = (n_layer, 2, n_kv_head, n_virtual, d_head)
        self.reparam = reparam_hidden is not None
        if self.reparam:
            self.emb = nn.Parameter(torch.randn(n_virtual, d_model))
            self.emb.no_decay = True
            self.mlp = nn.Sequential(nn.Linear(d_model, reparam_hidden), nn.Tanh(),
                                     nn.Linear(reparam_hidden, 2 * n_layer * n_kv_head * d_head))
        else:
            self.table = nn.Parameter(torch.randn(self.shape))
            self.table.no_decay = True

    def rows(self) -> torch.Tensor:
        """(L, 2, H, P, d_h): keys [:, 0] and values [:, 1] of every layer."""
        if not self.reparam:
            return self.table
        L, _, H, P, dh = self.shape
        e = self.mlp(self.emb)  # (P, 2·L·d), laid out as (L, 2, H, d_h) per virtual token
        return e.view(P, L, 2, H, dh).permute(1, 2, 3, 0, 4)


class PrefixSlot(PeftModule):
    """The module at `blocks[layer].attn.prefix`: () → (k_p, v_p), each (H, P, d_h).

    It holds no parameters, only a reference to the shared encoder (stored outside nn.Module's registry, so the
    encoder's parameters are listed once, under `prefix_encoder`). Disabled, it returns zero-length rows (P = 0):
    the attention then sees exactly the base keys and values."""

    def __init__(self, encoder: PrefixEncoder, layer: int):
        super().__init__()
        object.__setattr__(self, "encoder", encoder)  # not a submodule: see the docstring
        self.layer = layer

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.encoder.rows()[self.layer]  # (2, H, P, d_h)
        if self.disabled or self.encoder.disabled:
            rows = rows[:, :, :0]
        return rows[0], rows[1]


@torch.no_grad()
def _base_kv(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The base model's per-layer keys/values of a token sequence ids (P,): (L, 2, H, P, d_h)."""
    cache = KVCache(model.config.n_layer)
    was_training = model.training
    model.eval()  # no dropout in the activations we copy
    model(ids[None].to(model.device), cache=cache)
    model.train(was_training)
    return torch.stack([torch.stack([k[0], v[0]]) for k, v in zip(cache.keys, cache.values)]).float()


@register
@dataclass
class PrefixConfig(MethodConfig):
    """Prefix tuning: `n_virtual` key/value rows per layer (see the module docstring). Not mergeable."""

    method: ClassVar[str] = "prefix"
    key_options: ClassVar[tuple[str, ...]] = ("n_virtual",)
    default_lr: ClassVar[float] = 1e-2
    lr_reason: ClassVar[str] = ("key/value rows seen by every layer, trained from scratch (stays near chance on a "
                                "2M-parameter model at every lr tried: about 0.55)")
    why_not_mergeable: ClassVar[str] = ("prefix tuning adds key/value slots to every attention layer, not a change "
                                        "of a weight matrix")
    n_virtual: int = 10
    reparam: bool = False
    reparam_hidden: int | None = None  # MLP width h (None → d_model)
    init: str = "random"  # "random" | "vocab" (plain table only)

    def __post_init__(self):
        _check_positive("n_virtual", self.n_virtual)
        if self.reparam_hidden is not None:
            _check_positive("reparam_hidden", self.reparam_hidden)
        if self.init not in ("random", "vocab"):
            raise ConfigError(f"prefix init must be 'random' or 'vocab', got {self.init!r}")
        if self.reparam and self.init != "random":
            raise ConfigError("init='vocab' sets the table directly, which a reparametrised prefix does not have; "
                              "use reparam=False or init='random'")

    def inject(self, model: nn.Module) -> None:
        model = gpt_of(model)
        c = model.config
        hidden = (self.reparam_hidden or c.d_model) if self.reparam else None
        ids = torch.randint(0, c.vocab_size, (self.n_virtual,)) if self.init == "vocab" else None
        attn = model.blocks[0].attn
        enc = PrefixEncoder(c.n_layer, attn.n_kv_head, attn.d_head, c.d_model, self.n_virtual, hidden).to(model.device)
        if ids is not None:
            enc.table.data.copy_(_base_kv(model, ids))
        model.prefix_encoder = enc
        for i, block in enumerate(model.blocks):
            block.attn.prefix = PrefixSlot(enc, i)


@torch.no_grad()
def fold_prefix(model: nn.Module) -> None:
    """Replace a reparametrised prefix by the table E = MLP(Emb) it computes (after training: the MLP is a training
    aid only). Outputs are unchanged; the model's config becomes a plain PrefixConfig, so save it afterwards."""
    enc = getattr(gpt_of(model), "prefix_encoder", None)
    if enc is None or not enc.reparam:
        raise ConfigError("fold_prefix needs a model with a reparametrised prefix (PrefixConfig(reparam=True))")
    table = enc.rows().detach().clone()
    del enc.mlp, enc.emb
    enc.reparam = False
    enc.table = nn.Parameter(table)
    enc.table.no_decay = True
    cfg = model.peft_config
    model.peft_config = PrefixConfig(n_virtual=cfg.n_virtual, reparam=False, init=cfg.init)


# ------------------------------------------------------------------------------------------------------------
# Prompt tuning
# ------------------------------------------------------------------------------------------------------------

class SoftPrompt(PeftModule):
    """P trainable vectors (P, d) at `model.soft_prompt`, put in front of the input by `extend`."""

    def __init__(self, prompt: torch.Tensor):
        super().__init__()
        self.prompt = nn.Parameter(prompt.detach().clone().float())
        self.prompt.no_decay = True

    @property
    def n_virtual(self) -> int:
        return self.prompt.size(0)

    def extend(self, model: nn.Module, idx=None, targets=None, attention_mask=None, inputs_embeds=None):
        """(idx (B,T) | inputs_embeds (B,T,d), targets (B,T), mask (B,T)) →
        (inputs_embeds (B,P+T,d), targets with P leading −100, mask with P leading ones)."""
        p, bs = self.n_virtual, model.config.block_size
        t = (idx if inputs_embeds is None else inputs_embeds).size(1)
        if p + t > bs:
            raise InputError(f"the soft prompt's {p} virtual tokens + {t} input tokens = {p + t} exceed the "
                             f"model's context (block_size={bs}); inputs may have at most {bs - p} tokens")
        if inputs_embeds is None:
            model._check_ids(idx, 0)
            inputs_embeds = model.tok_emb(idx)
        b = inputs_embeds.size(0)
        pmt = self.prompt.to(inputs_embeds.dtype)[None].expand(b, -1, -1)
        embeds = torch.cat([pmt, inputs_embeds], dim=1)
        if targets is not None:
            targets = torch.cat([targets.new_full((b, p), IGNORE_INDEX), targets], dim=1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones(b, p), attention_mask], dim=1)
        return embeds, targets, attention_mask


def hidden_with_prompt(model: nn.Module, idx=None, attention_mask=None, cache=None, inputs_embeds=None):
    """GPT.hidden with the soft prompt in front; returns the hidden states of the T real positions, (B, T, d).

    Installed as `model.hidden`, so GPT.forward (logits and loss over the real positions: the prompt slots get no
    logits, which is the same as labelling them −100), GPT.generate and anything calling model.hidden use it.
    A call that continues a KV cache does not prepend again: the prompt is already in the cache."""
    sp = model.soft_prompt
    plain = type(model).hidden
    if sp.disabled or (cache is not None and cache.n_tokens > 0):
        return plain(model, idx, attention_mask, cache, inputs_embeds)
    embeds, _, mask = sp.extend(model, idx, None, attention_mask, inputs_embeds)
    return plain(model, None, mask, cache, embeds)[:, sp.n_virtual:]


@register
@dataclass
class PromptConfig(MethodConfig):
    """Prompt tuning: `n_virtual` trainable input vectors (see the module docstring). Not mergeable."""

    method: ClassVar[str] = "prompt"
    key_options: ClassVar[tuple[str, ...]] = ("n_virtual",)
    default_lr: ClassVar[float] = 1e-1
    lr_reason: ClassVar[str] = ("a few input vectors carry the whole task: the largest step (Lester et al., 2021, "
                                "use 0.3; here about 0.64, prompt tuning needs scale)")
    why_not_mergeable: ClassVar[str] = ("prompt tuning adds input positions (a soft prompt), not a change of a "
                                        "weight matrix")

    def reserved_positions(self) -> int:
        """The soft prompt's P vectors sit in front of the text, so P context positions are taken."""
        return self.n_virtual
    n_virtual: int = 10
    init: str = "vocab"  # "random" | "vocab" | "text"
    init_text: str | None = None
    init_ids: list | None = None  # token ids of init_text (see with_tokenizer)

    def __post_init__(self):
        _check_positive("n_virtual", self.n_virtual)
        if self.init not in ("random", "vocab", "text"):
            raise ConfigError(f"prompt init must be 'random', 'vocab' or 'text', got {self.init!r}")
        if isinstance(self.init_ids, tuple):
            self.init_ids = list(self.init_ids)
        if self.init == "text" and not self.init_ids and not self.init_text:
            raise ConfigError("init='text' needs init_text (then call .with_tokenizer(tokenizer)) or init_ids")

    def with_tokenizer(self, tokenizer) -> "PromptConfig":
        """A copy whose init_ids are the tokens of init_text."""
        if not self.init_text:
            raise ConfigError("with_tokenizer needs init_text")
        ids = tokenizer.encode(self.init_text)
        if not ids:
            raise ConfigError(f"init_text {self.init_text!r} encodes to no tokens")
        return replace(self, init_ids=list(ids))

    def inject(self, model: nn.Module) -> None:
        model = gpt_of(model)
        emb = model.tok_emb.weight.detach()
        v, p = emb.shape[0], self.n_virtual
        if self.init == "random":
            prompt = torch.randn(p, emb.size(1), device=emb.device) * emb.float().std()
        elif self.init == "vocab":
            prompt = emb[torch.randint(0, v, (p,), device=emb.device)]
        else:
            if not self.init_ids:
                raise ConfigError("init='text' needs token ids: call PromptConfig.with_tokenizer(tokenizer) "
                                  "after setting init_text, or pass init_ids")
            ids = torch.tensor(self.init_ids, dtype=torch.long, device=emb.device)
            if int(ids.min()) < 0 or int(ids.max()) >= v:
                raise ConfigError(f"init_ids must lie in [0, {v}); tokenise with the model's own tokenizer")
            prompt = emb[ids.repeat((p + len(ids) - 1) // len(ids))[:p]]  # repeated / truncated to P
        if p >= model.config.block_size:
            raise ConfigError(f"n_virtual={p} leaves no room for input in the context "
                              f"(block_size={model.config.block_size}); use fewer virtual tokens")
        model.soft_prompt = SoftPrompt(prompt)
        # GPT.hidden is a plain method, not a module call, so no hook can reach it: shadow it on this instance
        model.hidden = partial(hidden_with_prompt, model)


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
