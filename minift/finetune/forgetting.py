"""Forgetting: how much general language modelling a fine-tuning run lost.

    L = mean next-token loss on the pretraining corpus's validation windows (the same fixed windows every time)
    forgetting = {L_before, L_after, Δ = L_after − L_before, PPL = exp(L) before and after, PPL ratio = exp(Δ)}

Δ > 0 means the model got worse at the text it was pretrained on (catastrophic forgetting: McCloskey & Cohen,
1989; Kirkpatrick et al., 2017). For a PEFT run, L_before is measured with the method switched off, which is
exactly the base. For a real model (SmolLM2, GPT-2), whose pretraining text minift does not have, L is measured on a
fixed sample of general English (minift/data/english.py) instead, and a second measure is added: the greedy
answers of the base and of the fine-tuned model to a fixed set of general questions (english.PROMPTS),

    greedy_same = (questions answered word for word as the base answered them) / (questions)

1.0: the model still says exactly what it said before on everything but its task; a loss change can hide where a
behaviour changed, and this number shows it (the answers themselves are kept in results.json to read).

What the probe needs from the base (the windows, L_before, the base's answers) is the same for every run on that
base, so `base_measures` computes it once and caches it under $MINIFT_HOME/probes/, keyed by the base's weight
fingerprint: the ten runs of a comparison pay for it once, not ten times.
"""

from __future__ import annotations

import functools
import math

from minift.base.presets import get_preset
from minift.base.pretrain import encode_documents, fixed_windows
from minift.data import english
from minift.data.corpus import corpus_splits
from minift.errors import MiniftError
from minift.files import load_json, make_dir, minift_home, save_json, torch_load, torch_save_atomic
from minift.finetune.sft import generate_batch
from minift.peft import disabled
from minift.training.batches import lm_loss_fn
from minift.training.loop import evaluate


ENGLISH_WINDOW, ENGLISH_WINDOWS = 128, 16  # a real model's probe: up to 16 windows of 128 tokens
GREEDY_TOKENS = 24  # new tokens per general question: enough for a one-sentence answer to differ
PROBE_VERSION = 1   # part of the cache key: change it when the probe's text, windows or questions change


def forgetting(before_loss: float, after_loss: float, greedy: tuple[list[str], list[str]] | None = None) -> dict:
    """Before/after validation loss on the pretraining corpus, as a record; with greedy = (answers before, answers
    after) to english.PROMPTS, also greedy_same (the share of identical answers) and the answers themselves."""
    record = {"before_loss": before_loss, "after_loss": after_loss, "delta_loss": after_loss - before_loss,
              "before_ppl": math.exp(before_loss), "after_ppl": math.exp(after_loss),
              "ppl_ratio": math.exp(after_loss - before_loss)}
    if greedy is not None:
        before, after = greedy
        record["greedy_same"] = greedy_same(before, after)
        record["greedy"] = [{"prompt": p, "before": b, "after": a}
                            for p, b, a in zip(english.PROMPTS, before, after)]
    return record


def greedy_same(before: list[str], after: list[str]) -> float:
    """The share of answers that are identical (surrounding spaces aside)."""
    if len(before) != len(after) or not before:
        raise ValueError(f"need two equally long, non-empty lists of answers, got {len(before)} and {len(after)}")
    return sum(b.strip() == a.strip() for b, a in zip(before, after)) / len(before)


def general_answers(gpt, tok, template, reserve: int = 0) -> list[str]:
    """Greedy answers (GREEDY_TOKENS new tokens at most) to english.PROMPTS through the run's template (ChatML for
    a chat model), in one batch, with whatever method the model carries (generation runs in eval mode, without
    gradients, and restores the model's mode)."""
    return generate_batch(gpt, tok, list(english.PROMPTS), GREEDY_TOKENS, template, reserve=reserve)


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


def base_measures(gpt, tok, preset: str | None, reserve: int, template, template_name: str, base_print: str,
                  device) -> tuple[list, float, list[str] | None]:
    """(probe windows, L_before, the base's general answers — None for a preset), each computed once per base and
    cached (module docstring). A PEFT method already in `gpt` is switched off while the base is measured. The
    cache is only a cache: a damaged or unwritable one means measuring again."""
    key = f"{base_print}-{preset or 'english'}-r{reserve}-v{PROBE_VERSION}"
    windows_file = minift_home() / "probes" / f"{key}.pt"
    facts_file = windows_file.with_name(f"{key}-{template_name}.json")
    if windows_file.is_file() and facts_file.is_file():
        try:
            facts = load_json(facts_file)
            return torch_load(windows_file), facts["before_loss"], facts["answers"]
        except (MiniftError, KeyError):
            pass
    probe = pretraining_batches(tok, preset, reserve)
    with disabled(gpt.to(device)):
        before = lm_val_loss(gpt, probe)
        answers = None if preset is not None else general_answers(gpt, tok, template, reserve)
    try:
        make_dir(windows_file.parent)
        torch_save_atomic(probe, windows_file)
        save_json(facts_file, {"before_loss": before, "answers": answers})
    except (OSError, MiniftError):
        pass
    return probe, before, answers


def lm_val_loss(model, batches: list) -> float:
    """Mean next-token loss of a GPT (with or without a method applied) on pretraining windows."""
    device = next(model.parameters()).device
    return evaluate(model, lm_loss_fn, [(x.to(device), y.to(device)) for x, y in batches])
