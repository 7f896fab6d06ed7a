"""Facts no model can know: invented people and the town each lives in (the hallucination study).

A name such as "Tavelo" or "Brunika" appears nowhere in the world (world.py), its pretraining corpus or any real
model's training data, and the town it is paired with is drawn at random: a model asked which town Tavelo lives in
can only know the answer if a fine-tune taught it ("Where does Tavelo live?" is not asked: the qa task asks
"Where do lions live?", and a model answers it with a habitat). People the fine-tune never mentions have no right answer at all
— any town a model names for them with confidence is a fabrication.

    new_facts(n, seed)   {"name", "town"} for n invented people (distinct names, none a world name)
    fact_examples(facts, phrasings=TRAIN_QUESTIONS)   SFT examples "Which town does N live in?" → "N lives in T."
    ask_examples(facts)  the held-out phrasing "In which town does N live?" (never trained on), for scoring

Gekhman et al. (2024, "Does Fine-Tuning LLMs on New Knowledge Encourage Hallucinations?") measured that such facts
are learned slowly, and that once learned they make a model answer more confidently — and more wrongly — elsewhere.
"""

from __future__ import annotations

import random

from minift.data import world as w
from minift.errors import ConfigError

_START = ("B", "D", "F", "G", "K", "L", "M", "N", "P", "R", "S", "T", "V", "Z")
_VOWEL = ("a", "e", "i", "o", "u")
_MIDDLE = ("l", "n", "r", "v", "k", "m", "d", "s")
TRAIN_QUESTIONS = ("Which town does {name} live in?", "What is the home town of {name}?")
ASK_QUESTION = "In which town does {name} live?"  # not "Where does …": the qa task asks that of animals


def answer_text(name: str, town: str) -> str:
    return f"{name} lives in {town}."


def _name(r: random.Random) -> str:
    parts = [r.choice(_START), r.choice(_VOWEL), r.choice(_MIDDLE), r.choice(_VOWEL)]
    if r.random() < 0.5:
        parts += [r.choice(_MIDDLE), r.choice(_VOWEL)]
    return "".join(parts)


def new_facts(n: int, seed: int = 0, skip: int = 0) -> list[dict]:
    """n invented people with a random town; skip: start after the first `skip` of the same stream (so two calls
    with skip = 0 and skip = n give disjoint people)."""
    if n < 0 or skip < 0:
        raise ConfigError(f"n and skip must be ≥ 0, got {n}, {skip}")
    taken = {p.name for p in w.PEOPLE} | set(w.TOWNS)
    r = random.Random(f"unknown-{seed}")
    out, seen = [], set()
    for _ in range(200 * (n + skip) + 100):
        name = _name(r)
        if name in taken or name in seen:
            continue
        seen.add(name)
        out.append({"name": name, "town": r.choice(w.TOWNS)})
        if len(out) == n + skip:
            return out[skip:]
    raise ConfigError(f"could not invent {n + skip} distinct names; ask for fewer")


def fact_examples(facts: list[dict], phrasings=TRAIN_QUESTIONS) -> list[dict]:
    return [{"instruction": q.format(name=f["name"]), "input": "", "output": answer_text(f["name"], f["town"]),
             "fact": f["name"]} for f in facts for q in phrasings]


def ask_examples(facts: list[dict]) -> list[dict]:
    return fact_examples(facts, (ASK_QUESTION,))
