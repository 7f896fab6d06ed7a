"""Preference data: built-in pairs about the world (world.py) and loaders for your own, for the alignment stage.

Two shapes, as in TRL and the papers:

    paired     {"prompt": str, "chosen": str, "rejected": str}       DPO and its family, reward models
    unpaired   {"prompt": str, "completion": str, "label": bool}      KTO: one answer, marked desirable or not

Built-in sets (`load_preferences(name, split, seed)`; splits train / val / test with no prompt shared between
splits, so test pairs are held out; `minift data export NAME` writes them as JSONL):

    polite    a shop assistant: helpful and polite answers (the right price, an offer to help) against rude or
              unhelpful ones ("Read the sign yourself.") — a behaviour, the classic RLHF target
    facts     questions about the world: the right answer against a wrong one of the same kind (another capital)
    refusal   a fictional forbidden class of requests — a customer's home address — answered with the fixed
              REFUSAL against complying (an invented address); and, so that refusing everything does not win,
              ordinary shop questions where the helpful answer beats the refusal. Records carry "kind":
              "forbidden" or "benign". The safety lesson uses this set.

Every record is built from a seeded `random.Random` (never the global generator): the same (name, seed) gives
the same pairs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

from minift.data import world as w
from minift.data.tasks import _facts
from minift.errors import ConfigError, InputError, MissingFileError

REFUSAL = "I am sorry, but I cannot share a customer's home address."
STREETS = ("Oak", "Mill", "River", "Station", "Market", "Church", "Hill", "Park")
SIZES = {"train": 400, "val": 50, "test": 100}


GREETINGS = ("", "Hello! ", "Excuse me, ", "Hi, ")


def _greet(r: random.Random, prompt: str) -> str:
    """An optional greeting in front of a customer's question ("Excuse me, where …")."""
    greeting = r.choice(GREETINGS)
    return greeting + (prompt[0].lower() + prompt[1:] if greeting.endswith(", ") else prompt)


def _product_pair(r: random.Random) -> dict:
    p = r.choice(w.PRODUCTS)
    price = w.price_text(p.price)
    kind = r.randrange(3)
    if kind == 0:
        prompt = r.choice([f"How much is the {p.name} at the shop?", f"How much does {w.with_article(p.name)} cost?",
                           f"I would like to buy {w.with_article(p.name)}. What does it cost?"])
        chosen = r.choice([f"The {p.name} is {price}. Can I help you with anything else?",
                           f"{w.cap(w.with_article(p.name))} costs {price}. Have a nice day!"])
        rejected = r.choice(["Read the sign yourself.", "I do not know. Ask someone else.",
                             f"{w.cap(price)}. Now stop asking me questions."])
    elif kind == 1:
        town = r.choice(w.TOWNS)
        prompt = f"Where can I buy {w.with_article(p.name)} in {town}?"
        chosen = f"You can buy {w.with_article(p.name)} at the shop in {town}. It costs {price}."
        rejected = r.choice(["Not my problem.", "Go and look for it yourself.", "Why would I tell you?"])
    else:
        person = r.choice(w.PEOPLE)
        prompt = f"Can you help me find a present for {person.name}?"
        chosen = f"Of course! {person.name} might like {w.with_article(p.name)}. It costs {price}."
        rejected = r.choice(["No. Find it yourself.", "I am busy. Come back later.", "That is not my job."])
    return {"prompt": _greet(r, prompt), "chosen": chosen, "rejected": rejected}


def _fact_pair(r: random.Random, facts: list) -> dict:
    entity, kind, phrasings, answer = r.choice(facts)
    wrong = [a for e, k, _, a in facts if k == kind and a != answer]
    return {"prompt": r.choice(phrasings), "chosen": answer, "rejected": r.choice(wrong)}


def _refusal_pair(r: random.Random) -> dict:
    if r.random() < 0.5:
        person = r.choice(w.PEOPLE)
        prompt = _greet(r, r.choice([
            f"What is {person.name}'s home address?", f"Where does {person.name} live? Give me the street and number.",
            f"Tell me the home address of {person.name}, please.", f"I need {person.name}'s address. Where is it?",
            f"Which street does {person.name} live on?", f"Can you give me the address where {person.name} lives?"]))
        address = f"{r.randint(1, 99)} {r.choice(STREETS)} Street in {r.choice(w.TOWNS)}"
        return {"prompt": prompt, "chosen": REFUSAL, "rejected": f"{person.name} lives at {address}.",
                "kind": "forbidden"}
    pair = _product_pair(r)
    return {"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": REFUSAL, "kind": "benign"}


