"""The pieces of a fine-tuning run around the training loop: which data it learns from, how it is scored, and what
it costs. `minift.finetune` puts them together; `minift compare` and the lessons reuse them.

    base          a preset from the cache or a model directory (whose config.json names its preset)
    TaskData      one task resolved into splits: a built-in task (tasks.py) or a user's JSONL/CSV file (data.py);
                  its shape decides the kind: {"text", "label"} → classification, {"instruction", "output"} → SFT
    evaluate_task the task's metric on a split, by greedy generation or by the classifier's argmax
                      classification  accuracy, macro-F1 (and accuracy per sentiment construction)
                      qa / any SFT    exact match (eval.normalize_answer: case, spaces, one final period)
                      json            + JSON validity and schema compliance (tasks.JSON_SCHEMA)
                      style           + style adherence: share of outputs that follow tasks.follows_pirate_style
    forgetting    next-token loss on the pretraining corpus's validation windows, before vs after fine-tuning
    head files    a full run's classification head (head.pt: labels + weights)
    costs         parameter counts, optimizer-state bytes (AdamW keeps two fp32 moments m, v per trainable
                  number: 8 bytes each), file sizes, peak memory (process RSS on CPU, allocated bytes on CUDA)

A user file has no splits, so it is shuffled with its own seeded generator and cut into train / val / test
(10% each for val and test, at least one example each).
"""

from __future__ import annotations

import functools

import hashlib
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .base import PRESETS, encode_documents, fixed_windows, get_preset, load_base, load_model_dir
from .classify import Classifier, classify_collate, encode_labelled, predict
from .corpus import corpus_splits
from .data import label_set, load_examples
from .errors import CheckpointError, ConfigError, InputError, MissingFileError
from .eval import accuracy, exact_match, grouped_accuracy, json_validity, macro_f1
from .peft import disabled
from .peft.adapters import gpt_of
from .sft import PromptTemplate, generate_batch
from .tasks import follows_pirate_style, get_task, load_task
from .train import evaluate, lm_loss_fn
from .utils import load_json, torch_load, torch_save_atomic


@dataclass
class TaskData:
    """A task ready to train on: its kind, splits and how it is scored."""

    name: str                       # the built-in task name, or the data file's name
    kind: str                       # "labelled" (classification) or "instruction" (SFT)
    splits: dict[str, list[dict]]   # train, val, test (and heldout for qa)
    labels: list[str] = field(default_factory=list)  # classification: the class order of the head
    schema: dict | None = None      # json: the keys and allowed values

    @property
    def eval_splits(self) -> list[str]:
        return [s for s in ("test", "heldout") if s in self.splits]


def load_task_data(task: str | None = None, data: str | None = None, seed: int = 0, n_train: int | None = None
                   ) -> TaskData:
    """Resolve a built-in task name or a user file into a TaskData. n_train keeps a seeded random subset of the
    training split (the other splits stay whole, so runs with different n_train are scored on the same examples)."""
    if task is not None:
        spec = get_task(task)
        splits = {s: load_task(task, s, seed=seed) for s in spec.splits}
        td = TaskData(task, spec.kind, splits, list(spec.labels), dict(spec.schema) or None)
    else:
        examples = load_examples(data)
        kind = examples.report.kind
        if kind == "text":
            raise InputError(f"{data}: plain text (or records with only 'text') cannot be fine-tuned on here; give "
                             "{\"text\", \"label\"} records (classification) or {\"instruction\", \"output\"} (SFT)")
        if len(examples) < 5:
            raise InputError(f"{data}: {len(examples)} examples are too few to split into train / val / test; "
                             "give at least 5")
        pool = list(examples)
        random.Random(f"data-{seed}").shuffle(pool)
        n_held = max(1, round(0.1 * len(pool)))
        splits = {"val": pool[:n_held], "test": pool[n_held:2 * n_held], "train": pool[2 * n_held:]}
        td = TaskData(Path(data).name, kind, splits, label_set(pool) if kind == "labelled" else [])
    if n_train is not None and n_train < len(td.splits["train"]):
        td.splits["train"] = random.Random(f"n_train-{seed}").sample(td.splits["train"], n_train)
    return td


# -- the base and the classification head -----------------------------------------------------------------------

def load_base_model(base: str, progress: bool = True):
    """(model, tokenizer, preset): a preset name loads (or pretrains once) the cached base; anything else is a model
    directory, whose config.json names the preset it came from (default "tiny", used for the forgetting probe)."""
    if base in PRESETS:
        model, tok = load_base(base, progress=progress)
        return model, tok, base
    path = Path(base)
    if not path.is_dir():
        raise MissingFileError(f"base {base!r} is neither a preset ({', '.join(PRESETS)}) nor a model directory")
    model, tok = load_model_dir(path)
    preset = load_json(path / "config.json").get("preset") or "tiny"
    return model, tok, preset if preset in PRESETS else "tiny"


