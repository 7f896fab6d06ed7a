"""Stage 6, beside alignment: retrieval, the other way to give a model knowledge (docs/continual.md).

    bm25.py      the tokenisation, an incremental BM25 index (Lucene IDF, k₁, b), recall@k
    rag.py       retrieval-augmented prompts inside a token budget; an index on disk
    strategy.py  `choose_ai_strategy`: retrieval for knowledge, fine-tuning for behaviour, as a rule backed by the
                 side-by-side measurement (compare/knowledge.py)
"""
