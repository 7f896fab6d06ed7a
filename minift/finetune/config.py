"""What defines a fine-tuning run: `FinetuneConfig`, its checks, and the defaults it falls back on.

A config is validated when it is made, so a mistake (an unknown method, a bad option, epochs and max_steps both
given) fails with a ConfigError that says what to change, before any model is loaded. `minift.finetune.finetune`
runs it.

Learning rates. Fewer trainable numbers, each carrying more of the change, want a larger step. When `lr` is None a
run takes its method's `default_lr` (each PEFT method's config states it with its reason in `lr_reason`;
`minift methods` lists them all) and full fine-tuning takes FULL_FINETUNING_LR = 3e-4. They were chosen by short
runs on the `tiny` base, sentiment, 10 epochs, seed 0 (test accuracy at the chosen lr: full 0.96, LoRA 0.885;
majority baseline ≈ 0.5, bag-of-words ≈ 0.7). Other defaults: 10 epochs, warmup 5% of the steps, cosine decay to
lr/10, AdamW β = (0.9, 0.95), no weight decay (for full fine-tuning decay would pull the weights towards 0, not
towards the pretrained values), gradient clipping at 1.0, about 10 evaluations per run, the best one kept.
`head_lr` gives a classification head its own lr (a new full-rank layer may want a smaller step than a soft
prompt). A method's options default to its config's own field defaults (e.g. LoRA r 8, α 16 on attn.q, attn.v).

Pure data (no torch): the methods are looked up only when a config is checked, so the command line can show these
defaults without loading the model code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from minift.base.presets import PRESETS
from minift.errors import ConfigError
from minift.finetune.templates import TEMPLATES

FULL_FINETUNING_LR = 3e-4  # every weight moves: small steps (tiny base, sentiment, 10 epochs: 0.96)
DEFAULT_EPOCHS = 10
MIN_DEFAULT_STEPS = 200  # with neither epochs nor max_steps given: a small data set still gets enough steps to learn
TOO_FEW_STEPS = 50       # fewer optimizer steps than this rarely learn anything: the run warns


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run. Validated on construction (ConfigError saying what to change)."""

    base: str = "tiny"                 # preset name ("quick", "tiny") or a model directory
    task: str | None = None            # a built-in task (minift.data.tasks.TASKS) ...
    data: str | None = None            # ... or a user's JSONL/CSV file
    method: str = "full"               # "full" or a name in minift.peft.METHODS
    method_options: dict = field(default_factory=dict)  # the method config's fields that differ from its defaults
    freeze_until: int | None = None    # full only: train just the last k blocks (+ final LayerNorm, + head)
    epochs: float | None = None        # None and max_steps None → DEFAULT_EPOCHS
    max_steps: int | None = None
    lr: float | None = None            # None → the method's default_lr (full: FULL_FINETUNING_LR)
    head_lr: float | None = None       # classification head's peak lr; None → the same as lr
    batch_size: int = 16
    grad_accum: int = 1
    warmup: int | None = None          # steps; None → 5% of the steps
    weight_decay: float = 0.0
    eval_every: int | None = None      # steps; None → about 10 evaluations
    patience: int | None = None        # early stopping after this many evaluations without a better val loss
    max_len: int | None = None         # tokens per example; None → the context (minus a soft prompt's P)
    train_on_prompt: bool = False      # SFT: also supervise the prompt tokens
    template: str = "auto"             # SFT prompt layout: a name in templates.TEMPLATES, or "auto" (by context)
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"                # forward precision: auto (bf16 on a capable GPU, else fp32), fp32, bf16
    threads: int | None = None         # torch intra-op threads for this process; None → torch's default
    n_train: int | None = None         # a seeded random subset of the training split
    n_eval: int | None = None          # score only the first n_eval examples of each split (val and test)

    def __post_init__(self):
        def need(ok, msg):
            if not ok:
                raise ConfigError(f"FinetuneConfig: {msg}")

        def pos_int(name, minimum=1):
            v = getattr(self, name)
            need(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum),
                 f"{name} must be an integer ≥ {minimum}, got {v!r}")

        need((self.task is None) != (self.data is None), "give exactly one of task (a built-in task name) or data "
             f"(a JSONL/CSV file); got task={self.task!r}, data={self.data!r}")
        methods = _methods()
        need(self.method == "full" or self.method in methods,
             f"unknown method {self.method!r}; choose full or one of {', '.join(sorted(methods))}")
        need(isinstance(self.method_options, dict), f"method_options must be a dict, got {self.method_options!r}")
        need(self.method != "full" or not self.method_options,
             f"full fine-tuning takes no method_options (got {sorted(self.method_options)}); use freeze_until")
        need(self.freeze_until is None or self.method == "full",
             f"freeze_until applies to full fine-tuning only, not to {self.method!r}")
        for name in ("max_steps", "batch_size", "grad_accum", "eval_every", "patience", "n_eval", "threads"):
            pos_int(name)
        pos_int("n_train", 2)
        pos_int("max_len", 2)
        pos_int("freeze_until", 0)
        pos_int("warmup", 0)
        need(self.epochs is None or self.max_steps is None, "give epochs or max_steps, not both")
        need(self.epochs is None or (isinstance(self.epochs, (int, float)) and math.isfinite(self.epochs)
                                     and self.epochs > 0),
             f"epochs must be > 0, got {self.epochs!r}")
        for name in ("lr", "head_lr"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, (int, float)) and math.isfinite(v) and v > 0),
                 f"{name} must be a finite number > 0, got {v!r}")
        wd = self.weight_decay
        need(isinstance(wd, (int, float)) and math.isfinite(wd) and wd >= 0,
             f"weight_decay must be a finite number ≥ 0, got {wd!r}")
        need(self.template == "auto" or self.template in TEMPLATES,
             f"template must be auto or one of {sorted(TEMPLATES)}, got {self.template!r}")
        need(isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")
        need(self.dtype in ("auto", "fp32", "bf16"), f"dtype must be auto, fp32 or bf16, got {self.dtype!r}")
        need(not (self.train_on_prompt and self.method != "full" and methods[self.method].needs_masked_prompt),
             f"{self.method} finds the prompt through its masked labels, so it needs train_on_prompt=False")
        if self.method != "full":
            self.method_config()  # unknown options or bad values fail now, not after loading the base
        # paths are remembered absolute, so the run can be evaluated (or resumed) from any directory
        if self.data is not None:
            self.data = str(Path(self.data).expanduser().resolve())
        if self.base not in PRESETS and Path(self.base).expanduser().exists():
            self.base = str(Path(self.base).expanduser().resolve())

    @property
    def resolved_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return FULL_FINETUNING_LR if self.method == "full" else _methods()[self.method].default_lr

    def method_config(self, tok=None):
        """The PEFT MethodConfig (its defaults, overridden by method_options). A prompt initialised from text gets
        its token ids from `tok`."""
        from minift.peft import method_config

        cfg = method_config(self.method, **self.method_options)
        if tok is not None and getattr(cfg, "init", None) == "text" and not cfg.init_ids:
            cfg = cfg.with_tokenizer(tok)
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown FinetuneConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)


def _methods() -> dict:
    """The registered PEFT methods (imported here, not at the top: see the module docstring)."""
    from minift.peft import METHODS

    return METHODS
