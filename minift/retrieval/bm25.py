"""BM25, written out: the lexical retriever of retrieval-augmented generation (Robertson & Zaragoza, 2009).

For a query Q and a document D (both as token lists, `tokenize` below):

    score(D, Q) = Σ_{q ∈ Q} IDF(q) · f(q, D) · (k₁ + 1) / (f(q, D) + k₁ · (1 − b + b · |D| / avgdl))
    IDF(q)      = ln(1 + (N − n(q) + 0.5) / (n(q) + 0.5))        Lucene's form: always positive

    f(q, D): how often q occurs in D;  |D|: D's length in tokens;  avgdl: the mean length;  N: documents;
    n(q): documents containing q;  k₁ = 1.5 (how fast repeated terms saturate), b = 0.75 (how much long
    documents are discounted) — the defaults of the `rank_bm25` and `bm25s` packages. A query term that occurs twice
    counts twice (it is a sum over the query's tokens). Lucene (since version 8) and bm25s drop the constant factor
    (k₁ + 1), which changes no ranking; minift keeps Robertson's form.

Tokenisation changes every score, so it is stated and used the same for documents and queries: lower-case, split
on anything that is not a letter or a digit, keep every token (no stop words, no stemming). The index grows by
adding documents (`add`): N, n(q) and avgdl are recomputed from counts, so adding is cheap — the point of
retrieval when knowledge changes every day. tests/retrieval checks the scores against `bm25s` to 1e-6.
"""

from __future__ import annotations

import math
import re
from collections import Counter

TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case, then the runs of letters and digits: "The kite costs 10 dollars." → the kite costs 10 dollars."""
    return TOKEN.findall(text.lower())


class BM25Index:
    """An incremental BM25 index over documents (strings); `top_k(query, k)` → [(document index, score)]."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 ≥ 0 and 0 ≤ b ≤ 1, got k1={k1}, b={b}")
        self.k1, self.b = k1, b
        self.docs: list[str] = []
        self.tf: list[Counter] = []          # term frequencies per document
        self.lengths: list[int] = []
        self.df: Counter = Counter()         # n(q): documents containing each term
        self.postings: dict[str, list[int]] = {}

    def add(self, documents: list[str]) -> None:
        """Index more documents (their indices continue from the existing ones)."""
        for text in documents:
            tokens = tokenize(text)
            counts = Counter(tokens)
            i = len(self.docs)
            self.docs.append(text)
            self.tf.append(counts)
            self.lengths.append(len(tokens))
            for term in counts:
                self.df[term] += 1
                self.postings.setdefault(term, []).append(i)

    def __len__(self) -> int:
        return len(self.docs)

    def idf(self, term: str) -> float:
        n, big_n = self.df.get(term, 0), len(self.docs)
        return math.log(1 + (big_n - n + 0.5) / (n + 0.5))

    def scores(self, query: str) -> list[float]:
        """score(D, Q) for every document, in index order."""
        out = [0.0] * len(self.docs)
        if not self.docs:
            return out
        avgdl = sum(self.lengths) / len(self.lengths)
        for term in tokenize(query):
            if term not in self.postings:
                continue
            idf = self.idf(term)
            for i in self.postings[term]:
                f = self.tf[i][term]
                norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / avgdl) if avgdl else self.k1
                out[i] += idf * f * (self.k1 + 1) / (f + norm)
        return out

    def top_k(self, query: str, k: int = 3) -> list[tuple[int, float]]:
        """The k best documents with a positive score, best first (ties: the earlier document first)."""
        ranked = sorted(((s, -i) for i, s in enumerate(self.scores(query)) if s > 0), reverse=True)[:k]
        return [(-neg_i, s) for s, neg_i in ranked]


def recall_at_k(index: BM25Index, queries: list[str], relevant: list[set[int]], k: int) -> float:
    """Share of queries with at least one relevant document among the top k."""
    hits = sum(bool({i for i, _ in index.top_k(q, k)} & rel) for q, rel in zip(queries, relevant))
    return hits / len(queries)
