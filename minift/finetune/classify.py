"""Classification fine-tuning: a GPT body plus a new linear head on the last real token, and two baselines.

    h = body.hidden(ids, mask)                       (B, T, d)   final hidden states after LN_f
    ℓ_b = index of the last real token of row b      (= Σ_t mask[b, t] − 1 for right padding)
    logits_b = W h[b, ℓ_b] + c                       (B, C)      W: (C, d), c: (C,)
    loss = −(1/B) Σ_b log softmax(logits_b)[y_b]

Why the last real token: in a causal model it is the only position that has seen the whole text. Reading column
−1 instead reads a pad whenever a row is shorter than the batch, so the prediction changes with the batch's padding
(rasbt/LLMs-from-scratch#566, #990); a test adds extra right padding and checks the logits do not move.

The head is a new module outside the body: freeze the body (`freeze_body`) or put adapters into `clf.body`, the head
stays a plain, fully trainable `nn.Linear` (pain point: a new head frozen or LoRA-wrapped by accident;
4AI/LS-LLaMA#3). `classify_loss_fn` refuses to train a frozen head.

Baselines, so a fine-tuned accuracy means something: the majority class, and bag-of-words logistic regression
(word counts → softmax regression, full-batch gradient descent in torch, deterministic).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from minift.data.metrics import accuracy, macro_f1
from minift.errors import CheckpointError, ConfigError, InputError
from minift.files import torch_load, torch_save_atomic


class Classifier(nn.Module):
    """body: a GPT (anything with `.hidden(ids, attention_mask)` and `.config.d_model`); labels: class names."""

    def __init__(self, body: nn.Module, labels: Sequence[str]):
        super().__init__()
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ConfigError(f"a classifier needs at least two distinct labels, got {list(labels)}")
        self.body = body
        self.labels = list(labels)
        self.head = nn.Linear(body.config.d_model, len(labels))
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.head.is_task_head = True  # marker: adapter code must leave this module alone

    @property
    def config(self):
        return self.body.config

    def freeze_body(self) -> None:
        """Freeze every body parameter; the head stays trainable."""
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.head.requires_grad_(True)

    @staticmethod
    def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
        """(B,) index of each row's last real token: the largest t with mask[b, t] = 1 (right or left padding)."""
        t = torch.arange(attention_mask.size(1), device=attention_mask.device)
        return (attention_mask.long() * (t + 1)).argmax(dim=1)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids, attention_mask: (B, T) → logits (B, C)."""
        h = self.body.hidden(ids, attention_mask=attention_mask)  # (B, T, d)
        if attention_mask is None:
            last = torch.full((ids.size(0),), ids.size(1) - 1, device=ids.device)
        else:
            last = self.last_token_index(attention_mask.to(ids.device))
        pooled = h[torch.arange(ids.size(0), device=ids.device), last]  # (B, d)
        return self.head(pooled)


def encode_labelled(tok, examples: Sequence[dict], labels: Sequence[str], max_len: int,
                    add_eos: bool = False) -> list[dict]:
    """{"text", "label"} → {"input_ids", "label": class index}. Texts longer than max_len keep their last max_len
    tokens (the read-out token is the last one, so the end of the text is what it must see)."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for i, ex in enumerate(examples):
        if ex["label"] not in index:
            raise InputError(f"examples[{i}]: label {ex['label']!r} is not one of {list(labels)}")
        ids = tok.encode(ex["text"], add_eos=add_eos)[-max_len:]
        if not ids:
            raise InputError(f"examples[{i}]: text {ex['text']!r} encodes to no tokens")
        out.append({"input_ids": ids, "label": index[ex["label"]]})
    return out