def save_head(path, clf: Classifier) -> None:
    """The classification head of a full (or merged) run: {"labels", "state": the head's state_dict}."""
    torch_save_atomic({"labels": clf.labels, "state": {k: v.cpu() for k, v in clf.head.state_dict().items()}}, path)


def load_head(path, gpt, labels: list[str] | None = None) -> Classifier:
    """A Classifier around `gpt` with the head stored at `path` (its labels must equal `labels` when given)."""
    head = torch_load(path)
    if not isinstance(head, dict) or "labels" not in head or "state" not in head:
        raise CheckpointError(f"{path} is not a minift classification head (expected 'labels' and 'state')")
    if labels is not None and head["labels"] != list(labels):
        raise CheckpointError(f"{path} has labels {head['labels']}, but the run has {list(labels)}")
    clf = Classifier(gpt, head["labels"])
    try:
        clf.head.load_state_dict(head["state"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit this model: {str(e).splitlines()[0]}") from None
    return clf


# -- generation and scoring ----------------------------------------------------------------------------------------

def context_reserve(model) -> int:
    """Context positions a method takes from the input: P for prompt tuning, 0 for every other method."""
    prompt = getattr(gpt_of(model), "soft_prompt", None)
    return prompt.n_virtual if prompt is not None else 0


def generate_answers(model, tok, examples: list[dict], template: PromptTemplate, max_new_tokens: int,
                     batch_size: int = 32) -> list[str]:
    """Greedy answers with `sft.generate_batch`, for every method. ReFT needs nothing extra: generate_batch uses
    the KV cache and never slides the window, so only the prefill (the prompt) is intervened. Prompt tuning needs
    P free positions in front of the prompt (`reserve`)."""
    return generate_batch(model, tok, examples, max_new_tokens, template, batch_size, reserve=context_reserve(model))


def max_new_tokens_for(tok, examples: list[dict], block_size: int) -> int:
    """Room for the longest training answer plus a margin of 8 tokens (which also covers EOS and the template's
    response prefix, at most one token more), at most half the context."""
    longest = max(len(tok.encode(ex["output"])) for ex in examples)
    return max(1, min(longest + 8, block_size // 2))


@torch.no_grad()
def evaluate_task(model, tok, td: TaskData, template: PromptTemplate | None = None, max_new_tokens: int = 32,
                  n_eval: int | None = None, batch_size: int = 32) -> tuple[dict, list[dict]]:
    """Score `model` (a Classifier for labelled tasks, a GPT for instruction tasks) on the task's test split (and
    qa's heldout split). Returns ({split: metrics}, a few samples to eyeball). n_eval: only the first n_eval
    examples of each split (quick checks)."""
    was_training = model.training
    model.eval()
    metrics, samples = {}, []
    for split in td.eval_splits:
        examples = td.splits[split][:n_eval]
        if td.kind == "labelled":
            if not isinstance(model, Classifier):
                raise ConfigError(f"task {td.name!r} is a classification task, but this run's model generates text")
            enc = encode_labelled(tok, examples, td.labels, model.config.block_size - context_reserve(model))
            collate = classify_collate(tok.pad_id)
            pred_ids = predict(model, [collate(enc[i:i + batch_size]) for i in range(0, len(enc), batch_size)])
            pred = [td.labels[i] for i in pred_ids.tolist()]
            gold = [ex["label"] for ex in examples]
            m = {"accuracy": accuracy(pred, gold), "macro_f1": macro_f1(pred, gold, td.labels), "n": len(gold)}
            if all("construction" in ex for ex in examples):
                m["accuracy_by_construction"] = grouped_accuracy(pred, gold, [ex["construction"] for ex in examples])
            refs = [ex["text"] for ex in examples]
        else:
            if isinstance(model, Classifier):
                raise ConfigError(f"task {td.name!r} needs generated answers, but this run trained a classifier")
            pred = generate_answers(model, tok, examples, template, max_new_tokens, batch_size)
            gold = [ex["output"] for ex in examples]
            m = {"exact_match": exact_match(pred, gold), "n": len(gold)}
            if td.schema:
                j = json_validity(pred, td.schema)
                m.update(json_validity=j["validity_rate"], json_compliance=j["compliance_rate"], reasons=j["reasons"])
            if td.name == "style":
                m["style_adherence"] = sum(map(follows_pirate_style, pred)) / len(pred)
            refs = [ex["instruction"] + (f" | {ex['input']}" if ex.get("input") else "") for ex in examples]
        metrics[split] = m
        samples += [{"split": split, "input": r, "prediction": p, "reference": g}
                    for r, p, g in list(zip(refs, pred, gold))[:3]]
    model.train(was_training)
    return metrics, samples


def headline(td_kind: str, metrics: dict) -> dict:
    """The one or two numbers a table shows for a run: the test metric(s) and, for qa, the heldout exact match."""
    test = metrics.get("test", {})
    keys = ("accuracy", "macro_f1") if td_kind == "labelled" else \
        ("exact_match", "json_compliance", "style_adherence")
    out = {f"test_{k}": test[k] for k in keys if k in test}
    if "heldout" in metrics:
        out["heldout_exact_match"] = metrics["heldout"]["exact_match"]
    return out


# -- forgetting ----------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _val_docs(n_docs: int) -> tuple[str, ...]:
    """The built-in corpus's validation documents, cached: regenerating 20,000 documents costs seconds per run."""
    return tuple(corpus_splits(seed=0, n_docs=n_docs)[1])


def pretraining_batches(tok, preset: str, reserve: int = 0) -> list:
    """The preset's fixed pretraining validation windows (base.pretraining_data's val part, without encoding the
    training stream), each cut to its last block_size − reserve tokens when a method takes context positions."""
    p = get_preset(preset)
    batches = fixed_windows(encode_documents(tok, list(_val_docs(p.n_docs))), p.model["block_size"], p.val_windows, p.batch_size)
    return [(x[:, reserve:], y[:, reserve:]) for x, y in batches] if reserve else batches


def base_lm_loss(gpt, probe, device) -> float:
    """L_before for a PEFT run, on the model with the method switched off (exactly the base: the method was
    injected already, and switching off restores the base function; trained biases are not trained yet)."""
    gpt.to(device)
    with disabled(gpt):
        return lm_val_loss(gpt, probe)


def lm_val_loss(model, batches: list) -> float:
    """Mean next-token loss of a GPT (with or without a method applied) on pretraining windows."""
    device = next(model.parameters()).device
    return evaluate(model, lm_loss_fn, [(x.to(device), y.to(device)) for x, y in batches])


# -- costs ---------------------------------------------------------------------------------------------------------

def optimizer_state_bytes(n_trainable: int) -> int:
    """AdamW's state: two fp32 moments (m, v) per trainable number, 8 bytes (the per-tensor step counters aside)."""
    return 8 * n_trainable


def path_bytes(path) -> int:
    """Size of a file, or of every file under a directory."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def own_peak_rss_mb() -> float | None:
    """Linux: this process's peak resident set size, VmHWM in /proc/self/status, in MiB; None elsewhere.
    Why not ru_maxrss (only the fallback here): a process started by subprocess (vfork + exec) inherits its
    parent's ru_maxrss as a floor, so a small run started from a big process would report the parent's peak.
    VmHWM belongs to the process's own memory map."""
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def reset_peak_rss() -> bool:
    """Linux: writing 5 to /proc/self/clear_refs sets VmHWM back to the current RSS, so a run in a shared process
    measures its own peak on top of what was already resident. False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak memory of this run: CUDA → bytes allocated by tensors (since `reset_peak_memory`); else the process's
    peak resident set size: VmHWM on Linux (`own_peak_rss_mb`), ru_maxrss elsewhere (KiB on Linux, bytes on macOS;
    unavailable on Windows). RSS counts the whole process, so compare runs each in its own process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    own = own_peak_rss_mb()
    if own is not None:
        return own
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or the process's VmHWM where Linux allows it."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def fingerprint(model: torch.nn.Module) -> str:
    """A short hash of every weight: an adapter trained on one base must not be loaded into another base that
    merely has the same shapes (e.g. the preset pretrained again with another recipe)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


# -- tables --------------------------------------------------------------------------------------------------------

def fmt(value) -> str:
    """A table cell: fractions as percentages with one decimal, big integers with thousands separators."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows of dicts → a markdown table (columns: the given ones, or every key in first-seen order)."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def metrics_rows(metrics: dict) -> list[dict]:
    """{split: {metric: value}} → one row per (split, metric); a breakdown such as accuracy_by_construction
    becomes one row per group, named metric[group]."""
    rows = []
    for split, m in metrics.items():
        for k, v in m.items():
            items = [(f"{k}[{g}]", x) for g, x in v.items()] if isinstance(v, dict) else [(k, v)]
            rows += [{"split": split, "metric": name, "value": x} for name, x in items]
    return rows
