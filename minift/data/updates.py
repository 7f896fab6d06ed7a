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
    train       questions in the TRAIN phrasings, with the short answer ("12 dollars.")
    heldout     the same facts asked in other phrasings, from templates no training question uses: a model that
                answers these learned the fact, not the sentence

`update_stream(n_updates, facts_per_update, paraphrases, seed)` gives the same stream for the same arguments (its
own `random.Random`). Dates run from 2027-01-01 in steps of one week.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field

from minift.data import world as w

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
        raise ValueError(f"paraphrases must be 1 to 4, got {paraphrases}")
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
        for _ in range(facts_per_update):
            kind = r.choice(("price", "price", "product", "event", "town"))
            if kind == "product" and not new_products or kind == "town" and not new_towns:
                kind = "price"
            if kind == "price":
                subject = r.choice(sorted(prices))
                old = prices[subject]
                value = r.choice([old + d for d in (-3, -2, -1, 1, 2, 3, 5) if old + d >= 1])  # never the same
                prices[subject] = value
            elif kind == "product":
                subject, old, value = new_products.pop(), None, r.randint(2, 40)
                prices[subject] = value
            elif kind == "event":
                subject = r.choice(w.TOWNS)
                old = festivals.get(subject)
                value = r.choice([d for d in DAYS if d != old])
                festivals[subject] = value
            else:
                subject, old, value = new_towns.pop(), None, r.choice(w.TOWNS)
            key = f"{'price' if kind == 'product' else kind}:{subject}"  # a new product's price can change later
            up.facts.append({"kind": kind, "key": key, "subject": subject,
                             "value": str(value), "old": None if old is None else str(old)})
            docs = list(DOCS[kind])
            r.shuffle(docs)
            up.documents += [_fill(t, subject, value, date) for t in docs[:paraphrases]]
            up.doc_keys += [key] * paraphrases
            answer = _fill(ANSWER[kind], subject, value, date)
            up.train += [{"instruction": _fill(q, subject, value, date), "input": "", "output": answer, "key": key}
                         for q in TRAIN_Q[kind]]
            up.heldout += [{"instruction": _fill(q, subject, value, date), "input": "", "output": answer, "key": key}
                           for q in HELDOUT_Q[kind]]
        stream.append(up)
    return stream


def current_facts(stream: list[Update], upto: int) -> dict[str, str]:
    """key → value after updates 0 … upto (a later update of the same key overrides an earlier one)."""
    facts = {}
    for up in stream[:upto + 1]:
        for f in up.facts:
            facts[f["key"]] = f["value"]
    return facts
