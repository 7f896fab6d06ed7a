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

from . import world as w
from .errors import ConfigError

DEFAULT_N_DOCS = 13000  # ≈ 3.2 MB of text, generated in about 0.5 s

KIND_WEIGHTS = {"country": 22, "animal": 10, "qa": 14, "quiz": 7, "overview": 5, "record": 4,
                "story": 14, "dialogue": 10, "post": 14}


class Document(NamedTuple):
    kind: str  # one of KIND_WEIGHTS
    text: str


def cap(s: str) -> str:
    """Capitalise the first letter only ('eucalyptus leaves' -> 'Eucalyptus leaves')."""
    return s[:1].upper() + s[1:]


def number_word(n: int) -> str:
    return w.NUMBER_WORDS[n] if 0 <= n < len(w.NUMBER_WORDS) else str(n)


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


# ------------------------------------------------------------------------------------------------------ stories
WEATHER_ACTIVITY = {"sunny": "played in the park", "rainy": "jumped in the puddles", "windy": "flew a kite",
                    "cloudy": "went for a walk by the river", "snowy": "built a snowman",
                    "foggy": "went for a slow walk"}
FEELINGS = ("happy", "tired", "hungry", "excited", "sleepy")


def doc_story(r: random.Random) -> str:
    """One of five short plots; each sentence slot has a few variants, so no two stories are quite alike."""
    p, q = r.sample(w.PEOPLE, 2)
    he, his, him, town = p.pronoun, w.possessive(p), w.object_pronoun(p), r.choice(w.TOWNS)
    when = f"One {r.choice(w.WEATHER)} {r.choice(['morning', 'afternoon', 'day'])}"
    plot = r.randrange(5)
    if plot == 0:  # a trip to the shop
        it = r.choice(w.PRODUCTS)
        s = [f"{p.name} lived in {town}.", f"{when}, {he} walked to the shop to buy {w.with_article(it.name)}.",
             f"On the way, {he} met {q.name}.", f"\"Where are you going?\" asked {q.name}.",
             f"\"To the shop. I need {w.with_article(it.name)},\" said {p.name}.",
             f"At the shop, the shop assistant said, \"The {it.name} costs {w.price_text(it.price)}.\"",
             r.choice([f"{p.name} paid and went home happy.", f"{cap(he)} paid and thanked the shop assistant.",
                       f"{p.name} had enough money, so {he} bought it."])]
    elif plot == 1:  # a trip abroad
        c = r.choice(w.COUNTRIES)
        s = [f"{p.name} and {q.name} went on a trip to {c.name}.",
             r.choice([f"{c.name} is in {c.continent}, so it was a long way from {town}.",
                       f"They packed their bags and took a plane from {town}."]),
             r.choice([f"They stayed in {c.capital}, the capital of {c.name}.",
                       f"They visited {c.capital}, which is the capital of {c.name}."]),
             f"People there speak {c.language}, so {p.name} learned a few words of {c.language}.",
             f"They ate {r.choice(w.DISHES)} every day and walked around the city.",
             r.choice([f"{q.name} bought {w.with_article(r.choice(w.COLOURS) + ' hat')}.",
                       f"{p.name} sent a card to {his} family."]),
             f"After a week, they flew home to {town}.",
             r.choice([f"\"I loved {c.capital},\" said {p.name}.", f"They were {r.choice(FEELINGS)} but happy."])]
    elif plot == 2:  # meeting an animal
        a = r.choice(w.ANIMALS)
        s = [f"{when}, {p.name} went to the {w.place_to_see(a)} with {q.name}.",
             f"There they saw {w.with_article(a.name)}.", f"The {a.name} was eating {a.food}.",
             f"\"What do {a.plural} eat?\" asked {p.name}.", f"{q.name} said, \"{cap(a.plural)} eat {a.food}.\""]
        if a.sound:
            s.append(f"\"{cap(a.sound)}!\" said the {a.name}, and {p.name} laughed.")
        if a.legs:
            s.append(f"{p.name} counted the legs of the {a.name}. There were {number_word(a.legs)}.")
        s.append(f"{p.name} went home and drew a picture of the {a.name}.")
    elif plot == 3:  # a day of weather
        weather = r.choice(w.WEATHER)
        s = [f"It was a {weather} day in {town}.", f"{p.name} looked out of the window.",
             f"\"Let us go out,\" said {q.name}.", f"So {p.name} and {q.name} {WEATHER_ACTIVITY[weather]}.",
             f"{p.name} wore {his} {r.choice(w.COLOURS)} {r.choice(['scarf', 'hat', 'raincoat', 'sweater'])}.",
             f"In the evening, they were {r.choice(FEELINGS)}.",
             f"\"I like {weather} days,\" said {p.name}.", f"{q.name} said, \"Me too.\""]
    else:  # something lost and found
        colour = r.choice(w.COLOURS)
        thing = r.choice(["hat", "scarf", "ball", "kite", "umbrella", "notebook"])
        s = [f"{p.name} lost {his} {colour} {thing}.", f"{cap(he)} looked under the bed and in the garden.",
             f"{cap(he)} could not find it anywhere.", f"{cap(he)} asked {q.name} for help.",
             f"Then {q.name} found the {thing} {r.choice(['in the kitchen', 'at school', 'by the door'])}.",
             f"\"Thank you, {q.name}!\" said {p.name}.", f"{q.name} smiled at {him}."]
    if r.random() < 0.3:
        s.insert(0, r.choice(["This is a short story.", f"This is a story about {p.name}."]))
    return " ".join(s)


