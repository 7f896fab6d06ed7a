"""Metrics against hand computations, and the result record."""

import json
import math

import pytest
import torch

from minift.errors import InputError
from minift.eval import (ResultRecord, accuracy, check_json, corpus_loss, evaluate_generation, exact_match,
                         forgetting, grouped_accuracy, json_validity, load_results, macro_f1, mean_token_loss,
                         normalize_answer, per_class_f1, perplexity, save_results, stream_batches)
from minift.model import GPT, GPTConfig
from minift.sft import generate_batch


class UniformLM(torch.nn.Module):
    """Zero logits over V tokens: every next token has probability 1/V, so PPL = V exactly."""

    def __init__(self, v):
        super().__init__()
        self.v = v
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids, attention_mask=None):
        return torch.zeros(*ids.shape, self.v) + 0 * self.dummy, None


def test_perplexity_closed_form_and_token_weighting():
    ids = torch.zeros(2, 5, dtype=torch.long)
    targets = torch.tensor([[1, 2, -100, -100, -100], [3, 4, 5, 6, 7]])
    assert perplexity(UniformLM(17), [(ids, targets)]) == pytest.approx(17.0)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=1, d_model=8))
    x = torch.randint(0, 11, (3, 6))
    y = torch.randint(0, 11, (3, 6))
    y[0, :4] = -100
    whole, n = mean_token_loss(model, [(x, y)])
    split, n2 = mean_token_loss(model, [(x[:1], y[:1]), (x[1:], y[1:])])  # 2 targets vs 12: token-weighted
    assert n == n2 == 14 and split == pytest.approx(whole, rel=1e-6)
    assert whole == pytest.approx(model(x, y)[1].item(), rel=1e-6)
    with pytest.raises(InputError):
        mean_token_loss(model, [(x, torch.full_like(y, -100))])


def test_accuracy_and_macro_f1_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2, FP 0, FN 1 → 4/5; b: TP 1, FP 1, FN 1 → 2/4; c: TP 1, FP 1, FN 0 → 2/3
    assert per_class_f1(pred, gold) == pytest.approx({"a": 0.8, "b": 0.5, "c": 2 / 3})
    assert macro_f1(pred, gold) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert accuracy(pred, gold) == pytest.approx(4 / 6)
    # a class in `labels` that never occurs scores 0 (scikit-learn's zero_division=0)
    assert macro_f1(pred, gold, labels=["a", "b", "c", "d"]) == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)
    assert macro_f1(["x", "x"], ["x", "y"]) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(InputError):
        accuracy(["a"], ["a", "b"])


def test_exact_match_normalisation():
    assert normalize_answer("  Paris.  ") == "paris" == normalize_answer("PARIS")
    assert normalize_answer("New   Delhi.") == "new delhi"
    assert exact_match(["Paris.", "paris", "Paris!", "Lyon"], ["Paris", "Paris.", "Paris", "Paris"]) == 0.5
    assert normalize_answer("e.g..") == "e.g."  # only one trailing period is dropped


def test_json_validity_on_crafted_strings():
    schema = {"sentiment": ["positive", "negative"], "topic": ["food", "travel"]}
    cases = {
        '{"sentiment": "positive", "topic": "food"}': (True, True),
        ' {"topic":"travel","sentiment":"negative"}\n': (True, True),  # key order and whitespace are free
        '{"sentiment": "happy", "topic": "food"}': (True, False),  # value not allowed
        '{"sentiment": "positive"}': (True, False),  # key missing
        '{"sentiment": "positive", "topic": "food", "x": 1}': (True, False),  # extra key
        '["positive", "food"]': (False, False),  # JSON, but not an object
        '{"sentiment": "positive", "topic": "food"} Thanks!': (False, False),  # prose after the object
        "{'sentiment': 'positive', 'topic': 'food'}": (False, False),  # single quotes are not JSON
        '{"sentiment": "positive", "topic": ': (False, False),  # cut off
    }
    for text, expected in cases.items():
        assert check_json(text, schema)[:2] == expected, text
    r = json_validity(list(cases), schema)
    assert r["n"] == 9 and r["validity_rate"] == pytest.approx(5 / 9) and r["compliance_rate"] == pytest.approx(2 / 9)
    assert r["reasons"] == {"ok": 2, "bad_value": 1, "wrong_keys": 2, "not_object": 1, "not_json": 3}
    assert check_json('{"name": "Anna"}', {"name": None})[1] and not check_json('{"name": 3}', {"name": None})[1]


