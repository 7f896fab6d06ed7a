"""The result record: everything one fine-tuning run reports, as one JSON file (results.json), written last, so
its presence marks a finished run. One dataclass, one way to write it: every field is named here.

Later stages (alignment, continual learning) write records of the same shape for their own runs: what was trained
(run, task, method, base, config), how well (metrics per split, baselines), what it cost (parameters, bytes,
memory, time) and what it broke (forgetting).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

from minift.errors import CheckpointError
from minift.files import load_json, save_json


@dataclass
class ResultRecord:
    """One run's results.json. `schema_version` lets later readers adapt."""

    run: str                          # the run directory's name
    task: str                         # a built-in task, or the user's data file's name
    kind: str                         # "labelled" (classification) or "instruction"
    method: str                       # "full" or a PEFT method
    base: str                         # the --base given: a preset or a model directory
    preset: str | None                # the preset the base came from (its pretraining text measures forgetting);
                                      # None for a real model, measured on minift/data/english.py
    config: dict                      # the FinetuneConfig, as a dict
    method_config: dict | None        # the PEFT method's resolved config (None for full fine-tuning)
    metrics: dict                     # {split: {metric: value}}, e.g. {"test": {"accuracy": 0.91, ...}}
    baselines: dict                   # classification: {"majority": {...}, "bow_logreg_1gram": {...}}
    forgetting: dict                  # minift.finetune.forgetting.forgetting(before, after)
    trainable_params: int             # a new classification head counts as trainable
    total_params: int
    trainable_pct: float              # 100 · trainable / total
    optimizer_state_bytes: int        # AdamW's two fp32 moments per trainable number
    weights_file: str                 # "adapter.pt" (PEFT) or "model" (full: a model directory)
    weights_bytes: int
    adapter_bytes: int | None         # the same for PEFT runs; None for full fine-tuning
    mergeable: bool | None            # can the update be folded into the base weights? None for full
    lr: float                         # the peak learning rate used
    steps: int
    best_step: int | None             # the step whose weights were kept (lowest validation loss)
    stop_reason: str
    train_loss: float | None          # token-mean loss of the last step
    val_loss: float | None            # the best validation loss
    final_val_loss: float | None
    train_seconds: float              # the training loop alone
    wall_seconds: float               # the whole run: loading, training, evaluation, saving
    tokens_per_s: float
    peak_memory_mb: float | None
    peak_memory_kind: str             # "process_rss" (CPU) or "cuda_allocated"
    device: str
    world_size: int                   # processes under torchrun (1 otherwise)
    data: dict                        # what the encoded training data held (examples, truncations, ...)
    max_new_tokens: int               # the generation budget used for scoring (0 for classification)
    threads: int | None = None        # torch intra-op threads of the run's process (None in older records)
    base_weight_bytes: int | None = None  # the model's weights in memory (QLoRA: 4-bit layers at their packed size)
    warnings: list = field(default_factory=list)  # what visibly went wrong (too few steps, divergence, forgetting)
    samples: list = field(default_factory=list)  # a few (input, prediction, reference) triples to eyeball
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    schema_version: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ResultRecord":
        known = {f.name for f in fields(cls)}
        missing = sorted(f.name for f in fields(cls) if f.name not in d and f.name not in
                         ("samples", "created", "schema_version", "warnings", "threads",
                                                      "base_weight_bytes"))
        if missing:
            raise CheckpointError(f"this results record lacks {missing}; it was written by another version of "
                                  "minift: run the fine-tuning again")
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path) -> None:
        """Write the record as JSON, atomically (a crash never leaves half a file)."""
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "ResultRecord":
        return cls.from_dict(load_json(path))
