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


def test_rag_prompts_fit_the_budget_and_the_index_round_trips(tmp_path):
    from minift.errors import InputError, MissingFileError
    from minift.retrieval.rag import load_index, rag_prompt, save_index

    idx = BM25Index()
    idx.add(DOCS)
    words = lambda text: len(text.split())  # a stand-in tokenizer: one token per word  # noqa: E731
    prompt, used = rag_prompt("How much does the kite cost now?", idx, words, budget=200, k=2)
    assert used == [i for i, _ in idx.top_k("How much does the kite cost now?", 2)]
    assert prompt.startswith("Context:\n") and prompt.endswith("Question: How much does the kite cost now?")
    small, used_small = rag_prompt("How much does the kite cost now?", idx, words, budget=24, k=2)
    assert len(used_small) == 1 and words(small) <= 24
    assert rag_prompt("kite", idx, words, budget=3) == ("kite", [])  # nothing fits: the question alone
    save_index(idx, tmp_path / "ix")
    again = load_index(tmp_path / "ix")
    assert again.docs == idx.docs and again.scores("kite") == idx.scores("kite")
    with pytest.raises(MissingFileError):
        load_index(tmp_path)
    (tmp_path / "ix" / "documents.jsonl").write_text('{"text": "a"}\n{"txt": 1}\n')
    with pytest.raises(InputError, match="documents.jsonl:2"):
        load_index(tmp_path / "ix")


def test_the_rag_command_line(tmp_path, capsys, quick_base):
    from minift.cli import main

    assert main(["rag", "index", "--updates", "2", "--out", str(tmp_path / "ix")]) == 0
    assert "indexed 36 documents" in capsys.readouterr().out
    (tmp_path / "more.txt").write_text("The lighthouse opens at noon.\n\nIt has 90 steps.\n")
    assert main(["rag", "index", "--docs", str(tmp_path / "more.txt"), "--out", str(tmp_path / "ix"), "--add"]) == 0
    assert "(38 in" in capsys.readouterr().out
    assert main(["rag", "ask", str(tmp_path / "ix"), "--question", "When does the lighthouse open?", "--k", "1",
                 "--model", "quick", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("The lighthouse opens at noon.") and "of the documents in a" in out
    assert main(["rag", "ask", str(tmp_path), "--question", "x"]) != 0
    assert "no retrieval index" in capsys.readouterr().err


def test_the_context_budget_leaves_room_for_the_template_and_the_answer(quick_base):
    """A retrieval prompt filled up to the budget, laid out by the template, plus the answer's tokens, fits the
    context exactly: nothing is cut from its front when the model generates."""
    from minift.data.updates import update_stream
    from minift.finetune.templates import ALPACA
    from minift.retrieval.bm25 import BM25Index
    from minift.retrieval.rag import context_budget, rag_prompt

    _, tok = quick_base
    idx = BM25Index()
    for up in update_stream(4, 6, 4):
        idx.add(up.documents)
    for block, new in ((256, 8), (160, 16)):  # ALPACA wraps a prompt in about 70 of the quick base's tokens
        budget = context_budget(block, tok, ALPACA, new)
        prompt, used = rag_prompt("How much is the lamp now?", idx, lambda t: len(tok.encode(t)), budget, k=5)
        assert used and len(ALPACA.encode_prompt(tok, prompt)) + new <= block
