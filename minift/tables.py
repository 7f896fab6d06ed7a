"""Markdown tables of results: one row per dict, cells formatted for reading (pure Python).

Used by the command line (`minift finetune`, `minift eval`), the lessons and the benchmarks.
"""

from __future__ import annotations


def fmt(value) -> str:
    """A table cell: fractions as percentages with one decimal, big integers with thousands separators."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """Rows of dicts → a markdown table (columns: the given ones, or every key in first-seen order)."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def metrics_rows(metrics: dict) -> list[dict]:
    """{split: {metric: value}} → one row per (split, metric); a breakdown such as accuracy_by_construction
    becomes one row per group, named metric[group]."""
    rows = []
    for split, m in metrics.items():
        for k, v in m.items():
            items = [(f"{k}[{g}]", x) for g, x in v.items()] if isinstance(v, dict) else [(k, v)]
            rows += [{"split": split, "metric": name, "value": x} for name, x in items]
    return rows
