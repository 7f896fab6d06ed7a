"""A real model's second forgetting measure: its greedy answers to fixed general questions before and after."""

from __future__ import annotations

import pytest

from minift.data import english
from minift.finetune.forgetting import forgetting, general_answers, greedy_same
from minift.finetune.templates import CHATML
from minift.peft import LoRAConfig, apply_method, disabled
from helpers import make_model, randomise_B


def test_greedy_same_counts_identical_answers():
    assert greedy_same(["a", "b ", "c"], ["a", "b", "d"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        greedy_same(["a"], [])
    record = forgetting(1.0, 1.5, (["x"] * len(english.PROMPTS), ["x"] * len(english.PROMPTS)))
    assert record["greedy_same"] == 1.0 and len(record["greedy"]) == len(english.PROMPTS)
    assert record["greedy"][0] == {"prompt": english.PROMPTS[0], "before": "x", "after": "x"}
    assert "greedy_same" not in forgetting(1.0, 1.5)


def test_an_untouched_adapter_keeps_every_answer_and_a_changed_one_does_not(chat_tok):
    """Invariant: LoRA with B = 0 is the base function, so every general answer is the base's; an adapter with large
    random B changes what the model says, and the measure sees it."""
    tok = chat_tok
    gpt = make_model(vocab_size=tok.vocab_size, block_size=128, sharpen=True)
    plain = general_answers(gpt, tok, CHATML)
    apply_method(gpt, LoRAConfig(r=4, targets="all-linear"))
    with disabled(gpt):
        assert general_answers(gpt, tok, CHATML) == plain  # switched off: the base
    assert greedy_same(plain, general_answers(gpt, tok, CHATML)) == 1.0  # B = 0: the same function
    randomise_B(gpt, std=2.0)
    assert greedy_same(plain, general_answers(gpt, tok, CHATML)) < 0.5
