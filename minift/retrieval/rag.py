"""Retrieval-augmented prompts: the k best documents put in front of the question, inside the context budget.

    prompt = "Context:\\n" + d₁ + "\\n" + … + d_j + "\\n\\nQuestion: " + q
        d₁ … d_j: BM25's top documents, best first, as many as fit in `budget` tokens

The budget is counted with the model's own tokenizer, so the same code serves the tiny base (a 128-token context:
one or two short documents) and SmolLM2 (thousands of tokens). A document that would overflow the budget is left
out, and so are all after it (they score lower). Without any document that fits, the prompt is the question alone.

An index on disk is a directory holding documents.jsonl ({"text"} per line): BM25's statistics are counts, so they
are rebuilt when it is loaded (milliseconds for thousands of documents), and adding an update appends lines — the
point of retrieval when knowledge changes: absorbing an update takes the time to write a file.
"""

from __future__ import annotations

import json
from pathlib import Path

from minift.errors import InputError, MissingFileError
from minift.files import atomic_write_text, make_dir
from minift.retrieval.bm25 import BM25Index

INDEX_FILE = "documents.jsonl"


def rag_prompt(question: str, index: BM25Index, count_tokens, budget: int, k: int = 3) -> tuple[str, list[int]]:
    """(prompt, indices of the documents used); count_tokens(text) → its length in tokens."""
    used: list[int] = []
    for i, _ in index.top_k(question, k):
        text = _layout([index.docs[j] for j in used + [i]], question)
        if count_tokens(text) > budget:
            break
        used.append(i)
    return (_layout([index.docs[j] for j in used], question) if used else question), used


def context_budget(block_size: int, tok, template, max_new_tokens: int) -> int:
    """Tokens left for the prompt's text (documents + question) in a context of block_size: what the template wraps
    around the text (measured, not guessed: 23 tokens for the tiny base's template) and the answer's tokens are
    taken off first."""
    wrapper = len(template.encode_prompt(tok, "x")) - len(tok.encode("x"))
    return block_size - wrapper - max_new_tokens


def _layout(docs: list[str], question: str) -> str:
    return "Context:\n" + "\n".join(docs) + f"\n\nQuestion: {question}"


def save_index(index: BM25Index, out_dir) -> Path:
    """Write the index's documents (the statistics are rebuilt on load)."""
    out = make_dir(Path(out_dir))
    atomic_write_text(out / INDEX_FILE, "".join(json.dumps({"text": d}) + "\n" for d in index.docs))
    return out


def load_index(index_dir, k1: float = 1.5, b: float = 0.75) -> BM25Index:
    path = Path(index_dir) / INDEX_FILE
    if not path.is_file():
        raise MissingFileError(f"{index_dir} holds no retrieval index ({INDEX_FILE}); build one with "
                               "`minift rag index`")
    docs = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise InputError(f"{path}:{n}: expected {{\"text\": \"...\"}}")
        docs.append(record["text"])
    index = BM25Index(k1, b)
    index.add(docs)
    return index
