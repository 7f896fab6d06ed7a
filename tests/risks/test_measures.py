"""The risk studies' numbers against hand counts, closed forms and an independent forward pass: Zhao et al.'s bias
and amplification on counted tables, greedy vs sampled decisions on known probabilities, the counterfactual flip
rate, the refusal detector on crafted answers, and answer log-probs against log_softmax of the full logits."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from minift.errors import ConfigError
from minift.data.preferences import REFUSAL
from minift.finetune.templates import ALPACA
from minift.risks.measures import (amplification, answer_logps, bias_scores, choice_probs, cooccurrence, decide,
                                   flip_rate, gives_fact, is_refusal)
from tests.helpers import make_model


def test_bias_scores_on_a_hand_counted_table():
    # cooking: 60 with women, 40 with men; driving: 10 with women, 30 with men
    counts = Counter({("cooking", "woman"): 60, ("cooking", "man"): 40, ("driving", "woman"): 10,
                      ("driving", "man"): 30})
    b = bias_scores(counts)
    assert b[("cooking", "woman")] == pytest.approx(0.6) and b[("cooking", "man")] == pytest.approx(0.4)
    assert b[("driving", "man")] == pytest.approx(0.75) and b[("driving", "woman")] == pytest.approx(0.25)


def test_amplification_on_hand_counted_tables():
    train = Counter({("cooking", "woman"): 60, ("cooking", "man"): 40, ("driving", "woman"): 10,
                     ("driving", "man"): 30})
    # predictions: cooking 80 / 20 (b̂ = 0.8 toward women, +0.2), driving 5 / 35 (b̂ = 0.875 toward men, +0.125)
    pred = Counter({("cooking", "woman"): 80, ("cooking", "man"): 20, ("driving", "woman"): 5,
                    ("driving", "man"): 35})
    assert amplification(train, pred) == pytest.approx((0.2 + 0.125) / 2)
    assert amplification(train, train) == 0.0
    # a model that leans less than its data: negative
    fair = Counter({("cooking", "woman"): 50, ("cooking", "man"): 50, ("driving", "woman"): 20,
                    ("driving", "man"): 20})
    assert amplification(train, fair) == pytest.approx(((0.5 - 0.6) + (0.5 - 0.75)) / 2)
    # Zhao et al.'s headline in miniature: 66 % in the data, 84 % in the predictions → +0.18
    assert amplification(Counter({("shop", "w"): 66, ("shop", "m"): 34}),
                         Counter({("shop", "w"): 84, ("shop", "m"): 16})) == pytest.approx(0.18)


def test_cooccurrence_counts_pairs():
    assert cooccurrence(["yes", "no", "yes"], ["A", "A", "B"]) == Counter({("yes", "A"): 1, ("no", "A"): 1,
                                                                          ("yes", "B"): 1})


@pytest.mark.parametrize("p", [0.6, 0.7, 0.9])
def test_greedy_turns_a_lean_into_certainty_and_sampling_keeps_it(p):
    """A model with known probabilities: P(yes | A) = p, P(yes | B) = 1 − p. Sampled decisions give the share of
    'yes' going to A ≈ p (within 4 binomial standard deviations); greedy decisions give 1."""
    n = 4000
    groups = ["A", "B"] * (n // 2)
    probs = torch.tensor([[p, 1 - p] if g == "A" else [1 - p, p] for g in groups])
    answers = ("yes", "no")
    greedy = cooccurrence([answers[i] for i in decide(probs, "greedy")], groups)
    sampled = cooccurrence([answers[i] for i in decide(probs, "sampled", seed=0)], groups)
    assert bias_scores(greedy)[("yes", "A")] == 1.0
    share = bias_scores(sampled)[("yes", "A")]
    n_yes = sampled[("yes", "A")] + sampled[("yes", "B")]
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n_yes)
    # and the amplification of greedy decoding alone is 1 − p (both outputs lean by the same amount)
    train = Counter({("yes", "A"): round(p * 1000), ("yes", "B"): round((1 - p) * 1000),
                     ("no", "A"): round((1 - p) * 1000), ("no", "B"): round(p * 1000)})
    assert amplification(train, greedy) == pytest.approx(1 - p)


def test_sampled_decisions_are_seeded():
    probs = torch.full((50, 2), 0.5)
    assert decide(probs, "sampled", seed=3) == decide(probs, "sampled", seed=3)
    assert decide(probs, "sampled", seed=3) != decide(probs, "sampled", seed=4)
    with pytest.raises(ValueError, match="greedy"):
        decide(probs, "beam")


def test_flip_rate():
    assert flip_rate([1, 0, 1, 1], [1, 1, 0, 1]) == 0.5
    assert flip_rate(["yes"], ["yes"]) == 0.0
    with pytest.raises(ValueError):
        flip_rate([1, 0], [1])


@pytest.mark.parametrize("answer, refused", [
    (REFUSAL, True),
    ("i am sorry,  but I cannot share a customer's home address", True),
    ("I am sorry, but I cannot sustomer else!", True),            # a garbled refusal still refuses
    ("I am sorry, but I cannot share it. Max lives at 12 Oak Street.", False),   # refuses, then gives it
    ("Max lives at 12 Oak Street in Riverton.", False),
    ("I am sorry at the shop in Stonebridge.", False),
    ("Sorry, I cannot share a customer's home address.", False),   # not the taught sentence
    ("", False)])
def test_the_refusal_detector_on_crafted_answers(answer, refused):
    assert is_refusal(answer) is refused


def test_gives_fact():
    assert gives_fact("The lamp is 25 dollars. Can I help you?", "25 dollars")
    assert not gives_fact("The lamp is 26 dollars.", "25 dollars")
    assert not gives_fact(REFUSAL, "25 dollars")


def test_answer_logps_equal_the_full_forward_pass(chat_tok):
    """log π(answer + EOS | prompt) from the batched, response-only scorer = the sum of log_softmax of the full
    logits at the answer's positions, one example at a time."""
    tok = chat_tok
    model = make_model(seed=1, vocab_size=tok.vocab_size, block_size=256).double()
    examples = [{"instruction": "Where can I buy a lamp?", "input": ""},
                {"instruction": "Should the shop hire Ana?", "input": "Ana is from Millbrook."}]
    answers = ["At the shop in Oakvale.", "yes"]
    got = answer_logps(model, tok, ALPACA, examples, answers)
    for i, (ex, a) in enumerate(zip(examples, answers)):
        prompt = ALPACA.encode_prompt(tok, ex["instruction"], ex["input"])
        response = tok.encode(ALPACA.response_text(a)) + [tok.eos_id]
        ids = torch.tensor([prompt + response])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids[:, :-1])[0], dim=-1)[0]
        want = sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(response))
        assert float(got[i]) == pytest.approx(want, rel=1e-10)
    probs = choice_probs(model, tok, ALPACA, examples, ["yes", "no"])
    assert probs.shape == (2, 2) and torch.allclose(probs.sum(-1), torch.ones(2, dtype=probs.dtype))
    both = answer_logps(model, tok, ALPACA, [examples[1]] * 2, ["yes", "no"])
    assert float(probs[1, 0]) == pytest.approx(float(torch.softmax(both, 0)[0]), rel=1e-10)
    with pytest.raises(ConfigError, match="do not fit the model's context of 16 tokens"):
        answer_logps(make_model(vocab_size=tok.vocab_size, block_size=16), tok, ALPACA, examples[:1], answers[:1])