def collate_classify(batch: Sequence[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad → (ids (B, T), attention_mask (B, T), labels (B,))."""
    t = max(len(ex["input_ids"]) for ex in batch)
    ids = torch.full((len(batch), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), t), dtype=torch.long)
    for i, ex in enumerate(batch):
        ids[i, : len(ex["input_ids"])] = torch.tensor(ex["input_ids"])
        mask[i, : len(ex["input_ids"])] = 1
    return ids, mask, torch.tensor([ex["label"] for ex in batch], dtype=torch.long)


def classify_collate(pad_id: int):
    """collate_classify with the pad id bound (the one-argument collate train.epoch_batches expects)."""
    return lambda batch: collate_classify(batch, pad_id)


def classify_loss_fn(model: Classifier, batch) -> tuple[torch.Tensor, int]:
    """(Σ_b cross-entropy of row b, B): the loss_fn contract of minift.training.train (sum and count)."""
    if model.training and not all(p.requires_grad for p in model.head.parameters()):
        raise ConfigError("the classification head is frozen, so training cannot learn the new task; "
                          "call clf.head.requires_grad_(True) after freezing or wrapping the body")
    device = next(model.parameters()).device
    ids, mask, y = (x.to(device) for x in batch)
    logits = model(ids, mask)
    return F.cross_entropy(logits.float(), y, reduction="sum"), int(y.numel())


@torch.no_grad()
def predict(model: Classifier, batches) -> torch.Tensor:
    """Class indices (N,) for an iterable of (ids, mask[, labels]) batches; eval mode, restored afterwards."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds = [model(b[0].to(device), b[1].to(device)).argmax(-1).cpu() for b in batches]
    model.train(was_training)
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


# ----------------------------------------------------------------------------------------------------------------
# Baselines
# ----------------------------------------------------------------------------------------------------------------

def _metrics(pred: list[str], gold: list[str]) -> dict:
    return {"accuracy": accuracy(pred, gold), "macro_f1": macro_f1(pred, gold), "n": len(gold)}


def majority_baseline(train: Sequence[dict], test: Sequence[dict]) -> dict:
    """Predict the most frequent training label for every test example (ties → alphabetically first)."""
    counts = Counter(ex["label"] for ex in train)
    if not counts:
        raise InputError("majority_baseline needs a non-empty training set")
    top = max(sorted(counts), key=lambda c: counts[c])
    pred = [top] * len(test)
    return {"name": "majority", "label": top, **_metrics(pred, [ex["label"] for ex in test])}


_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens: the bag-of-words view of a text (order is thrown away)."""
    return _WORD.findall(text.lower())


def bow_logreg_baseline(train: Sequence[dict], test: Sequence[dict], steps: int = 300, lr: float = 2.0,
                        weight_decay: float = 1e-3, ngram: int = 1) -> dict:
    """Bag-of-words softmax regression.

    Features x ∈ ℝ^F: log(1 + count) of each vocabulary n-gram (vocabulary = the n-grams of the training texts,
    n ≤ ngram; unseen test words are ignored). Model p(y | x) = softmax(W x + b). Objective, full batch:
    J = −(1/N) Σ log p(y_i | x_i) + (λ/2)‖W‖², minimised by `steps` of plain gradient descent from W = 0, b = 0
    with the closed-form gradient ∂J/∂W = Xᵀ(P − Y)/N + λW, ∂J/∂b = mean over rows of (P − Y) (P the softmax
    probabilities, Y the one-hot labels) — no randomness, so the result is deterministic. With ngram=1 word order is invisible, so "not good" and
    "good" differ only by the word "not": the gap to a fine-tuned model on negated posts is the point.
    """
    labels = sorted({ex["label"] for ex in train})
    if len(labels) < 2:
        raise InputError("bow_logreg_baseline needs at least two classes in the training set")

    def grams(text: str) -> list[str]:
        w = words(text)
        return [" ".join(w[i:i + n]) for n in range(1, ngram + 1) for i in range(len(w) - n + 1)]

    vocab = {g: i for i, g in enumerate(sorted({g for ex in train for g in grams(ex["text"])}))}

    def featurise(examples):
        x = torch.zeros(len(examples), len(vocab))
        for r, ex in enumerate(examples):
            for g, c in Counter(grams(ex["text"])).items():
                if g in vocab:
                    x[r, vocab[g]] = c
        return torch.log1p(x)

    index = {c: i for i, c in enumerate(labels)}
    x_train, y_train = featurise(train), torch.tensor([index[ex["label"]] for ex in train])
    y_onehot = F.one_hot(y_train, len(labels)).float()
    w, b = torch.zeros(len(vocab), len(labels)), torch.zeros(len(labels))
    for _ in range(steps):
        err = torch.softmax(x_train @ w + b, dim=-1) - y_onehot  # (N, C): P − Y
        w -= lr * (x_train.T @ err / len(train) + weight_decay * w)
        b -= lr * err.mean(0)
    train_acc = ((x_train @ w + b).argmax(-1) == y_train).float().mean().item()
    pred = [labels[i] for i in (featurise(test) @ w + b).argmax(-1).tolist()] if test else []
    return {"name": f"bow_logreg_{ngram}gram", "train_accuracy": train_acc, "vocab_size": len(vocab),
            **_metrics(pred, [ex["label"] for ex in test])}


# -- the head on disk ------------------------------------------------------------------------------------------

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
