"""Supervised (instruction) fine-tuning: prompt masking, padding, the loss, batched generation. The prompt layout
itself is `minift.finetune.templates`.

An instruction example {"instruction", "input", "output"} becomes one token sequence

    s = prompt_ids ‖ response_ids ‖ [EOS]          (prompt and response tokenised separately, then concatenated)

so that a BPE merge across the prompt/response boundary can never move the mask. Following minift's shift
convention (minift/model/gpt.py: targets[t] is the token that follows input t), the data code shifts once:

    input_ids = s[0 : n−1]        labels = s[1 : n]        labels[t] = −100 for t < P − 1   (P = len(prompt_ids))

so the loss is the mean over answer tokens only:  L = −(1/N) Σ_{t: labels[t] ≠ −100} log p(labels[t] | s_≤t).
Consequences worth knowing (and tested):
  * the number of −100 labels is P − 1, not P: the first prompt token is never a target at all (nothing precedes
    it), so after the shift it simply has no label slot. (Unshifted conventions such as TRL's mask P labels.)
  * the first supervised label sits at index P − 1 and is the first response token;
  * EOS is a target, so the model learns to stop; pad has its own id and pad positions get label −100.
`train_on_prompt=True` keeps the prompt labels (rasbt ch07's default); masking is minift's default
(Alpaca, QLoRA, TRL). Truncation, when prompt + response do not fit: trim the prompt from its start (keep its end,
and at least one prompt token), then trim the response from its end (DPO reference code's order).

Padding: right padding for training (`collate_right`; with causal attention real tokens never see the pads after
them); left padding for batched generation (`left_pad`), so every row's newest token sits in the last column; the
model derives positions from the mask (pos = cumsum(mask) − 1), so a padded row computes what it would alone.

A conversation {"messages": [...]} (a chat model's data) is encoded whole by `minift.finetune.chat.chat_example`:
every assistant turn supervised, everything else masked; a too-long one keeps its end.

Sources: tatsu-lab/stanford_alpaca train.py (layout, masking); rasbt/LLMs-from-scratch ch07 (collate, newline after
the response header); huggingface/trl (dropping examples with no supervised token).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from minift.data.loaders import normalise_record
from minift.finetune.chat import SMOLLM2_SYSTEM, chat_example, chat_ids
from minift.errors import ConfigError, InputError
from minift.finetune.templates import ALPACA, ChatTemplate, PromptTemplate
from minift.model.gpt import IGNORE_INDEX


# ----------------------------------------------------------------------------------------------------------------
# Encoding: ids → (input_ids, labels), the single place where the shift and the mask happen
# ----------------------------------------------------------------------------------------------------------------

def encode_ids(prompt_ids: Sequence[int], response_ids: Sequence[int], max_len: int | None = None,
               train_on_prompt: bool = False) -> dict | None:
    """Shift and mask one (prompt, response) pair. response_ids should already end with EOS.

    max_len is the number of input positions the model accepts (its block_size): the joined sequence may hold
    max_len + 1 tokens, because the last token is only ever a target. Returns {"input_ids", "labels",
    "truncated"} (lists of equal length), or None when no label is supervised (the caller counts those).
    """
    prompt, response = list(prompt_ids), list(response_ids)
    truncated = False
    if max_len is not None:
        if max_len < 1:
            raise ConfigError(f"max_len must be ≥ 1, got {max_len}")
        over = len(prompt) + len(response) - (max_len + 1)
        if over > 0:
            truncated = True
            cut = max(0, min(over, len(prompt) - 1))  # keep the prompt's end: its last token predicts the answer
            prompt, over = prompt[cut:], over - cut
            if over > 0:
                response = response[: len(response) - over]
    seq = prompt + response
    if len(seq) < 2:
        return None
    input_ids, labels = seq[:-1], seq[1:]
    if not train_on_prompt:
        n_masked = max(0, len(prompt) - 1)  # labels[0 .. P−2] are prompt tokens 1 .. P−1
        labels = [IGNORE_INDEX] * n_masked + labels[n_masked:]
    if all(t == IGNORE_INDEX for t in labels):
        return None
    return {"input_ids": input_ids, "labels": labels, "truncated": truncated}


def encode_example(tok, example: dict, template: PromptTemplate = ALPACA, max_len: int | None = None,
                   train_on_prompt: bool = False, add_eos: bool = True) -> dict | None:
    """Format, tokenise (prompt and response_prefix + output separately), append EOS to the response, shift, mask."""
    prompt_ids = template.encode_prompt(tok, example["instruction"], example.get("input", "") or "")
    response_ids = tok.encode(template.response_text(example["output"])) if example["output"] else []
    if add_eos:
        response_ids = response_ids + [tok.eos_id]
    return encode_ids(prompt_ids, response_ids, max_len, train_on_prompt)


def encode_conversation(tok, messages: list[dict], template, max_len: int | None = None) -> dict | None:
    """A whole conversation (every assistant turn trained: chat.chat_example), its end kept when it is longer than
    max_len input positions; None when no supervised token is left. Only a chat template can lay one out."""
    if not isinstance(template, ChatTemplate):
        raise ConfigError("conversations ({\"messages\": [...]}) need a chat model and the chatml template "
                          "(e.g. --base smollm2 --template auto); this run's template lays out instructions only")
    enc = chat_example(tok, messages, default_system=template.system or SMOLLM2_SYSTEM)
    ids, labels = enc["input_ids"], enc["labels"]
    truncated = max_len is not None and len(ids) > max_len
    if truncated:
        ids, labels = ids[-max_len:], labels[-max_len:]
    if all(t == IGNORE_INDEX for t in labels):
        return None
    return {"input_ids": ids, "labels": labels, "truncated": truncated}


def encode_dataset(tok, examples: Sequence[dict], template: PromptTemplate = ALPACA, max_len: int | None = None,
                   train_on_prompt: bool = False, add_eos: bool = True) -> tuple[list[dict], dict]:
    """Encode every example; drop (and count) those left with no supervised token.

    Returns (encoded, stats) with stats = {"n_in", "n_kept", "n_dropped_no_target", "n_truncated"}.
    Raises InputError if nothing is left, since training on it would only produce 0/0.
    """
    encoded, dropped, truncated = [], 0, 0
    for i, ex in enumerate(examples):
        kind = "chat" if isinstance(ex, dict) and "messages" in ex else "instruction"
        ex = normalise_record(ex, kind, f"examples[{i}]")  # a clear error for a malformed example
        if kind == "chat":
            enc = encode_conversation(tok, ex["messages"], template, max_len)
        else:
            enc = encode_example(tok, ex, template, max_len, train_on_prompt, add_eos)
        if enc is None:
            dropped += 1
            continue
        truncated += enc["truncated"]
        encoded.append(enc)
    stats = {"n_in": len(examples), "n_kept": len(encoded), "n_dropped_no_target": dropped,
             "n_truncated": truncated}
    if not encoded:
        raise InputError(f"none of the {len(examples)} examples has a supervised token left after encoding "
                         f"(max_len={max_len}); use a longer max_len or shorter prompts")
    return encoded, stats


# ----------------------------------------------------------------------------------------------------------------
# Padding
# ----------------------------------------------------------------------------------------------------------------

def collate_right(batch: Sequence[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad encoded examples to the longest row → (input_ids, targets, attention_mask), each (B, T).

    Pad inputs are `pad_id`, pad targets −100, mask 1 on real tokens. A row with no supervised target is refused
    here (it should have been dropped by `encode_dataset`), so an all-masked batch cannot reach the loss unnoticed.
    """
    if not batch:
        raise InputError("collate_right got an empty batch")
    t = max(len(ex["input_ids"]) for ex in batch)
    ids = torch.full((len(batch), t), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), t), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), t), dtype=torch.long)
    for i, ex in enumerate(batch):
        n = len(ex["input_ids"])
        if len(ex["labels"]) != n:
            raise InputError(f"row {i}: input_ids ({n}) and labels ({len(ex['labels'])}) differ in length")
        if all(y == IGNORE_INDEX for y in ex["labels"]):
            raise InputError(f"row {i} has no supervised target (all labels −100); drop it before batching "
                             "(encode_dataset does)")
        ids[i, :n] = torch.tensor(ex["input_ids"])
        targets[i, :n] = torch.tensor(ex["labels"])
        mask[i, :n] = 1
    return ids, targets, mask


