"""Classifier: last-real-token pooling, invariance to padding, a head that is always trainable, baselines."""

import pytest
import torch
import torch.nn.functional as F

from minift.finetune.classify import (Classifier, bow_logreg_baseline, classify_loss_fn, collate_classify, encode_labelled,
                             majority_baseline, predict, words)
from minift.errors import ConfigError, InputError
from minift.model.gpt import GPT, GPTConfig

PAD = 0


def tiny_classifier(seed=0, labels=("negative", "positive")):
    torch.manual_seed(seed)
    body = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, d_model=32))
    return Classifier(body, list(labels)).eval()


def test_pools_the_last_real_token():
    clf = tiny_classifier()
    ids = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert Classifier.last_token_index(mask).tolist() == [2, 4]  # (Σ mask) − 1 for right padding
    assert Classifier.last_token_index(torch.tensor([[0, 0, 1, 1]])).tolist() == [3]  # left padding too
    h = clf.body.hidden(torch.tensor([[5, 6, 7]]))
    torch.testing.assert_close(clf(ids, mask)[0], clf.head(h[0, -1]))


def test_logits_independent_of_pad_count():
    clf = tiny_classifier()
    batch = [{"input_ids": [5, 6, 7], "label": 0}, {"input_ids": [8, 9, 10, 11, 12, 13], "label": 1}]
    ids, mask, _ = collate_classify(batch, PAD)
    ref = clf(ids, mask)
    for extra in (1, 7):
        more_ids = torch.cat([ids, torch.full((2, extra), PAD)], dim=1)
        more_mask = torch.cat([mask, torch.zeros(2, extra, dtype=mask.dtype)], dim=1)
        torch.testing.assert_close(clf(more_ids, more_mask), ref, atol=1e-5, rtol=0)
    alone = clf(torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long))
    torch.testing.assert_close(alone[0], ref[0], atol=1e-5, rtol=0)
    # and the failure this guards against: reading column −1 would read a pad of the short row
    h = clf.body.hidden(ids, attention_mask=mask)
    assert not torch.allclose(clf.head(h[:, -1])[0], ref[0], atol=1e-4)


def test_head_trainable_when_body_frozen():
    clf = tiny_classifier().train()
    clf.freeze_body()
    assert all(p.requires_grad for p in clf.head.parameters())
    assert not any(p.requires_grad for p in clf.body.parameters())
    ids, mask, y = collate_classify([{"input_ids": [5, 6], "label": 0}, {"input_ids": [7], "label": 1}], PAD)
    loss_sum, n = classify_loss_fn(clf, (ids, mask, y))
    assert n == 2
    torch.testing.assert_close(loss_sum, F.cross_entropy(clf(ids, mask), y, reduction="sum"))
    loss_sum.backward()
    assert clf.head.weight.grad is not None and clf.head.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in clf.body.parameters())
    # freezing everything, as a careless adapter wrapper would, is refused at training time
    clf.requires_grad_(False)
    with pytest.raises(ConfigError, match="head is frozen"):
        classify_loss_fn(clf, (ids, mask, y))


def test_predict_and_encode_labelled():
    clf = tiny_classifier()

    class Tok:
        def encode(self, text, add_eos=False):
            return [3 + (ord(c) % 40) for c in text]

    enc = encode_labelled(Tok(), [{"text": "abcdef", "label": "positive"}, {"text": "xy", "label": "negative"}],
                          clf.labels, max_len=4)
    assert enc[0] == {"input_ids": Tok().encode("cdef"), "label": 1}  # keeps the end
    with pytest.raises(InputError, match="not one of"):
        encode_labelled(Tok(), [{"text": "a", "label": "neutral"}], clf.labels, max_len=4)
    batches = [collate_classify(enc, PAD)]
    pred = predict(clf, batches)
    assert pred.tolist() == clf(*batches[0][:2]).argmax(-1).tolist() and not clf.training
    with pytest.raises(ConfigError):
        Classifier(clf.body, ["only"])


def test_majority_baseline():
    train = [{"text": "a", "label": "neg"}] * 3 + [{"text": "b", "label": "pos"}]
    test = [{"text": "c", "label": "neg"}, {"text": "d", "label": "pos"}]
    r = majority_baseline(train, test)
    assert r["label"] == "neg" and r["accuracy"] == 0.5
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)  # F1_neg = 2·1/(2·1 + 1 + 0), F1_pos = 0


def test_bow_logreg_learns_words_but_not_order():
    pos = ["the soup was great", "great food and lovely staff", "lovely day", "a great cake"]
    neg = ["the soup was awful", "awful food and rude staff", "rude people", "an awful cake"]
    train = [{"text": t, "label": "positive"} for t in pos] + [{"text": t, "label": "negative"} for t in neg]
    test = [{"text": "great pizza", "label": "positive"}, {"text": "awful pizza", "label": "negative"}]
    r = bow_logreg_baseline(train, test, steps=200)
    assert r["train_accuracy"] == 1.0 and r["accuracy"] == 1.0 and r["vocab_size"] == len(
        {w for ex in train for w in words(ex["text"])})
    assert bow_logreg_baseline(train, test, steps=200) == r  # deterministic
    # a bag of words cannot tell "not great" from "great not": same features, same prediction
    probe = [{"text": "not great", "label": "negative"}, {"text": "great not", "label": "positive"}]
    assert bow_logreg_baseline(train, probe)["accuracy"] == 0.5
    assert bow_logreg_baseline(train, test, ngram=2)["vocab_size"] > r["vocab_size"]


def test_bow_gradient_matches_autograd():
    # the closed-form gradient used by bow_logreg_baseline, against autograd on the same objective
    torch.manual_seed(0)
    x, y, lam = torch.rand(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2]), 1e-2
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(x @ w + b, y) + 0.5 * lam * (w * w).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    err = torch.softmax(x @ w + b, -1) - F.one_hot(y, 3).double()
    torch.testing.assert_close(x.T @ err / 6 + lam * w, gw)
    torch.testing.assert_close(err.mean(0), gb)
