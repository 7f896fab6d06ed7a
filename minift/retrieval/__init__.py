"""Stage 6, beside alignment: retrieval, the other way to give a model knowledge (docs come with the RAG issue).

    bm25.py   the tokenisation, an incremental BM25 index (Lucene IDF, k₁, b), recall@k
    rag.py    retrieval-augmented prompts inside a token budget; an index on disk
"""
