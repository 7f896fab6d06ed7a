"""BM25 on the changing world: does retrieval find the CURRENT statement of a fact after several updates?

    python scripts/bench_retrieval.py --updates 5 --paraphrases 3

Indexes the documents of the first N updates of the update stream (minift/data/updates.py) and asks every
training-phrased and held-out question of those updates. A document is relevant when it states the fact's current
value (the latest update that set it); recall@k is the share of questions with a relevant document in the top k;
stale@1 the share whose top document states an outdated value of the same fact (a price that has changed since).
Also times indexing (the cost of absorbing an update by retrieval). Deterministic: the same numbers on any machine,
the times aside.
"""

from __future__ import annotations

import argparse
import time

from minift.data.updates import update_stream
from minift.retrieval.bm25 import BM25Index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--paraphrases", type=int, default=3)
    args = p.parse_args()
    stream = update_stream(args.updates, paraphrases=args.paraphrases)
    docs, keys, version = [], [], []          # version: the update a document came from
    latest: dict[str, int] = {}
    for u in stream:
        docs += u.documents
        keys += u.doc_keys
        version += [u.index] * len(u.documents)
        for f in u.facts:
            latest[f["key"]] = u.index
    index = BM25Index()
    t0 = time.perf_counter()
    for u in stream:  # one update at a time, as it would arrive
        index.add(u.documents)
    seconds = time.perf_counter() - t0
    print(f"# BM25 on {args.updates} updates ({len(docs)} documents, {args.paraphrases} per fact); indexing took "
          f"{1000 * seconds:.1f} ms in all\n")
    print("| questions | n | recall@1 | recall@3 | stale@1 |\n|---|---|---|---|---|")
    for name in ("train", "heldout"):
        questions = [q for u in stream for q in getattr(u, name)]
        hit1 = hit3 = stale = 0
        for q in questions:
            relevant = {i for i, k in enumerate(keys) if k == q["key"] and version[i] == latest[q["key"]]}
            top = [i for i, _ in index.top_k(q["instruction"], 3)]
            hit1 += bool(top[:1] and top[0] in relevant)
            hit3 += bool(set(top) & relevant)
            stale += bool(top[:1] and keys[top[0]] == q["key"] and top[0] not in relevant)
        n = len(questions)
        print(f"| {name} | {n} | {hit1 / n:.3f} | {hit3 / n:.3f} | {stale / n:.3f} |")


if __name__ == "__main__":
    main()
