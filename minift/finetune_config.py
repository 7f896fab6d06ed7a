"""What defines a fine-tuning run: `FinetuneConfig`, its checks, and the defaults it falls back on.

A config is validated when it is made, so a mistake (an unknown method, a bad option, epochs and max_steps both
given) fails with a ConfigError that says what to change, before any model is loaded. `minift.finetune.finetune`
runs it.

Learning rates. Fewer trainable numbers, each carrying more of the change, want a larger step: `METHOD_DEFAULTS`
holds the lr used when config.lr is None. They were chosen by short runs on the `tiny` base, sentiment, 10 epochs,
seed 0 (test accuracy at the chosen lr; majority baseline ≈ 0.5, bag-of-words ≈ 0.7):
    full 3e-4: 0.96   lora 2e-3: 0.885   dora 2e-3: 0.885   adapter-houlsby 3e-3: 0.81   adapter-pfeiffer 3e-3: 0.75
    ia3 3e-2: 0.835   loreft 1e-2: 0.80  direft 1e-2: 0.78   prefix 1e-2: ≈ 0.55   prompt 1e-1: ≈ 0.64
Prefix and prompt tuning stayed near chance at every lr tried on this small model (prompt tuning is known to need
scale: Lester et al., 2021). Other defaults: 10 epochs, warmup 5% of the steps, cosine decay to lr/10, AdamW
β = (0.9, 0.95), no weight decay (for full fine-tuning decay would pull the weights towards 0, not towards the
pretrained values), gradient clipping at 1.0, about 10 evaluations per run, the best one kept. `head_lr` gives a
classification head its own lr (a new full-rank layer may want a smaller step than a soft prompt).
On the generation task `qa` the same defaults leave the adapters, ReFT, prefix and prompt tuning near 10 % exact
match while full fine-tuning, LoRA and DoRA reach 78–88 %, and a three times larger lr did not change that (README).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from .errors import ConfigError
from .peft import METHODS, MethodConfig, method_config
from .sft import TEMPLATES

# lr when FinetuneConfig.lr is None, and option defaults merged under the user's method_options (module docstring)
METHOD_DEFAULTS: dict[str, dict] = {
    "full": {"lr": 3e-4, "options": {}},
    "lora": {"lr": 2e-3, "options": {"r": 8, "alpha": 16}},
    "dora": {"lr": 2e-3, "options": {"r": 8, "alpha": 16}},
    "adapter-houlsby": {"lr": 3e-3, "options": {}},
    "adapter-pfeiffer": {"lr": 3e-3, "options": {}},
    "ia3": {"lr": 3e-2, "options": {}},
    "prefix": {"lr": 1e-2, "options": {"n_virtual": 10}},
    "prompt": {"lr": 1e-1, "options": {"n_virtual": 10}},
    "loreft": {"lr": 1e-2, "options": {"rank": 4, "positions": "f3+l3"}},
    "direft": {"lr": 1e-2, "options": {"rank": 4, "positions": "f3+l3"}},
}
DEFAULT_EPOCHS = 10


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run. Validated on construction (ConfigError saying what to change)."""

    base: str = "tiny"                 # preset name ("quick", "tiny") or a model directory
    task: str | None = None            # a built-in task (minift.tasks.TASKS) ...
    data: str | None = None            # ... or a user's JSONL/CSV file
    method: str = "full"               # "full" or a name in minift.peft.METHODS
    method_options: dict = field(default_factory=dict)  # passed to method_config, over METHOD_DEFAULTS' options
    freeze_until: int | None = None    # full only: train just the last k blocks (+ final LayerNorm, + head)
    epochs: float | None = None        # None and max_steps None → DEFAULT_EPOCHS
    max_steps: int | None = None
    lr: float | None = None            # None → METHOD_DEFAULTS[method]["lr"]
    head_lr: float | None = None       # classification head's peak lr; None → the same as lr
    batch_size: int = 16
    grad_accum: int = 1
    warmup: int | None = None          # steps; None → 5% of the steps
    weight_decay: float = 0.0
    eval_every: int | None = None      # steps; None → about 10 evaluations
    patience: int | None = None        # early stopping after this many evaluations without a better val loss
    max_len: int | None = None         # tokens per example; None → the context (minus a soft prompt's P)
    train_on_prompt: bool = False      # SFT: also supervise the prompt tokens
    template: str = "auto"             # SFT prompt layout: a name in minift.sft.TEMPLATES, or "auto" (by context)
    seed: int = 0
    device: str = "auto"
    n_train: int | None = None         # a seeded random subset of the training split
    n_eval: int | None = None          # score only the first n_eval examples of each test split

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
        need(self.method == "full" or self.method in METHODS,
             f"unknown method {self.method!r}; choose full or one of {', '.join(sorted(METHODS))}")
        need(isinstance(self.method_options, dict), f"method_options must be a dict, got {self.method_options!r}")
        need(self.method != "full" or not self.method_options,
             f"full fine-tuning takes no method_options (got {sorted(self.method_options)}); use freeze_until")
        need(self.freeze_until is None or self.method == "full",
             f"freeze_until applies to full fine-tuning only, not to {self.method!r}")
        for name in ("max_steps", "batch_size", "grad_accum", "eval_every", "patience", "n_eval"):
            pos_int(name)
        pos_int("n_train", 2)
        pos_int("max_len", 2)
        pos_int("freeze_until", 0)
        pos_int("warmup", 0)
        need(self.epochs is None or self.max_steps is None, "give epochs or max_steps, not both")
        need(self.epochs is None or (isinstance(self.epochs, (int, float)) and self.epochs > 0),
             f"epochs must be > 0, got {self.epochs!r}")
        for name in ("lr", "head_lr"):
            v = getattr(self, name)
            need(v is None or (isinstance(v, (int, float)) and v > 0), f"{name} must be > 0, got {v!r}")
        need(self.weight_decay >= 0, f"weight_decay must be ≥ 0, got {self.weight_decay}")
        need(self.template == "auto" or self.template in TEMPLATES,
             f"template must be auto or one of {sorted(TEMPLATES)}, got {self.template!r}")
        need(isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")
        need(not (self.train_on_prompt and self.method in ("loreft", "direft")),
             "ReFT finds the prompt through its masked labels, so it needs train_on_prompt=False")
        if self.method != "full":
            self.method_config()  # unknown options or bad values fail now, not after loading the base

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else METHOD_DEFAULTS[self.method]["lr"]

    def method_config(self, tok=None) -> MethodConfig:
        """The PEFT MethodConfig: METHOD_DEFAULTS' options, overridden by method_options. A prompt initialised
        from text gets its token ids from `tok`."""
        options = {**METHOD_DEFAULTS.get(self.method, {}).get("options", {}), **self.method_options}
        cfg = method_config(self.method, **options)
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
