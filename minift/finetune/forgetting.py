"""Forgetting: how much general language modelling a fine-tuning run lost.

    L = mean next-token loss on the pretraining corpus's validation windows (the same fixed windows every time)
    forgetting = {L_before, L_after, Δ = L_after − L_before, PPL = exp(L) before and after, PPL ratio = exp(Δ)}

Δ > 0 means the model got worse at the text it was pretrained on (catastrophic forgetting: McCloskey & Cohen,
1989; Kirkpatrick et al., 2017). For a PEFT run, L_before is measured with the method switched off, which is
exactly the base. For a real model (SmolLM2, GPT-2), whose pretraining text minift does not have, L is measured on a
fixed sample of general English (minift/data/english.py) instead.
"""

from __future__ import annotations

import functools
import math

from minift.base.presets import get_preset
from minift.base.pretrain import encode_documents, fixed_windows
from minift.data import english
from minift.data.corpus import corpus_splits
from minift.peft import disabled
from minift.training.batches import lm_loss_fn
from minift.training.loop import evaluate


ENGLISH_WINDOW, ENGLISH_WINDOWS = 128, 16  # a real model's probe: up to 16 windows of 128 tokens


def forgetting(before_loss: float, after_loss: float) -> dict:
    """Before/after validation loss on the pretraining corpus, as a record."""
    return {"before_loss": before_loss, "after_loss": after_loss, "delta_loss": after_loss - before_loss,
            "before_ppl": math.exp(before_loss), "after_ppl": math.exp(after_loss),
            "ppl_ratio": math.exp(after_loss - before_loss)}


@functools.lru_cache(maxsize=4)
def _val_docs(n_docs: int) -> tuple[str, ...]:
    """The built-in corpus's validation documents, cached: regenerating 20,000 documents costs seconds per run."""
    return tuple(corpus_splits(seed=0, n_docs=n_docs)[1])


def pretraining_batches(tok, preset: str | None, reserve: int = 0) -> list:
    """The preset's fixed pretraining validation windows (base.pretraining_data's val part, without encoding the
    training stream), each cut to its last block_size − reserve tokens when a method takes context positions.
    preset None (a real model, whose pretraining text minift does not have): windows of ENGLISH_WINDOW tokens over
    the fixed general-English sample in minift/data/english.py."""
    if preset is None:
        tokens = encode_documents(tok, list(english.PARAGRAPHS))
        batches = fixed_windows(tokens, ENGLISH_WINDOW, ENGLISH_WINDOWS, 8)
    else:
        p = get_preset(preset)
        tokens = encode_documents(tok, list(_val_docs(p.n_docs)))
        batches = fixed_windows(tokens, p.model["block_size"], p.val_windows, p.batch_size)
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
