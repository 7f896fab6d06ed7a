"""BM25 against a hand computation and against the `bm25s` package (test-only peers extra), same tokens, k₁, b."""

import math

import pytest

from minift.retrieval.bm25 import BM25Index, recall_at_k, tokenize

DOCS = ["The kite costs 10 dollars at the shop in Millbrook.", "A teapot costs 19 dollars.",
        "The shop in Riverton sells kites and kites and kites.", "Cats eat fish.",
        "The price of the kite changed: the kite now costs 12 dollars."]


def test_tokenisation_is_stated_and_the_same_for_queries():
    assert tokenize("The kite costs 10 dollars, at Anna's shop!") == ["the", "kite", "costs", "10", "dollars", "at",
                                                                     "anna", "s", "shop"]


def test_one_score_by_hand():
    idx = BM25Index()
    idx.add(["a b", "a c c"])
    # query "c": N = 2, n = 1 → IDF = ln(1 + 1.5/1.5) = ln 2; doc 1: f = 2, |D| = 3, avgdl = 2.5
    expected = math.log(2) * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / 2.5))
    assert idx.scores("c") == [0.0, pytest.approx(expected, abs=1e-12)]


def test_scores_equal_bm25s():
    """bm25s's "lucene" method (like Lucene ≥ 8) leaves out the constant factor (k₁ + 1) of the numerator, which
    changes no ranking: minift's scores are (k₁ + 1) times its scores."""
    bm25s = pytest.importorskip("bm25s")
    ours = BM25Index(k1=1.5, b=0.75)
    ours.add(DOCS)
    ref = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    ref.index([tokenize(d) for d in DOCS], show_progress=False)
    for query in ("kite price", "the kite costs dollars", "cats", "teapot shop riverton", "nothing here"):
        theirs = ref.get_scores(tokenize(query))
        assert ours.scores(query) == pytest.approx([2.5 * float(x) for x in theirs], abs=1e-6), query


def test_adding_documents_updates_the_statistics():
    a, b = BM25Index(), BM25Index()
    a.add(DOCS[:3])
    a.add(DOCS[3:])
    b.add(DOCS)
    assert a.scores("kite dollars") == b.scores("kite dollars")
    assert a.top_k("kite now 12", 2)[0][0] == 4
    assert recall_at_k(a, ["teapot price", "what do cats eat"], [{1}, {3}], k=1) == 1.0
    assert BM25Index().top_k("anything") == []
