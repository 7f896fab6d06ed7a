"""The built-in pretraining corpus: simple English text about the small world in world.py.

`generate_corpus(seed)` writes a few MB of text in about a second, with no downloads, and the same seed always
gives the same text (it uses only its own `random.Random(seed)`, never the global generator). It is sized so
that a tiny GPT pretrained on it for a few minutes on a CPU writes readable sentences and picks up the world's
facts, which the later lessons fine-tune it to use (question answering, sentiment, JSON output, style).

Document kinds (share of the corpus in KIND_WEIGHTS):

    country   encyclopedia paragraph: "France is a country in Europe. The capital of France is Paris. ..."
    animal    encyclopedia paragraph: "Cows live on farms. A cow eats grass. A cow has four legs. ..."
    qa        question/answer lists:  "Q: What is the capital of France?\\nA: Paris."
    quiz      teacher/student dialogue asking the same facts
    overview  one continent's countries, or the animals of one place, with their facts
    record    the same facts as JSON objects: {"country": "France", "capital": "Paris", ...}
    story     short stories with named people, towns, weather, the shop, trips and animals
    dialogue  a customer and a shop assistant; prices always match world.PRODUCTS
    post      short posts and reviews with a clear positive or negative sentiment about one of world.TOPICS

This file writes the fact sheets (country to record) and assembles the corpus; stories.py writes the everyday
kinds (story, dialogue, post).

Why it is built this way:
* Every fact is written in several phrasings ("The capital of France is Paris.", "Paris is the capital of
  France.", "Q: What is the capital of France? A: Paris."). A model that has only seen one phrasing memorises a
  string; one that has seen many stores the fact, so a fine-tuned question-answering format can retrieve it.
* Each fact is stated often: in the default corpus every capital appears next to its country about 200 times,
  every animal's food and every price over 100 times. A tiny model needs many repetitions to learn a fact.
* Small vocabulary (about 750 distinct words, all ASCII) and short sentences: a few-million-parameter model can
  learn the language in minutes, so what is left to learn is the facts and the formats. A byte-level BPE
  tokenizer trained on it runs out of merges at about 2,300 tokens (every word becomes one token).
* Documents are unique (duplicates are skipped), so train and validation splits never share a document.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import NamedTuple

from minift.data import world as w
from minift.errors import ConfigError
from minift.data.world import cap, number_word

from minift.data.stories import doc_dialogue, doc_post, doc_story  # the everyday kinds of document

DEFAULT_N_DOCS = 13000  # ≈ 3.2 MB of text, generated in about 0.5 s

KIND_WEIGHTS = {"country": 22, "animal": 10, "qa": 14, "quiz": 7, "overview": 5, "record": 4,
                "story": 14, "dialogue": 10, "post": 14}


class Document(NamedTuple):
    kind: str  # one of KIND_WEIGHTS
    text: str


# ------------------------------------------------------------------------------ facts, each in several phrasings
def capital_sentences(c: w.Country) -> list[str]:
    n, k = c.name, c.capital
    return [f"The capital of {n} is {k}.", f"{k} is the capital of {n}.", f"The capital city of {n} is {k}.",
            f"{k} is the capital city of {n}.", f"{n} has its capital in {k}.", f"{n}'s capital is {k}."]


def continent_sentences(c: w.Country) -> list[str]:
    n, x = c.name, c.continent
    return [f"{n} is a country in {x}.", f"{n} is in {x}.", f"You can find {n} in {x}.",
            f"{n} is one of the countries of {x}."]


def language_sentences(c: w.Country) -> list[str]:
    n, lang = c.name, c.language
    return [f"People in {n} speak {lang}.", f"The main language of {n} is {lang}.",
            f"In {n}, people speak {lang}.", f"{lang} is spoken in {n}."]


def animal_sentences(a: w.Animal) -> dict[str, list[str]]:
    """Phrasings of each fact about one animal, keyed by the fact: food, habitat, diet, legs, sound."""
    one, many = w.with_article(a.name), cap(a.plural)
    s = {"food": [f"{many} eat {a.food}.", f"{cap(one)} eats {a.food}.", f"{cap(one)} likes to eat {a.food}.",
                  f"The food of the {a.name} is {a.food}."],
         "habitat": [f"{many} live {a.habitat}.", f"{cap(one)} lives {a.habitat}.",
                     f"You can find {a.plural} {a.habitat}."],
         "diet": [f"{cap(one)} is {w.with_article(w.DIET_WORD[a.diet])}.", f"{many} are {w.DIET_WORD[a.diet]}s."]}
    if a.legs is not None:
        legs = "no legs" if a.legs == 0 else f"{number_word(a.legs)} legs"
        s["legs"] = [f"{cap(one)} has {legs}.", f"{many} have {legs}."]
    if a.sound:
        s["sound"] = [f"{cap(one)} says {a.sound}.", f"{many} say {a.sound}.", f"The {a.name} goes {a.sound}."]
    return s


def fact_questions(r: random.Random) -> tuple[str, str, str]:
    """One random fact as (question, short answer, full-sentence answer)."""
    pick = r.random()
    if pick < 0.5:
        c = r.choice(w.COUNTRIES)
        return r.choice([
            (f"What is the capital of {c.name}?", c.capital, capital_sentences(c)[0]),
            (f"What is the capital of {c.name}?", c.capital, capital_sentences(c)[1]),
            (f"Which city is the capital of {c.name}?", c.capital, capital_sentences(c)[1]),
            (f"{c.capital} is the capital of which country?", c.name, capital_sentences(c)[1]),
            (f"Which continent is {c.name} in?", c.continent, continent_sentences(c)[1]),
            (f"What language do people speak in {c.name}?", c.language, language_sentences(c)[0]),
        ])
    if pick < 0.85:
        a = r.choice(w.ANIMALS)
        s, one = animal_sentences(a), w.with_article(a.name)
        qs = [(f"What do {a.plural} eat?", cap(a.food), s["food"][0]),
              (f"What does {one} eat?", cap(a.food), s["food"][1]),
              (f"Where do {a.plural} live?", cap(a.habitat), s["habitat"][0])]
        if "legs" in s:
            qs.append((f"How many legs does {one} have?", cap(number_word(a.legs)), s["legs"][0]))
        if "sound" in s:
            qs.append((f"What sound does {one} make?", cap(a.sound), s["sound"][0]))
        return r.choice(qs)
    p = r.choice(w.PRODUCTS)
    return r.choice([(f"How much is the {p.name} at the shop?", cap(w.price_text(p.price)),
                      f"The {p.name} costs {w.price_text(p.price)}."),
                     (f"How much does {w.with_article(p.name)} cost?", cap(w.price_text(p.price)),
                      f"{cap(w.with_article(p.name))} costs {w.price_text(p.price)}.")])


# --------------------------------------------------------------------------------------- encyclopedia documents
def doc_country(r: random.Random) -> str:
    c = r.choice(w.COUNTRIES)
    caps = r.sample(capital_sentences(c), 2)
    body = [r.choice(language_sentences(c)), caps[1], r.choice([f"{c.capital} is a city in {c.name}.",
                                                                 f"Many people visit {c.capital} every year."])]
    other = r.choice([x for x in w.COUNTRIES if x != c])
    body.append(r.choice([f"The capital of {c.name} is {c.capital}, and the capital of {other.name} is "
                          f"{other.capital}.", f"People in {c.capital} speak {c.language}."]))
    r.shuffle(body)
    text = " ".join([r.choice(continent_sentences(c)), caps[0], *body[: r.randint(2, 4)]])
    if r.random() < 0.3:
        text = f"{c.name}\n{text}"
    if r.random() < 0.3:
        text += f"\nQ: What is the capital of {c.name}?\nA: {c.capital}."
    return text


def doc_animal(r: random.Random) -> str:
    a = r.choice(w.ANIMALS)
    facts = animal_sentences(a)
    first = r.choice([f"The {a.name} is an animal.", f"This is about {a.plural}.", facts["habitat"][0]])
    keys = list(facts)
    r.shuffle(keys)
    body = [r.choice(facts[k]) for k in keys]
    if r.random() < 0.5:  # restate the food fact in a second phrasing: it is the one fine-tuning asks most
        body.append(r.choice([x for x in facts["food"] if x not in body]))
    text = " ".join([first, *body])
    if r.random() < 0.3:
        text += f"\nQ: What do {a.plural} eat?\nA: {cap(a.food)}."
    return text


def doc_qa(r: random.Random) -> str:
    q_label, a_label = r.choice([("Q", "A"), ("Question", "Answer")])
    full = r.random() < 0.4
    lines = [f"{q_label}: {q}\n{a_label}: {long if full else short + '.'}"
             for q, short, long in (fact_questions(r) for _ in range(r.randint(3, 6)))]
    head = r.choice(["", "Questions and answers\n", "Quiz time!\n", "Test what you know.\n"])
    return head + "\n".join(lines)


def doc_quiz(r: random.Random) -> str:
    student = r.choice(w.PEOPLE).name
    lines = [r.choice(["Teacher: Good morning, class. Let us have a quiz.", "Teacher: Today we have a quiz."])]
    for _ in range(r.randint(2, 4)):
        q, short, long = fact_questions(r)
        lines += [f"Teacher: {q}", f"{student}: {r.choice([short + '.', long])}",
                  f"Teacher: {r.choice(['Well done!', 'That is right.', 'Very good.', 'Correct!'])}"]
    return "\n".join(lines)


def doc_overview(r: random.Random) -> str:
    if r.random() < 0.6:
        cont = r.choice(w.CONTINENTS)
        cs = r.sample(w.countries_in(cont), min(3, len(w.countries_in(cont))))
        names = ", ".join(c.name for c in cs[:-1]) + f" and {cs[-1].name}"
        lines = [f"There are many countries in {cont}. Some of them are {names}."]
        lines += [r.choice(capital_sentences(c)) + " " + r.choice(language_sentences(c)) for c in cs]
        return " ".join(lines)
    habitat = r.choice(sorted({a.habitat for a in w.ANIMALS}))
    animals = [a for a in w.ANIMALS if a.habitat == habitat]
    lines = [f"Many animals live {habitat}."]
    lines += [r.choice(animal_sentences(a)["food"]) for a in animals]
    return " ".join(lines)


def doc_record(r: random.Random) -> str:
    kind = r.choice(["countries", "animals", "products"])
    if kind == "countries":
        recs = [{"country": c.name, "capital": c.capital, "continent": c.continent, "language": c.language}
                for c in r.sample(w.COUNTRIES, r.randint(2, 4))]
    elif kind == "animals":
        recs = [{"animal": a.name, "food": a.food, "habitat": a.habitat} for a in r.sample(w.ANIMALS, r.randint(2, 4))]
    else:
        recs = [{"product": p.name, "category": p.category, "price": p.price}
                for p in r.sample(w.PRODUCTS, r.randint(2, 4))]
    return f"Facts about {kind} as JSON:\n" + "\n".join(json.dumps(x) for x in recs)


# --------------------------------------------------------------------------------------------------- the corpus
GENERATORS = {"country": doc_country, "animal": doc_animal, "qa": doc_qa, "quiz": doc_quiz,
              "overview": doc_overview, "record": doc_record, "story": doc_story, "dialogue": doc_dialogue,
              "post": doc_post}


def generate_documents(seed: int = 0, n_docs: int = DEFAULT_N_DOCS) -> list[Document]:
    """n_docs distinct documents with their kinds, deterministic in `seed`."""
    if n_docs < 1:
        raise ConfigError(f"n_docs must be at least 1, got {n_docs}")
    r = random.Random(seed)
    kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
    docs, seen = [], set()
    for _ in range(50 * n_docs):  # bounded: small kinds can repeat, so skip duplicates but never loop forever
        kind = r.choices(kinds, weights)[0]
        text = GENERATORS[kind](r)
        if text not in seen:
            seen.add(text)
            docs.append(Document(kind, text))
            if len(docs) == n_docs:
                return docs
    raise ConfigError(f"could not generate {n_docs} distinct documents; ask for fewer")


def generate_corpus(seed: int = 0, n_docs: int = DEFAULT_N_DOCS) -> list[str]:
    """The corpus as a list of document texts (no end-of-text markers: the tokenizer adds them)."""
    return [d.text for d in generate_documents(seed, n_docs)]


def corpus_splits(seed: int = 0, n_docs: int = DEFAULT_N_DOCS,
                  val_fraction: float = 0.05) -> tuple[list[str], list[str]]:
    """(train_docs, val_docs): a seeded random `val_fraction` of the documents is held out. Documents are
    distinct, so the two lists share no document."""
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if n_docs < 2:
        raise ConfigError(f"n_docs must be at least 2 to split into train and validation, got {n_docs}")
    docs = generate_corpus(seed, n_docs)
    order = list(range(n_docs))
    random.Random(f"split-{seed}").shuffle(order)
    n_val = min(n_docs - 1, max(1, round(n_docs * val_fraction)))
    val_idx = set(order[:n_val])
    return ([d for i, d in enumerate(docs) if i not in val_idx], [d for i, d in enumerate(docs) if i in val_idx])


def corpus_stats(docs: list[str] | list[Document]) -> dict:
    """Size of a corpus: documents, characters, words, and the count per kind when given Documents."""
    texts = [d.text if isinstance(d, Document) else d for d in docs]
    stats = {"docs": len(texts), "chars": sum(map(len, texts)), "words": sum(len(t.split()) for t in texts)}
    if docs and isinstance(docs[0], Document):
        stats["kinds"] = dict(sorted(Counter(d.kind for d in docs).items()))
    return stats