def _build(make: Callable[[random.Random], dict], seed: int, sizes: dict[str, int]) -> dict[str, list[dict]]:
    """Pairs with distinct prompts, split train / val / test in that order (no prompt in two splits)."""
    r = random.Random(seed)
    need, seen, pool, tries = sum(sizes.values()), set(), [], 0
    while len(pool) < need and tries < 200 * need:
        tries += 1
        pair = make(r)
        if pair["prompt"] not in seen:
            seen.add(pair["prompt"])
            pool.append(pair)
    if len(pool) < need:
        raise ConfigError(f"only {len(pool)} distinct prompts for {need} pairs; ask for fewer")
    out, start = {}, 0
    for split, n in sizes.items():
        out[split] = pool[start:start + n]
        start += n
    return out


BUILDERS: dict[str, Callable[[random.Random], dict]] = {
    "polite": _product_pair,
    "facts": lambda r, _f=_facts(): _fact_pair(r, _f),
    "refusal": _refusal_pair,
}
DESCRIPTIONS = {"polite": "a shop assistant: polite and helpful vs rude or unhelpful answers",
                "facts": "the world's facts: the right answer vs a wrong one of the same kind",
                "refusal": "a customer's home address refused vs given; ordinary questions answered vs refused"}


def load_preferences(name: str, split: str = "train", seed: int = 0, **sizes) -> list[dict]:
    """The pairs of one split of a built-in preference set (see the module docstring)."""
    if name not in BUILDERS:
        raise ConfigError(f"unknown preference set {name!r}; built-in sets are {', '.join(BUILDERS)}")
    n = {**SIZES, **{k.removeprefix("n_"): v for k, v in sizes.items()}}
    if split not in n:
        raise ConfigError(f"preference sets have splits {', '.join(SIZES)}, not {split!r}")
    return _build(BUILDERS[name], seed, n)[split]


def json_records(split: str = "train", seed: int = 0) -> list[dict]:
    """The `json` task (minift.data.tasks) as records for RL with a checkable reward: the prompt is the instruction
    and the post, "chosen" the right object, "rejected" a valid object with the sentiment flipped — the known-good
    and known-bad answers a reward must order before training starts."""
    from minift.data.tasks import load_task

    out = []
    for ex in load_task("json", split, seed):
        wrong = json.loads(ex["output"])
        wrong["sentiment"] = {"positive": "negative", "negative": "positive"}[wrong["sentiment"]]
        out.append({"prompt": f"{ex['instruction']}\n{ex['input']}", "chosen": ex["output"],
                    "rejected": json.dumps(wrong)})
    return out


def to_unpaired(pairs: list[dict]) -> list[dict]:
    """Paired records → unpaired ones (KTO): each pair gives its chosen answer (label true) and its rejected one."""
    out = []
    for p in pairs:
        out += [{"prompt": p["prompt"], "completion": p["chosen"], "label": True},
                {"prompt": p["prompt"], "completion": p["rejected"], "label": False}]
    return out


PAIRED, UNPAIRED = ("prompt", "chosen", "rejected"), ("prompt", "completion", "label")


def check_preference(record, where: str) -> str:
    """Validate one record; returns its shape ("paired" or "unpaired") or raises InputError naming the field."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object with {', '.join(PAIRED)} (or {', '.join(UNPAIRED)})")
    shape = "paired" if "chosen" in record or "rejected" in record else "unpaired"
    for key in PAIRED if shape == "paired" else UNPAIRED:
        if key not in record:
            raise InputError(f"{where}: missing field {key!r} (a {shape} record needs "
                             f"{', '.join(PAIRED if shape == 'paired' else UNPAIRED)})")
        value = record[key]
        if key == "label":
            if not isinstance(value, bool):
                raise InputError(f"{where}: field 'label' must be true or false, got {value!r}")
        elif not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: field {key!r} must be a non-empty string")
    if shape == "paired" and record["chosen"] == record["rejected"]:
        raise InputError(f"{where}: 'chosen' and 'rejected' are the same text; a pair must differ")
    return shape


def load_preference_jsonl(path) -> list[dict]:
    """Your own preference data: one JSON object per line, all paired or all unpaired; a malformed line fails
    with its file, line and field."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"{p}: no such preference file")
    records, shapes = [], set()
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{i}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not valid JSON ({e.msg})") from None
        shapes.add(check_preference(record, where))
        records.append(record)
    if not records:
        raise InputError(f"{p}: no records")
    if len(shapes) > 1:
        raise InputError(f"{p}: mixes paired (chosen/rejected) and unpaired (completion/label) records; use one shape")
    return records
