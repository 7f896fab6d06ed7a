"""Retrieval for knowledge, fine-tuning for behaviour — as a function whose rule the measured table backs.

    choose_ai_strategy(needs_knowledge, changes_often, needs_behaviour) → Strategy("rag" | "fine-tune" | "both", why)

The rule, and the measurement behind each branch (compare/knowledge.py; README and docs/continual.md give the
numbers for both bases):

    knowledge that changes      → rag        absorbing an update is adding documents (milliseconds) instead of
                                             training (seconds to minutes, every update); fine-tuned models give
                                             stale values for changed facts and lose earlier ones
    knowledge that stays        → rag        fine-tuning learns a fact from its phrasing: held-out questions about
                                             it are answered far less often than with the document in the prompt
                                             of a model that reads (SmolLM2; a small base must be taught to read)
                                             (Ovadia et al., 2024 measure the same on real models)
    a behaviour (format, tone)  → fine-tune  a retrieved example in the prompt does not make strict JSON reliable;
                                             a short fine-tune does
    both                        → both       fine-tune the behaviour, including reading retrieved documents (the
                                             "rag + reader" arm), and retrieve the knowledge

`evidence`, when given (versus.json's record), puts the measured numbers into the explanation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Strategy:
    method: str     # "rag", "fine-tune" or "both"
    why: str

    def __str__(self) -> str:
        return f"Strategy: {self.method}. {self.why}"


def choose_ai_strategy(needs_knowledge: bool, changes_often: bool = False, needs_behaviour: bool = False,
                       evidence: dict | None = None) -> Strategy:
    """The rule of the module docstring. needs_knowledge: the model must state facts (prices, events, policies);
    changes_often: those facts change between releases; needs_behaviour: a format, tone or skill every answer must
    follow (strict JSON, a refusal, a house style)."""
    if not needs_knowledge and not needs_behaviour:
        return Strategy("neither", "Nothing to add: prompt the base model as it is.")
    facts = _knowledge_reason(changes_often, evidence) if needs_knowledge else ""
    behaviour = _behaviour_reason(evidence) if needs_behaviour else ""
    if needs_knowledge and needs_behaviour:
        return Strategy("both", f"Fine-tune for the behaviour, retrieve the knowledge. {behaviour} {facts}".strip())
    if needs_knowledge:
        return Strategy("rag", facts)
    return Strategy("fine-tune", behaviour)


def _row(evidence: dict | None, arm: str) -> dict | None:
    """The measured row whose arm starts with `arm`; for the families "rag" (with or without a reader) and "ft ×"
    (fine-tuning without retrieval added) the best of them by its share of all facts right."""
    if not evidence:
        return None
    rows = [r for r in evidence.get("rows", []) + evidence.get("json", []) if r["arm"].startswith(arm)]
    if arm in ("rag", "ft ×"):
        rows = sorted((r for r in rows if arm == "rag" or "rag" not in r["arm"]), key=lambda r: -_facts(r))
    return rows[0] if rows else None


def _facts(row: dict) -> float:
    return row.get("all", row.get("fresh", 0.0))


def _knowledge_reason(changes_often: bool, evidence: dict | None) -> str:
    why = ("Retrieval absorbs an update by adding documents; fine-tuning must train on every update and still "
           "answers changed facts with stale values." if changes_often else
           "Fine-tuning learns a fact from its phrasing; asked another way, the model often misses it, while a "
           "retrieved document states it.")
    rag, ft = _row(evidence, "rag"), _row(evidence, "ft ×")
    if rag and ft:
        why += (f" Measured: {100 * _facts(rag):.0f} % of the facts right with retrieval ({rag['arm']}) vs "
                f"{100 * _facts(ft):.0f} % with fine-tuning ({ft['arm']}); absorbing an update took "
                f"{rag['absorb s/update'] * 1000:.2f} ms vs {ft['absorb s/update']:.1f} s.")
    return why


def _behaviour_reason(evidence: dict | None) -> str:
    why = "A format must hold on every answer: burn it into the weights with supervised fine-tuning."
    shown, tuned = _row(evidence, "retrieved example"), _row(evidence, "fine-tuned")
    if shown and tuned:
        room = ""
        if "examples shown" in shown:  # a small context may have had room for no example at all
            n = (evidence.get("config") or {}).get("n_json")
            room = f" (it fit in {shown['examples shown']}" + (f" of {n}" if n else "") + " prompts)"
        why += (f" Measured: strict JSON {100 * shown['json valid']:.0f} % with a retrieved example in the "
                f"prompt{room} vs {100 * tuned['json valid']:.0f} % after fine-tuning.")
    return why
