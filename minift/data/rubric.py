"""A brand voice, scored by a stated rubric: the `style` task's pirate voice as a company's house style.

A voice is a behaviour, not a fact, and "does it sound like us?" needs a definition before it can be a number.
The rubric writes the house style down as five checks, each decidable from the input and the output alone (no
judge model, no reference answer), so that anyone can recompute a score by hand:

    greeting     the answer opens with the brand's greeting "Arr! "
    vocabulary   none of the words the voice replaces is left (is, are, am → be; my → me; you → ye; hello → ahoy)
    sign-off     a statement ends with ", matey!" (a question or an exclamation keeps its own mark)
    faithful     every content word of the input (anything the voice does not replace) is still there, in order:
                 the voice changes *how* a thing is said, never *what*: no name, place or fact dropped or
                 swapped (words added in between are the concise check's business)
    concise      at most 4 words more than the input (the greeting and the sign-off need 2)

    rubric_checks(input, output) → {check: bool}
    rubric_scores(inputs, outputs) → {check: share passing, "all": share passing every check}

`minift.data.tasks.pirate(sentence)` is the voice's reference rewrite: it passes every check, and the plain
input fails the greeting. Lesson 19 fine-tunes the voice into a model and scores it with this rubric.
"""

from __future__ import annotations

from typing import Sequence

from minift.data.tasks import PIRATE_WORDS
from minift.errors import InputError

GREETING, SIGN_OFF = "Arr! ", ", matey!"
RUBRIC = {
    "greeting": 'opens with the brand\'s greeting "Arr! "',
    "vocabulary": "no word the voice replaces is left (is/are/am, my, you, hello)",
    "sign-off": 'a statement ends with ", matey!"',
    "faithful": "every content word of the input is kept, in order",
    "concise": "at most 4 words more than the input",
}


def _words(text: str) -> list[str]:
    return [t.strip(".,!?").lower() for t in text.split() if t.strip(".,!?")]


def _in_order(needles: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)  # each needle found after the previous one


def rubric_checks(source: str, output: str) -> dict[str, bool]:
    """The five checks for one rewrite of `source` (see the module docstring)."""
    out = output.strip()
    out_words = _words(out)
    content = [t for t in _words(source) if t not in PIRATE_WORDS]
    statement = source.rstrip().endswith(".")
    return {
        "greeting": out.startswith(GREETING),
        "vocabulary": not any(t in PIRATE_WORDS for t in out_words),
        "sign-off": out.endswith(SIGN_OFF) if statement else not out.endswith(SIGN_OFF),
        "faithful": _in_order(content, out_words),
        "concise": len(out.split()) <= len(source.split()) + 4,
    }


def rubric_scores(sources: Sequence[str], outputs: Sequence[str]) -> dict[str, float]:
    """The share of rewrites passing each check, and "all": the share passing every one of them."""
    if len(sources) != len(outputs) or not sources:
        raise InputError(f"the rubric needs one output per input and at least one pair, got {len(sources)} inputs "
                         f"and {len(outputs)} outputs")
    checks = [rubric_checks(s, o) for s, o in zip(sources, outputs)]
    scores = {name: sum(c[name] for c in checks) / len(checks) for name in RUBRIC}
    scores["all"] = sum(all(c.values()) for c in checks) / len(checks)
    return scores
