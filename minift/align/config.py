"""What an alignment run is asked to do (pure data: `minift align --help` reads it without importing torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from minift.errors import ConfigError

PREFERENCE_METHODS = ("dpo", "cdpo", "robust", "ipo", "hinge", "simpo", "orpo", "cpo", "kto")
RL_METHODS = ("grpo", "rloo")  # sample, reward by rule, reinforce (align/rl.py)
ALIGN_METHODS = PREFERENCE_METHODS + RL_METHODS
PREFERENCE_SETS = ("polite", "facts", "refusal")
RL_TASKS = ("json",)  # tasks with a checkable answer but no preference pairs: for grpo / rloo only
# the peak lr an alignment run uses when none is given, by what it updates; measured on the tiny base with the
# polite set (docs/alignment.md): preference losses move a model fast, and more than this overshoots
DEFAULT_LR = {"lora": 1e-3, "full": 1e-4}
# the names `options` may hold (objective.PreferenceConfig's and rl.RLConfig's fields; a test keeps them in step)
PREFERENCE_OPTIONS = ("beta", "eps", "gamma", "lam", "alpha", "sft_weight", "average")
RL_OPTIONS = ("group", "beta", "clip_eps", "temperature", "aggregation", "scale_by_std", "skip_zero_spread")


def check_source(task: str | None, data: str | None, update: str, known: tuple[str, ...]) -> None:
    """What every alignment-stage run checks first: one source of data (a built-in set in `known`, or a file) and
    what it updates."""
    if (task is None) == (data is None):
        raise ConfigError(f"give exactly one of task (a built-in preference set: {', '.join(PREFERENCE_SETS)}) and "
                          "data (your JSONL file)")
    if task is not None and task not in known:
        extra = [k for k in known if k not in PREFERENCE_SETS]
        raise ConfigError(f"unknown preference set {task!r}; built-in sets are {', '.join(PREFERENCE_SETS)}"
                          + (f" (and {', '.join(extra)} for grpo / rloo)" if extra else ""))
    if update not in DEFAULT_LR:
        raise ConfigError(f"update must be 'lora' or 'full', got {update!r}")


@dataclass
class AlignConfig:
    base: str = "tiny"                 # a preset or a model directory: the starting policy and the reference ...
    from_run: str | None = None        # ... or a finished SFT run (full, or a mergeable method, merged first)
    sft_epochs: float = 0.0            # > 0: first fine-tune every weight on the chosen answers (the classic SFT
                                       # step before preference training), then align from that model
    sft_batch_size: int = 8            # the SFT step's examples per step (its own: RL's batch counts prompts)
    sft_on: str = "chosen"             # the SFT step's answers: "chosen", or "both" (a model that imitated every
                                       # answer it saw, rude ones included, which preference training then corrects)
    task: str | None = None            # a built-in preference set (PREFERENCE_SETS) ...
    data: str | None = None            # ... or your JSONL ({prompt, chosen, rejected} or {prompt, completion, label})
    method: str = "dpo"                # a PREFERENCE_METHODS or RL_METHODS name
    options: dict = field(default_factory=dict)   # the method's hyper-parameters (objective.PreferenceConfig,
                                                  # rl.RLConfig)
    update: str = "lora"               # what trains: a new LoRA (reference = adapter off) or every weight ("full")
    lr: float | None = None            # None → DEFAULT_LR[update]
    epochs: float = 1.0                # preference sets overfit fast: one pass is the usual recipe
    max_steps: int | None = None
    batch_size: int = 8                # pairs per micro-batch
    grad_accum: int = 1
    precompute_ref: bool = False       # reference log-probs once before training instead of every step
    template: str = "auto"
    max_len: int | None = None
    n_train: int | None = None         # the first n training pairs
    n_eval: int | None = None          # test prompts scored (None: all)
    max_new_tokens: int = 24           # the answers generated for the win rate
    reward_model: str | None = None    # a `minift reward train` run: also judge the answers by its rewards
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        check_source(self.task, self.data, self.update, PREFERENCE_SETS + RL_TASKS)
        if self.task in RL_TASKS and self.method not in RL_METHODS:
            raise ConfigError(f"task {self.task!r} has no preference pairs, only a checkable answer: use grpo or "
                              "rloo")
        if self.method not in ALIGN_METHODS:
            raise ConfigError(f"unknown alignment method {self.method!r}; choose one of {', '.join(ALIGN_METHODS)}")
        if self.method in RL_METHODS and self.task is None:
            raise ConfigError(f"{self.method} rewards answers by a rule; the built-in sets have one "
                              f"({', '.join(PREFERENCE_SETS)}), a data file does not")
        for name in ("batch_size", "grad_accum", "max_new_tokens", "sft_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be ≥ 1, got {self.max_steps}")
        known = RL_OPTIONS if self.method in RL_METHODS else PREFERENCE_OPTIONS
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ConfigError(f"{self.method} has no option {', '.join(map(repr, unknown))}; its options are "
                              f"{', '.join(known)}")
        if self.sft_on not in ("chosen", "both"):
            raise ConfigError(f"sft_on must be 'chosen' or 'both', got {self.sft_on!r}")
        if self.sft_epochs < 0:
            raise ConfigError(f"sft_epochs must be ≥ 0, got {self.sft_epochs}")
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RewardConfig:
    """A reward-model run (`minift reward train`): the body of `base` (or of an SFT run) with a scalar head,
    trained on preference pairs with the Bradley–Terry loss."""

    base: str = "tiny"
    from_run: str | None = None
    task: str | None = None
    data: str | None = None
    update: str = "lora"               # a LoRA on the body (plus the head), or every weight
    lr: float | None = None            # None → DEFAULT_LR[update]
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 8
    margin: float = 0.0                # −log σ(r_c − r_r − margin)
    center: float = 0.0                # + center · mean((r_c + r_r)²)
    template: str = "auto"
    max_len: int | None = None
    n_train: int | None = None
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        check_source(self.task, self.data, self.update, PREFERENCE_SETS)

    def to_dict(self) -> dict:
        return asdict(self)