def test_forgetting_record():
    r = forgetting(2.0, 2.5)
    assert r["delta_loss"] == 0.5 and r["ppl_ratio"] == pytest.approx(math.exp(0.5))
    assert r["before_ppl"] == pytest.approx(math.exp(2.0)) and r["after_ppl"] == pytest.approx(math.exp(2.5))


def test_result_record_roundtrip(tmp_path):
    rec = ResultRecord(run="r1", task="sentiment", method="lora", metrics={"test": {"accuracy": 0.9}},
                       forgetting=forgetting(2.0, 2.1), trainable_params=1234)
    path = tmp_path / "results.json"
    save_results(path, rec)
    assert load_results(path) == rec
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["metrics"]["test"]["accuracy"] == 0.9
    data["memory_mb"] = 12.5  # a field a later version adds is kept, in extra
    path.write_text(json.dumps(data))
    assert load_results(path).extra == {"memory_mb": 12.5}


class ByteTok:
    """Bytes as tokens, plus EOS 256 and pad 257: the Tokenizer interface without training anything."""

    eos_id, pad_id, vocab_size = 256, 257, 258

    def encode(self, text, add_eos=False):
        return list(text.encode()) + ([self.eos_id] if add_eos else [])

    def decode(self, ids, skip_special=True):
        return bytes(i for i in ids if i < 256).decode(errors="replace")


def test_stream_batches_and_corpus_loss():
    batches = stream_batches(list(range(12)), block_size=3, batch_size=2)
    assert [x.tolist() for x, _ in batches] == [[[0, 1, 2], [3, 4, 5]], [[6, 7, 8]]]
    assert [y.tolist() for _, y in batches] == [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9]]]
    assert len(stream_batches(list(range(12)), 3, 2, max_windows=2)) == 1
    with pytest.raises(InputError):
        stream_batches([1, 2, 3], block_size=3)
    torch.manual_seed(0)
    tok = ByteTok()
    model = GPT(GPTConfig(vocab_size=258, block_size=16, n_layer=1, n_head=1, d_model=16))
    docs = ["a cat sat on the mat.", "dogs eat meat."]
    ids = [i for d in docs for i in tok.encode(d, add_eos=True)]
    expected = mean_token_loss(model, stream_batches(ids, 16))[0]
    assert corpus_loss(model, tok, docs) == pytest.approx(expected)
    assert expected == pytest.approx(math.log(258), rel=0.05)  # an untrained model is near uniform


def test_grouped_accuracy():
    r = grouped_accuracy(["p", "n", "p", "p"], ["p", "p", "p", "n"], ["plain", "negated", "plain", "negated"])
    assert r == {"negated": 0.0, "plain": 1.0}


def test_evaluate_generation_scores_greedy_answers():
    torch.manual_seed(0)
    tok = ByteTok()
    model = GPT(GPTConfig(vocab_size=258, block_size=256, n_layer=1, n_head=2, d_model=16))
    examples = [{"instruction": "Say hi.", "input": "", "output": "hi"},
                {"instruction": "JSON?", "input": "x", "output": '{"a": "b"}'}]
    preds = generate_batch(model, tok, examples, max_new_tokens=4)
    metrics, samples = evaluate_generation(model, tok, examples, max_new_tokens=4, schema={"a": ["b"]})
    assert metrics["exact_match"] == exact_match(preds, ["hi", '{"a": "b"}'])
    assert metrics["validity_rate"] == json_validity(preds, {"a": ["b"]})["validity_rate"]
    assert [s["prediction"] for s in samples] == preds and samples[1]["prompt"] == "JSON? | x"
