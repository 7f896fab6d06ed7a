"""A Llama-family model from a GGUF file: its config from the metadata, its weights dequantised and renamed, its
tokenizer rebuilt from the token list and merges stored in the file.

    GGUF tensor                      minift parameter
    token_embd.weight                tok_emb.weight          (and lm_head.weight when there is no output.weight)
    blk.{i}.attn_norm.weight         blocks.{i}.ln1.weight
    blk.{i}.attn_q/k/v.weight        blocks.{i}.attn.q/k/v.weight   (q and k: rows un-permuted, below)
    blk.{i}.attn_output.weight       blocks.{i}.attn.o.weight
    blk.{i}.ffn_norm.weight          blocks.{i}.ln2.weight
    blk.{i}.ffn_gate/up/down.weight  blocks.{i}.mlp.gate/up/down.weight
    output_norm.weight               ln_f.weight
    output.weight                    lm_head.weight           (untied models only)

The q/k permutation. llama.cpp's converter reorders the rows of each head of W_q and W_k so that its RoPE can rotate
adjacent coordinates (2i, 2i+1); minift (like the reference implementation) rotates coordinate i with i + d_h/2.
Per head, the file's row 2i + j (j ∈ {0, 1}) is row i + j·d_h/2 of the original: reshape the head's rows to
(d_h/2, 2), transpose to (2, d_h/2), flatten. Both orders describe the same model; mixing them gives a model whose
shapes all match and whose text is garbage, which the parity test against `transformers` rules out.
"""

from __future__ import annotations

import torch
from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as Backend

from minift.base.gguf import GGUFFile
from minift.errors import CheckpointError
from minift.files import PathLike
from minift.model.llama import Llama, LlamaConfig
from minift.model.tokenizer import Tokenizer

TOKEN_CONTROL = 3  # tokenizer.ggml.token_type of special (control) tokens


def config_from_gguf(g: GGUFFile) -> LlamaConfig:
    """The LlamaConfig a GGUF file's `llama.*` metadata describes."""
    meta = g.metadata
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise CheckpointError(f"{g.path} holds a {arch!r} model; minift reads Llama-architecture GGUF files")

    def need(key: str):
        if f"llama.{key}" not in meta:
            raise CheckpointError(f"{g.path} lacks the metadata key llama.{key}")
        return meta[f"llama.{key}"]

    d, n_head = int(need("embedding_length")), int(need("attention.head_count"))
    rope_dims = int(meta.get("llama.rope.dimension_count", d // n_head))
    if rope_dims != d // n_head:
        raise CheckpointError(f"{g.path}: RoPE on {rope_dims} of {d // n_head} head dimensions is not supported")
    vocab = int(meta.get("llama.vocab_size", len(meta.get("tokenizer.ggml.tokens", []))))
    return LlamaConfig(vocab_size=vocab, block_size=int(need("context_length")), n_layer=int(need("block_count")),
                       n_head=n_head, n_kv_head=int(meta.get("llama.attention.head_count_kv", n_head)), d_model=d,
                       d_ff=int(need("feed_forward_length")),
                       rope_theta=float(meta.get("llama.rope.freq_base", 10000.0)),
                       rms_eps=float(need("attention.layer_norm_rms_epsilon")),
                       tie_embeddings="output.weight" not in g.tensors)


def unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """GGUF's interleaved RoPE row order → rotate-half order, head by head (module docstring)."""
    rows, cols = w.shape
    d_h = rows // n_heads
    return w.reshape(n_heads, d_h // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def state_dict_from_gguf(g: GGUFFile, cfg: LlamaConfig) -> dict[str, torch.Tensor]:
    """Every weight of the model, dequantised to float32 and named as minift's Llama names it."""
    names = {"token_embd.weight": "tok_emb.weight", "output_norm.weight": "ln_f.weight"}
    if not cfg.tie_embeddings:
        names["output.weight"] = "lm_head.weight"
    parts = {"attn_norm": "ln1", "attn_q": "attn.q", "attn_k": "attn.k", "attn_v": "attn.v",
             "attn_output": "attn.o", "ffn_norm": "ln2", "ffn_gate": "mlp.gate", "ffn_up": "mlp.up",
             "ffn_down": "mlp.down"}
    for i in range(cfg.n_layer):
        for theirs, ours in parts.items():
            names[f"blk.{i}.{theirs}.weight"] = f"blocks.{i}.{ours}.weight"
    missing = sorted(set(names) - set(g.tensors))
    if missing:
        raise CheckpointError(f"{g.path} lacks the tensors {missing[:4]}{' …' if len(missing) > 4 else ''}")
    state = {}
    for theirs, ours in names.items():
        w = g.tensor(theirs)
        if theirs.endswith("attn_q.weight"):
            w = unpermute(w, cfg.n_head)
        elif theirs.endswith("attn_k.weight"):
            w = unpermute(w, cfg.n_kv_head)
        state[ours] = w
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    return state


def tokenizer_from_gguf(g: GGUFFile) -> Tokenizer:
    """The byte-level BPE tokenizer stored in the file (`tokenizer.ggml.*`): its tokens, merges and special tokens,
    with the end-of-text and padding tokens the file names."""
    meta = g.metadata
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise CheckpointError(f"{g.path} has a {meta.get('tokenizer.ggml.model')!r} tokenizer; minift reads byte-level "
                              "BPE ('gpt2') tokenizers")
    tokens, merges = meta["tokenizer.ggml.tokens"], meta.get("tokenizer.ggml.merges", [])
    kinds = meta.get("tokenizer.ggml.token_type", [1] * len(tokens))
    vocab = {t: i for i, t in enumerate(tokens)}
    backend = Backend(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], fuse_unk=False))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, k in zip(tokens, kinds) if k == TOKEN_CONTROL])
    eos = tokens[int(meta.get("tokenizer.ggml.eos_token_id", 0))]
    pad = tokens[int(meta.get("tokenizer.ggml.padding_token_id", meta.get("tokenizer.ggml.eos_token_id", 0)))]
    return Tokenizer(backend, eos_token=eos, pad_token=pad)


def load_gguf(path: PathLike) -> tuple[Llama, Tokenizer]:
    """(model in eval mode, tokenizer) from a Llama-architecture GGUF file with F32/F16/BF16/Q8_0/Q4_0/Q4_1
    tensors. The weights are dequantised to float32: the model computes in full precision."""
    g = GGUFFile(path)
    cfg = config_from_gguf(g)
    with torch.device("meta"):  # no random init of 135M parameters that are overwritten at once
        model = Llama(cfg)
    model.load_state_dict(state_dict_from_gguf(g, cfg), strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight
    return model.eval(), tokenizer_from_gguf(g)