# ---------------------------------------------------------------------------------------------------- dialogues
NOT_SOLD = ("bicycles", "phones", "computers", "flowers", "shoes")


def doc_dialogue(r: random.Random) -> str:
    cust, shop = "Customer", "Shop assistant"
    it, other = r.sample(w.PRODUCTS, 2)
    lines = [f"{shop}: " + r.choice(["Good morning! How can I help you?", "Hello! What can I do for you?",
                                     "Hi! Are you looking for something?"]),
             f"{cust}: " + r.choice([f"Hello. How much is the {it.name}?",
                                     f"How much does {w.with_article(it.name)} cost?",
                                     f"I would like {w.with_article(it.name)}. How much is it?"]),
             f"{shop}: " + r.choice([f"The {it.name} costs {w.price_text(it.price)}.",
                                     f"It is {w.price_text(it.price)}."])]
    if it.category != "food" and r.random() < 0.5:
        c1, c2 = r.sample(w.COLOURS, 2)
        lines.append(f"{cust}: Do you have it in {c1}?")
        lines.append(f"{shop}: " + r.choice([f"Yes, we have it in {c1}.", f"Sorry, we only have it in {c2}."]))
    if r.random() < 0.5:
        total = it.price + other.price
        lines.append(f"{cust}: And {w.with_article(other.name)}, please.")
        lines.append(f"{shop}: The {other.name} is {w.price_text(other.price)}, so that is "
                     f"{w.price_text(total)} in total.")
    if r.random() < 0.3:
        thing = r.choice(NOT_SOLD)
        lines.append(f"{cust}: Do you sell {thing}?")
        lines.append(f"{shop}: Sorry, we do not sell {thing}. We sell food, clothes, books, toys and things "
                     "for the home.")
    lines.append(f"{cust}: " + r.choice(["Here you are. Thank you!", "Thank you, goodbye!", "Great, thanks."]))
    lines.append(f"{shop}: " + r.choice(["Thank you! Have a nice day.", "Goodbye!", "You are welcome."]))
    head = r.choice(["", f"At the shop in {r.choice(w.TOWNS)}.\n"])
    return head + "\n".join(lines)


