"""minift: fine-tuning, built from scratch in plain PyTorch.

Read in this order: attention.py and model.py (the transformer), tokenizer.py, optim.py (AdamW, schedule,
clipping), train.py (the training loop), world.py, corpus.py and stories.py (the built-in world and its text),
base.py (the pretrained base model).
"""

from .errors import MiniftError
from .model import GPT, GPTConfig, KVCache

__all__ = ["GPT", "GPTConfig", "KVCache", "MiniftError"]
__version__ = "0.1.0"
