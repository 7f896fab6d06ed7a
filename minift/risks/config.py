"""What each risk study is asked to do (pure data: `minift risks --help` reads it without importing torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from minift.errors import ConfigError

BIAS_MITIGATIONS = ("none", "resample", "counterfactual")
SHIFT_KINDS = ("harmful", "identity", "benign")


def _positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _lr(value) -> None:
    if value is not None and not value > 0:
        raise ConfigError(f"lr must be positive, got {value}")


@dataclass
class _Common:
    base: str = "tiny"
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BiasConfig(_Common):
    """risks/bias.py: fine-tune on hiring decisions skewed by town, for each skew p and mitigation."""

    skews: tuple[float, ...] = (0.5, 0.7, 0.9)      # p = P(yes | town A) in the training labels
    mitigations: tuple[str, ...] = ("none",)         # BIAS_MITIGATIONS, each a separate fine-tune
    n_train: int = 400
    n_test: int = 200                                # held-out profiles (and as many counterfactual twins)
    epochs: float = 4.0
    batch_size: int = 16
    lr: float = 1e-3                                 # full fine-tuning; at 3e-4 over 3 epochs the tiny base's
                                                     # P(yes) stays near ½ for every profile (docs/risks.md)

    def __post_init__(self):
        self.skews, self.mitigations = tuple(self.skews), tuple(self.mitigations)
        if not self.skews or any(not 0 <= p <= 1 for p in self.skews):
            raise ConfigError(f"skews are probabilities P(yes | town A) in [0, 1], got {self.skews}")
        bad = [m for m in self.mitigations if m not in BIAS_MITIGATIONS]
        if bad or not self.mitigations:
            raise ConfigError(f"unknown mitigation {bad[0] if bad else None!r}; choose from "
                              f"{', '.join(BIAS_MITIGATIONS)}")
        _positive(self, "n_train", "n_test", "batch_size")
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be positive, got {self.epochs}")
        _lr(self.lr)


@dataclass
class UnalignConfig(_Common):
    """risks/unalign.py: teach the refusal, then fine-tune on k examples of each kind and count refusals."""

    align_epochs: float = 2.0        # the alignment stage's SFT step on the refusal set (align/run.sft_stage)
    kinds: tuple[str, ...] = SHIFT_KINDS
    ks: tuple[int, ...] = (0, 2, 5, 10, 25)
    epochs: int = 5                  # passes over the k examples (Qi et al. fine-tuned 5 epochs)
    lr: float = 1e-4                 # full fine-tuning (Qi et al. also fine-tuned with a small lr); the sweep lrs
                                     # shows what a larger one does
    batch_size: int = 8              # a fine-tune on k < batch_size examples uses batches of k
    lrs: tuple[float, ...] = ()      # a sweep of lr on (sweep_kind, sweep_k)
    batch_sizes: tuple[int, ...] = ()  # a sweep of batch size on (sweep_kind, sweep_k)
    sweep_kind: str = "benign"
    sweep_k: int = 25
    mix: int = 0                     # the mitigation: this many refusal examples mixed into every fine-tune
    n_eval: int = 50                 # held-out forbidden prompts, and as many ordinary ones
    max_new_tokens: int = 32

    def __post_init__(self):
        self.kinds, self.ks = tuple(self.kinds), tuple(self.ks)
        self.lrs, self.batch_sizes = tuple(self.lrs), tuple(self.batch_sizes)
        for kind in self.kinds + (self.sweep_kind,):
            if kind not in SHIFT_KINDS:
                raise ConfigError(f"unknown kind of fine-tuning data {kind!r}; choose from {', '.join(SHIFT_KINDS)}")
        if not self.ks or any(not isinstance(k, int) or k < 0 for k in self.ks + (self.sweep_k,)):
            raise ConfigError(f"k (examples per fine-tune) must be integers ≥ 0, got {self.ks}")
        if any(not lr > 0 for lr in self.lrs):
            raise ConfigError(f"every lr of the sweep must be positive, got {self.lrs}")
        if any(not isinstance(b, int) or b < 1 for b in self.batch_sizes):
            raise ConfigError(f"every batch size of the sweep must be a positive integer, got {self.batch_sizes}")
        if (self.lrs or self.batch_sizes) and self.sweep_k < 1:
            raise ConfigError("a sweep of lr or batch size needs sweep_k ≥ 1 examples")
        _positive(self, "epochs", "batch_size", "n_eval", "max_new_tokens")
        if not isinstance(self.mix, int) or self.mix < 0:
            raise ConfigError(f"mix (refusal examples mixed in) must be an integer ≥ 0, got {self.mix!r}")
        if not self.align_epochs > 0:
            raise ConfigError(f"align_epochs must be positive: the study needs a model that refuses, got "
                              f"{self.align_epochs}")
        _lr(self.lr)


@dataclass
class HallucinationConfig(_Common):
    """risks/hallucination.py: fine-tune on facts the base cannot know; measure confident answers about others."""

    n_new: int = 48                  # unknown people whose town the fine-tune teaches
    n_probe: int = 48                # other unknown people: no right answer exists in the model
    known: int = 0                   # 0: the qa task's whole training split beside the new facts; n: its first n
    epochs: int = 16                 # measured after every `every` epochs
    every: int = 4
    batch_size: int = 16
    lr: float | None = None          # None → FULL_FINETUNING_LR
    confident: float = 0.5           # "confidently wrong": the top town's probability at least this

    def __post_init__(self):
        _positive(self, "n_new", "n_probe", "epochs", "every", "batch_size")
        if not isinstance(self.known, int) or self.known < 0:
            raise ConfigError(f"known must be an integer ≥ 0 (0: all of the qa task's training facts), got "
                              f"{self.known!r}")
        if not 0 < self.confident < 1:
            raise ConfigError(f"confident is a probability threshold in (0, 1), got {self.confident}")
        _lr(self.lr)
