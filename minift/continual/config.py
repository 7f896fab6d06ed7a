"""The settings of a continual run (run.py), pure data: the command line reads them without importing torch.

Defaults, chosen by short runs on the `tiny` base, full fine-tuning (docs/continual.md): 20 epochs per update at
fine-tuning's usual lr, 3e-4. On the default stream that got 62 % of each update's new facts right on held-out
phrasings, with the pretraining-text loss up 0.42 nats after four updates; lr 5e-4 got 50 % and +1.19; lr 1e-3 71 %
and +4.69 (the model stops writing English). LoRA takes its own default lr. A larger model learns facts in fewer
steps and wants a smaller lr (README gives SmolLM2's settings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from minift.errors import ConfigError

CONTINUAL_FULL_LR = 3e-4  # = fine-tuning's FULL_FINETUNING_LR; the module docstring gives the sweep
METHODS = ("full", "lora", "lora-merge")
MITIGATIONS = ("none", "replay", "ewc", "l2sp")


@dataclass
class ContinualConfig:
    base: str = "tiny"
    method: str = "full"
    mitigation: str = "none"       # none, replay, ewc, l2sp, or several joined by "+" (replay+l2sp)
    n_updates: int = 4
    facts: int = 6                 # facts per update
    paraphrases: int = 3           # documents per fact
    train_on: str = "both"         # questions | documents | both
    epochs: float = 20.0           # passes over each update's training examples
    lr: float | None = None        # None: CONTINUAL_FULL_LR for full, LoRA's default_lr for the LoRAs
    batch_size: int = 8
    replay: float = 0.5            # share of replayed examples (mitigation replay)
    ewc_lambda: float = 100.0      # λ of EWC (its Fisher is per example, summed over updates)
    l2sp_alpha: float = 0.1        # α of L2-SP
    max_new_tokens: int = 8
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        parts = self.mitigation.split("+")
        if any(m not in MITIGATIONS for m in parts) or len(set(parts)) != len(parts) or \
                ("none" in parts and len(parts) > 1):
            raise ConfigError(f"mitigation must be one of {', '.join(MITIGATIONS)}, or several joined by + "
                              f"(replay+l2sp), got {self.mitigation!r}")
        if self.method == "lora-merge" and self.mitigations & {"ewc", "l2sp"}:
            raise ConfigError("ewc and l2sp anchor the trainable weights, and lora-merge starts a new adapter every "
                              "update (nothing to anchor); use them with full or lora, or replay with lora-merge")
        if self.train_on not in ("questions", "documents", "both"):
            raise ConfigError(f"train_on must be questions, documents or both, got {self.train_on!r}")
        if not isinstance(self.facts, int) or not 1 <= self.facts <= 12:
            raise ConfigError(f"facts per update must be 1 to 12 (the world has that many subjects to change), got "
                              f"{self.facts}")
        if not 1 <= self.paraphrases <= 4:
            raise ConfigError(f"paraphrases must be 1 to 4, got {self.paraphrases}")
        for name in ("n_updates", "facts", "batch_size", "max_new_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be an integer ≥ 1, got {getattr(self, name)!r}")
        if not 0 <= self.replay < 1:
            raise ConfigError(f"replay is the share of replayed examples, in [0, 1), got {self.replay}")
        if self.epochs <= 0 or (self.lr is not None and self.lr <= 0) or self.ewc_lambda < 0 or self.l2sp_alpha < 0:
            raise ConfigError("epochs and lr must be > 0, ewc_lambda and l2sp_alpha ≥ 0")

    @property
    def mitigations(self) -> set[str]:
        """The mitigations switched on ({} for none)."""
        return set(self.mitigation.split("+")) - {"none"}

    @property
    def name(self) -> str:
        return f"{self.method}" + ("" if self.mitigation == "none" else f"+{self.mitigation}")

    def to_dict(self) -> dict:
        return asdict(self)