def sft_collate(pad_id: int):
    """collate_right with the pad id bound: the one-argument `collate` that train.epoch_batches expects."""
    return lambda batch: collate_right(batch, pad_id)


def left_pad(prompts_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts for batched generation → (ids, attention_mask), each (B, T); the last column is real."""
    if not prompts_ids or any(len(p) == 0 for p in prompts_ids):
        raise InputError("left_pad needs at least one prompt and no empty prompt")
    t = max(len(p) for p in prompts_ids)
    ids = torch.full((len(prompts_ids), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts_ids), t), dtype=torch.long)
    for i, p in enumerate(prompts_ids):
        ids[i, t - len(p):] = torch.tensor(list(p))
        mask[i, t - len(p):] = 1
    return ids, mask


# ----------------------------------------------------------------------------------------------------------------
# Loss and generation
# ----------------------------------------------------------------------------------------------------------------

def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def sft_loss_fn(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ cross-entropy over supervised targets, N = their count) for one right-padded batch.

    The training loop divides by the N of the whole accumulated batch (docs/training.md, "Exact gradient
    accumulation"). N is a 0-d integer tensor (int(N) reads it), so that on a GPU the loop synchronises once per
    step, not once per micro-batch.
    The LM head and the cross-entropy run on the supervised positions only (`GPT.forward(positions=...)`): the
    loss and its gradients are those of the whole (B, T, V) logits with −100 ignored (a test checks it in
    float64), without computing the logits nobody reads.
    The attention mask is not passed: with right padding every pad lies after every real token, so causal
    attention already hides the pads and real positions are 0, 1, … either way (a test checks the loss is
    identical with the mask), and the model keeps its fastest causal kernel. The sum (not the mean) is what
    makes N = 0 harmless: an empty sum is a graph-connected 0 with zero gradient, never 0/0 = NaN.
    """
    ids, targets = batch[0], batch[1]
    device = _device_of(model)
    ids, targets = ids.to(device), targets.to(device)
    supervised = targets != IGNORE_INDEX  # (B, T): the only positions whose logits the loss reads
    logits, _ = model(ids, positions=supervised)  # (N, V): the LM head runs on those N positions only
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 up to float32; float64 stays
    loss_sum = F.cross_entropy(logits, targets[supervised], reduction="sum")
    return loss_sum, supervised.sum()


def _prompt_ids(tok, prompt, template: PromptTemplate | None) -> list[int]:
    if isinstance(prompt, dict) and "messages" in prompt:  # a conversation: everything before its last answer
        system = getattr(template, "system", None) or SMOLLM2_SYSTEM
        return chat_ids(tok, prompt["messages"][:-1], add_generation_prompt=True, default_system=system)
    if isinstance(prompt, dict):
        return (template or ALPACA).encode_prompt(tok, prompt["instruction"], prompt.get("input", "") or "")
    return template.encode_prompt(tok, prompt) if template is not None else tok.encode(prompt)


@torch.no_grad()
def generate_batch(model, tok, prompts: Sequence[str | dict], max_new_tokens: int = 64,
                   template: PromptTemplate | None = ALPACA, batch_size: int = 32, reserve: int = 0) -> list[str]:
    """Greedy answers for many prompts at once, in the input order, each cut at its first EOS and, with a template,
    without the template's response prefix.

    A prompt is an example dict (its instruction and input go through the template; a conversation's messages up to
    its last answer go through ChatML), or a string: the instruction
    when a template is given, the raw prompt text when template=None. Prompts are sorted by length before batching
    (less padding), left-padded, and truncated from the left to leave room for max_new_tokens in the context.
    reserve: context positions something else takes in front of the prompt (prompt tuning's P virtual tokens).
    """
    keep = model.config.block_size - reserve - max_new_tokens
    if keep < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the context of "
                          f"{model.config.block_size} tokens" + (f" ({reserve} reserved)" if reserve else ""))
    encoded = [_prompt_ids(tok, p, template)[-keep:] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(encoded)
    device = _device_of(model)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        ids, mask = left_pad([encoded[i] for i in rows], tok.pad_id)
        out = model.generate(ids.to(device), max_new_tokens, temperature=0.0, eos_id=tok.eos_id,
                             attention_mask=mask.to(device))
        for row, new in zip(rows, out[:, ids.size(1):].tolist()):
            if tok.eos_id in new:
                new = new[: new.index(tok.eos_id)]
            text = tok.decode(new)
            answers[row] = template.strip_response(text) if template is not None else text
    return answers
