"""A world that changes: a deterministic stream of dated updates to minift's world (world.py), for measuring
continual fine-tuning against retrieval.

Each update holds a few new facts of four kinds:

    price     the shop changes a product's price (a later update may change it again: a *changed* fact, whose old
              answer is now wrong)
    product   the shop starts selling something new, at a price
    event     news: a town's festival moves to a weekday
    town      a new town is founded near an old one

and, for each fact,

    documents   `paraphrases` sentences stating it (the text a retriever indexes, or a fine-tune reads)
    train       questions in the TRAIN phrasings, with the short answer ("12 dollars.") and the fact's value ("12")
    heldout     the same facts asked in other phrasings, from templates no training question uses: a model that
                answers these learned the fact, not the sentence

`update_stream(n_updates, facts_per_update, paraphrases, seed)` gives the same stream for the same arguments (its
own `random.Random`). Dates run from 2027-01-01 in steps of one week.

What a model is asked after update t (`questions_after`): the held-out question of every fact known by then, with
its CURRENT answer and the value it replaced. An answer is right when it names the current value as a whole word
(`names_value`: "12" is in "12 dollars." but not in "112 dollars."), stale when it names the replaced one instead.
"""

from __future__ import annotations

import datetime
import random
import re
from dataclasses import dataclass, field

from minift.data import world as w
from minift.errors import ConfigError

NEW_PRODUCTS = ("paper lantern", "wooden boat", "glass bird", "wool blanket", "tin drum", "clay pot", "silk fan",
                "board game", "flower vase", "garden chair", "picture frame", "music box")
NEW_TOWNS = ("Ashford", "Brightwater", "Cedarbrook", "Dunmore", "Elmstead", "Fairhaven", "Glenrock", "Hollowmere")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

DOCS = {
    "price": ("The {x} now costs {v} dollars.", "From {date}, the price of the {x} is {v} dollars.",
              "The shop has changed the price of the {x}: it is {v} dollars now.",
              "Since {date} {ax} is sold for {v} dollars."),
    "product": ("The shop now sells {ax} for {v} dollars.", "New at the shop from {date}: {ax}, {v} dollars.",
                "You can buy {ax} at the shop now; it costs {v} dollars.",
                "{Ax} has arrived at the shop, priced at {v} dollars."),
    "event": ("The festival in {x} has moved to {v}.", "From {date}, the {x} festival is held on {v}.",
              "News from {x}: the festival is now on {v}.", "People in {x} will hold their festival on {v} now."),
    "town": ("A new town called {x} was founded near {v}.", "{x} is a new town close to {v}.",
             "Since {date} there is a town named {x} next to {v}.", "The new town of {x} lies near {v}."),
}
TRAIN_Q = {"price": ("How much is the {x} now?", "What is the price of the {x}?"),
           "product": ("How much is the new {x}?", "What does {ax} cost at the shop?"),
           "event": ("When is the festival in {x}?", "On which day is the {x} festival?"),
           "town": ("Which town is {x} near?", "Near which town is {x}?")}
HELDOUT_Q = {"price": ("What would I pay for the {x} today?",),
             "product": ("If I buy the new {x}, how many dollars do I pay?",),
             "event": ("What day should I go to {x} for the festival?",),
             "town": ("{x} was built next to which town?",)}
ANSWER = {"price": "{v} dollars.", "product": "{v} dollars.", "event": "{v}.", "town": "{v}."}


@dataclass
class Update:
    index: int
    date: str
    facts: list[dict] = field(default_factory=list)      # {"kind", "key", "subject", "value", "old" (or None)}
    documents: list[str] = field(default_factory=list)
    doc_keys: list[str] = field(default_factory=list)    # the fact each document states (parallel to documents)
    train: list[dict] = field(default_factory=list)      # {"instruction", "input", "output", "key"}
    heldout: list[dict] = field(default_factory=list)


def _fill(template: str, subject: str, value, date: str) -> str:
    ax = w.with_article(subject)
    return template.format(x=subject, ax=ax, Ax=w.cap(ax), v=value, date=date)