# ---------------------------------------------------------------------------------------------- posts / reviews
DETAILS = {  # topic -> (positive details, negative details); {x} is filled per topic
    "food": (["The {x} was hot and tasty.", "The staff were friendly.", "The prices were fair."],
             ["The {x} was cold and salty.", "The staff were rude.", "We waited for an hour."]),
    "travel": (["The streets were clean and the people were kind.", "Our hotel was quiet and comfortable.",
                "We saw many beautiful places."],
               ["Our hotel was dirty and noisy.", "The trains were always late.", "It was crowded everywhere."]),
    "weather": (["The air was fresh.", "We spent the whole day outside.", "The children played in the park."],
                ["We stayed inside all day.", "My shoes got wet.", "The buses were late because of it."]),
    "shopping": (["The quality is very good.", "It was worth every dollar.", "The shop assistant was helpful."],
                 ["The quality is very poor.", "It was not worth the money.", "The shop assistant was rude."]),
    "animals": (["The {x} were playful and fun to watch.", "The keeper was kind and told us a lot.",
                 "The children loved the {x}."],
                ["The {x} were asleep, so we saw nothing.", "It was too crowded to see the {x}.",
                 "The {x} looked tired and sad."]),
}
GOOD_WEATHER, BAD_WEATHER = ("sunny", "snowy", "windy"), ("rainy", "foggy", "cloudy")


def make_post(r: random.Random, topic: str | None = None, sentiment: str | None = None) -> str:
    """A short post about `topic` (one of world.TOPICS) with a clear `sentiment` ("positive"/"negative"); either
    left as None is drawn at random. Fine-tuning tasks can call this to build labelled examples."""
    topic = topic if topic is not None else r.choice(w.TOPICS)
    sentiment = sentiment if sentiment is not None else r.choice(w.SENTIMENTS)
    if topic not in w.TOPICS or sentiment not in w.SENTIMENTS:
        raise ConfigError(f"topic must be one of {w.TOPICS} and sentiment one of {w.SENTIMENTS}, "
                          f"got {topic!r}, {sentiment!r}")
    good = sentiment == "positive"
    adj = r.choice(w.POSITIVE_ADJECTIVES if good else w.NEGATIVE_ADJECTIVES)
    town, x = r.choice(w.TOWNS), ""
    if topic == "food":
        x = r.choice(w.DISHES)
        first = f"I had {x} at the {r.choice(w.PLACES_TO_EAT)} in {town}. It was {adj}."
    elif topic == "travel":
        c = r.choice(w.COUNTRIES)
        first = f"We just came back from {c.capital}, the capital of {c.name}. The trip was {adj}."
    elif topic == "weather":
        weather = r.choice(GOOD_WEATHER if good else BAD_WEATHER)
        first = f"It was {weather} in {town} today, and the weather was {adj}."
    elif topic == "shopping":
        it = r.choice(w.PRODUCTS)
        first = (f"I bought {w.with_article(it.name)} at the shop in {town} for {w.price_text(it.price)}. "
                 f"It is {adj}.")
    else:
        a = r.choice(w.ANIMALS)
        x = a.plural
        first = f"We went to the {w.place_to_see(a)} in {town} to see the {x}. It was {adj}."
    details = r.sample(DETAILS[topic][0 if good else 1], 2)
    closing = r.choice(w.POSITIVE_PHRASES if good else w.NEGATIVE_PHRASES)
    if topic == "weather":  # "I do not recommend it" does not fit the weather
        closing = r.choice(["I love days like this.", "What a lovely day!"] if good else
                           ["I hate days like this.", "I hope tomorrow is better."])
    body = " ".join([first, *(d.format(x=x) for d in details), closing])
    if topic == "shopping" and r.random() < 0.5:
        body += f" Rating: {r.choice([4, 5]) if good else r.choice([1, 2])} out of 5."
    return body


def doc_post(r: random.Random) -> str:
    body, name = make_post(r), r.choice(w.PEOPLE).name
    return r.choice([body, f"Post by {name}:\n{body}", f"Review: {body}", f"{body}\n- {name}"])


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
