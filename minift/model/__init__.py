"""Stage 2, the model: the transformer a learner reads first.

    attention.py  causal self-attention written out (softmax(QKᵀ/√d)V) and fused (SDPA), the KV cache
    gpt.py        the compact GPT: pre-LN blocks, positions from the mask, generation with the cache
    llama.py      the Llama family (SmolLM2): RMSNorm, rotary positions, grouped-query attention, SwiGLU
    tokenizer.py  byte-level BPE, special tokens, save/load
"""

from minift.model.attention import CausalSelfAttention, KVCache, attention_fused, attention_math, causal_mask
from minift.model.gpt import GPT, IGNORE_INDEX, GPTConfig
from minift.model.llama import Llama, LlamaConfig, RMSNorm
from minift.model.tokenizer import Tokenizer

__all__ = ["CausalSelfAttention", "KVCache", "attention_fused", "attention_math", "causal_mask", "GPT",
           "IGNORE_INDEX", "GPTConfig", "Llama", "LlamaConfig", "RMSNorm", "Tokenizer"]