def update_stream(n_updates: int = 5, facts_per_update: int = 6, paraphrases: int = 3, seed: int = 0
                  ) -> list[Update]:
    """The stream (module docstring). paraphrases: documents per fact, 1 to 4."""
    if not 1 <= paraphrases <= 4:
        raise ConfigError(f"paraphrases must be 1 to 4, got {paraphrases}")
    if not 1 <= facts_per_update <= 12:
        raise ConfigError(f"facts per update must be 1 to 12 (the world has that many subjects to change), got "
                          f"{facts_per_update}")
    r = random.Random(f"updates-{seed}")
    prices = {p.name: p.price for p in w.PRODUCTS}           # the current price of every product
    festivals: dict[str, str] = {}                           # the current festival day of a town
    new_products, new_towns = list(NEW_PRODUCTS), list(NEW_TOWNS)
    r.shuffle(new_products)
    r.shuffle(new_towns)
    start = datetime.date(2027, 1, 1)
    stream = []
    for u in range(n_updates):
        date = (start + datetime.timedelta(weeks=u)).isoformat()
        up = Update(u, date)
        used: set[str] = set()  # one fact per subject and update: two prices of one lamp in a week contradict
        for _ in range(facts_per_update):
            kind = r.choice(("price", "price", "product", "event", "town"))
            if (kind == "product" and not new_products or kind == "town" and not new_towns
                    or kind == "event" and not set(w.TOWNS) - used):
                kind = "price"
            if kind == "price":
                subject = r.choice(sorted(set(prices) - used))
                old = prices[subject]
                value = r.choice([old + d for d in (-3, -2, -1, 1, 2, 3, 5) if old + d >= 1])  # never the same
                prices[subject] = value
            elif kind == "product":
                subject, old, value = new_products.pop(), None, r.randint(2, 40)
                prices[subject] = value
            elif kind == "event":
                subject = r.choice(sorted(set(w.TOWNS) - used))
                old = festivals.get(subject)
                value = r.choice([d for d in DAYS if d != old])
                festivals[subject] = value
            else:
                subject, old, value = new_towns.pop(), None, r.choice(w.TOWNS)
            used.add(subject)
            key = f"{'price' if kind == 'product' else kind}:{subject}"  # a new product's price can change later
            up.facts.append({"kind": kind, "key": key, "subject": subject,
                             "value": str(value), "old": None if old is None else str(old)})
            docs = list(DOCS[kind])
            r.shuffle(docs)
            up.documents += [_fill(t, subject, value, date) for t in docs[:paraphrases]]
            up.doc_keys += [key] * paraphrases
            answer = _fill(ANSWER[kind], subject, value, date)
            up.train += [{"instruction": _fill(q, subject, value, date), "input": "", "output": answer, "key": key,
                          "value": str(value)} for q in TRAIN_Q[kind]]
            up.heldout += [{"instruction": _fill(q, subject, value, date), "input": "", "output": answer, "key": key,
                            "value": str(value)} for q in HELDOUT_Q[kind]]
        stream.append(up)
    return stream


def current_facts(stream: list[Update], upto: int) -> dict[str, str]:
    """key → value after updates 0 … upto (a later update of the same key overrides an earlier one)."""
    facts = {}
    for up in stream[:upto + 1]:
        for f in up.facts:
            facts[f["key"]] = f["value"]
    return facts


def names_value(answer: str, value: str) -> bool:
    """Does the answer name `value` as a whole word (case-insensitive)?"""
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", answer, re.IGNORECASE) is not None


def update_examples(update: Update, on: str = "both") -> list[dict]:
    """What fine-tuning learns an update from: its training questions ("questions"), its documents as plain text
    ({"text"}: every token supervised, no prompt; "documents"), or both. Each carries its fact's key."""
    if on not in ("questions", "documents", "both"):
        raise ConfigError(f"on must be questions, documents or both, got {on!r}")
    docs = [{"text": d, "key": k} for d, k in zip(update.documents, update.doc_keys)]
    qs = [dict(q) for q in update.train]
    return qs if on == "questions" else docs if on == "documents" else qs + docs


def questions_after(stream: list[Update], t: int) -> list[dict]:
    """The held-out question of every fact known after update t, with its current answer: {"instruction", "key",
    "value", "old" (the value the latest fact replaced, or None), "update" (where the latest fact came from),
    "kind"}. A key changed twice is asked once, with its latest value."""
    latest: dict[str, tuple[int, dict, dict]] = {}
    for up in stream[:t + 1]:
        by_key = {q["key"]: q for q in up.heldout}
        for f in up.facts:
            latest[f["key"]] = (up.index, f, by_key[f["key"]])
    return [{"instruction": q["instruction"], "input": "", "key": key, "value": f["value"], "old": f["old"],
             "update": u, "kind": f["kind"]} for key, (u, f, q) in latest.items()]


def stream_records(stream: list[Update]) -> list[dict]:
    """One JSON-ready record per fact, in stream order (what `minift data export updates` writes)."""
    out = []
    for up in stream:
        per = len(up.documents) // len(up.facts)   # documents are laid out fact by fact; two TRAIN_Q, one HELDOUT_Q
        for i, f in enumerate(up.facts):
            out.append({"update": up.index, "date": up.date, **f, "documents": up.documents[i * per:(i + 1) * per],
                        "questions": [q["instruction"] for q in up.train[2 * i:2 * i + 2]],
                        "heldout": [up.heldout[i]["instruction"]], "answer": up.train[2 * i]["output"]})
    return out
