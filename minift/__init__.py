"""minift: fine-tuning, built from scratch in plain PyTorch.

The packages follow the curriculum; read them in this order (ARCHITECTURE.md has the map):

    data/       the built-in world, its pretraining corpus, the fine-tuning tasks, loaders for your own files
    model/      the transformer: attention (explicit and fused), the GPT, the tokenizer
    training/   AdamW, the schedule, the training loop, batches, checkpoints, devices, data parallelism
    base/       presets, pretraining a base model, the model store and its cache
    finetune/   one fine-tuning run: templates, SFT, classification, evaluation, forgetting, the result record
    peft/       the parameter-efficient methods: LoRA, DoRA, (IA)³, adapters, prefix and prompt tuning, ReFT
    compare/    every method on one task, side by side
    cli/        the `minift` command

The names below are the public API. They load on first use (minift/lazy.py), so `import minift` is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minift.lazy import lazy_exports

__version__ = "0.1.0"

lazy_exports(globals(), {
    "MiniftError": "minift.errors",
    "GPT": "minift.model.gpt", "GPTConfig": "minift.model.gpt", "KVCache": "minift.model.attention",
    "Tokenizer": "minift.model.tokenizer",
    "AdamW": "minift.training.optim", "TrainConfig": "minift.training.config", "train": "minift.training.loop",
    "seed_everything": "minift.training.device",
    "load_base": "minift.base.cache", "pretrain": "minift.base.pretrain",
    "load_model_dir": "minift.base.store", "save_model_dir": "minift.base.store",
    "FinetuneConfig": "minift.finetune.config", "finetune": "minift.finetune.run",
    "load_finetuned": "minift.finetune.load", "evaluate_run": "minift.finetune.load",
    "compare": "minift.compare.run",
})

if TYPE_CHECKING:  # for type checkers and editors; at run time the names above load lazily
    from minift.base.cache import load_base
    from minift.base.pretrain import pretrain
    from minift.base.store import load_model_dir, save_model_dir
    from minift.compare.run import compare
    from minift.errors import MiniftError
    from minift.finetune.config import FinetuneConfig
    from minift.finetune.load import evaluate_run, load_finetuned
    from minift.finetune.run import finetune
    from minift.model.attention import KVCache
    from minift.model.gpt import GPT, GPTConfig
    from minift.model.tokenizer import Tokenizer
    from minift.training.config import TrainConfig
    from minift.training.device import seed_everything
    from minift.training.loop import train
    from minift.training.optim import AdamW
