"""Built-in fine-tuning tasks about the base corpus's world (world.py): generated, seeded, exportable to JSONL.

    sentiment  {"text": post, "label": "positive" | "negative" [| "neutral"]}            classification
    qa         {"instruction": question, "input": "", "output": "Paris."}               instruction following
    json       {"instruction", "input": post, "output": '{"sentiment": "...", "topic": "..."}'}   format adherence
    style      {"instruction", "input": plain sentence, "output": the same in a pirate's voice}     rewriting

`load_task(name, split, seed=0)` returns a list of example dicts; splits are "train", "val", "test" (and "heldout"
for qa). The same (name, seed) always gives the same examples, from the task's own `random.Random` (never the
global generator). Every split is drawn without replacement from one pool of distinct examples, so no two splits
share an example (tests check it).

Sentiment label rule (what makes the task more than word counting). Every clause has a polarity: the polarity of
its opinion word, flipped by "not" ("was not bad" is positive). A post's label is the polarity of the clause that
decides: the clause after "but", and the clause that is *not* introduced by "although" (the conceded clause never
decides). Closing phrases, when present, agree with the label. So a bag of words sees "great" and "slow" in
"the pizza was great, but the service was slow" and cannot tell which decides. Posts carry a "construction" field
(plain / negated / but / although / neutral) so accuracy can be broken down by construction. Every word of a post
is a word the pretraining corpus uses, except the connective "although" (new on purpose: a construction the base
has never seen).

QA: facts are asked in several phrasings. A quarter of the countries, animals and products (all their facts) are
held out of every fine-tuning split and form the "heldout" split: their answers can only come from pretraining,
so a fine-tuned model that answers them learned the *format* from fine-tuning and the *facts* from the corpus.
The other examples (fact × phrasing) are shuffled into train / val / test, so a test question was never trained
on, though training often asked the same fact in another phrasing: test measures the taught facts, heldout the
pretrained ones. Answers are the corpus's short answers ("Paris.", "Grass.", "12 dollars.").
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Callable

from minift.data import world as w
from minift.data.loaders import export_jsonl
from minift.data.metrics import json_metrics
from minift.errors import ConfigError


# ------------------------------------------------------------------------------------------------ posts
# per topic: the main subject (uses world's general opinion adjectives) and aspects with their own words, all
# words the corpus's posts use. aspect = (phrase, is_plural, positive words, negative words); {dish} and {animals}
# are filled once per post, so a post about "the fish" keeps talking about the fish
ASPECTS = {
    "food": [("the staff", True, ["friendly", "kind", "helpful"], ["rude", "slow"]),
             ("the {dish}", False, ["tasty", "hot and tasty"], ["cold", "cold and salty"])],
    "travel": [("the hotel", False, ["quiet", "comfortable", "clean"], ["dirty", "noisy"]),
               ("the trains", True, ["clean", "on time"], ["late", "slow", "crowded"]),
               ("the people", True, ["kind", "friendly"], ["rude"])],
    "weather": [("the air", False, ["fresh"], ["cold", "wet"]),
                ("the streets", True, ["clean", "quiet"], ["wet", "crowded"])],
    "shopping": [("the quality", False, ["very good", "excellent"], ["very poor", "bad"]),
                 ("the shop assistant", False, ["helpful", "friendly"], ["rude", "slow"]),
                 ("the shop", False, ["clean", "quiet"], ["crowded", "dirty"])],
    "animals": [("the keeper", False, ["kind", "helpful"], ["rude"]),
                ("the {animals}", True, ["playful", "friendly"], ["asleep", "sad", "tired"])],
}
# neutral posts state what happened, with no opinion word
NEUTRAL_TEMPLATES = {"food": "I had {dish} at the {place} in {town}.", "travel": "We went to {capital} for a week.",
                     "weather": "We walked to the shop in {town} this morning.",
                     "shopping": "I bought {a_product} at the shop in {town}.",
                     "animals": "We saw some {animals} in {town} today."}


def _subjects(r: random.Random, topic: str) -> list[tuple[str, bool, list, list]]:
    """The main subject (general opinion adjectives) followed by the topic's aspects, filled in for one post."""
    town, dish, animals = r.choice(w.TOWNS), r.choice(w.DISHES), r.choice(w.ANIMALS).plural
    main = {"food": f"the food at the {r.choice(w.PLACES_TO_EAT)} in {town}",
            "travel": f"our trip to {r.choice(w.COUNTRIES).capital}",
            "weather": f"the weather in {town} today",
            "shopping": f"the {r.choice(w.PRODUCTS).name} I bought in {town}",
            "animals": f"our visit to see the {animals}"}[topic]
    aspects = [(p.format(dish=dish, animals=animals), pl, pos, neg) for p, pl, pos, neg in ASPECTS[topic]]
    return [(main, False, list(w.POSITIVE_ADJECTIVES), list(w.NEGATIVE_ADJECTIVES)), *aspects]


def _clause(r: random.Random, subject: str, plural: bool, pos: list, neg: list, polarity: str,
            negate: bool) -> str:
    """A clause with the given *resulting* polarity: with negation, the word comes from the opposite list."""
    word_positive = (polarity == "positive") != negate
    word = r.choice(pos if word_positive else neg)
    return f"{subject} {'were' if plural else 'was'}{' not' if negate else ''} {word}"


VERDICT_RATE = 0.25  # share of posts that end with a closing verdict ("Highly recommended."): a shortcut


def make_post(r: random.Random, label: str, construction: str | None = None) -> dict:
    """One post with the given label: {"text", "label", "topic", "construction", "verdict"}.

    A quarter of the posts (VERDICT_RATE) end with a closing verdict phrase of their label's polarity ("Highly
    recommended."). Real reviews do that, and it is a *shortcut*: a post with a verdict can be labelled from that
    one phrase, whatever its "but" or "although" clauses say — so a bag of words scores well even on the mixed
    constructions. "verdict" holds the phrase ("" when there is none), so that `build_sentiment(verdicts=False)`
    can take it off and leave every post otherwise the same. Labels follow the generator's rule (the clause after
    "but", the clause not introduced by "although"), not a reader's judgement: a reader may call some "but" posts
    mixed."""
    topic = r.choice(w.TOPICS)
    if label == "neutral":
        text = NEUTRAL_TEMPLATES[topic].format(
            capital=r.choice(w.COUNTRIES).capital, a_product=w.with_article(r.choice(w.PRODUCTS).name),
            town=r.choice(w.TOWNS), dish=r.choice(w.DISHES), place=r.choice(w.PLACES_TO_EAT),
            animals=r.choice(w.ANIMALS).plural)
        return {"text": text, "label": label, "topic": topic, "construction": "neutral", "verdict": ""}
    other = "negative" if label == "positive" else "positive"
    main, *aspects = _subjects(r, topic)
    construction = construction or r.choices(["plain", "negated", "but", "although"], [3, 2, 3, 2])[0]
    if construction == "plain":
        text = w.cap(_clause(r, *main, label, False))
        if r.random() < 0.5:
            text += " and " + _clause(r, *r.choice(aspects), label, False)
        text += "."
    elif construction == "negated":
        text = w.cap(_clause(r, *main, label, True)) + "."
    else:  # two clauses of opposite polarity; the deciding one has the label
        first, second = r.sample([main, *aspects], 2)
        conceded = _clause(r, *first, other, r.random() < 0.3)
        deciding = _clause(r, *second, label, r.random() < 0.3)
        if construction == "but":
            text = f"{w.cap(conceded)}, but {deciding}."
        elif r.random() < 0.5:
            text = f"Although {conceded}, {deciding}."
        else:
            text = f"{w.cap(deciding)}, although {conceded}."
    verdict = ""
    if r.random() < VERDICT_RATE:
        verdict = r.choice(w.POSITIVE_PHRASES if label == "positive" else w.NEGATIVE_PHRASES)
        text += " " + verdict
    return {"text": text, "label": label, "topic": topic, "construction": construction, "verdict": verdict}


# ------------------------------------------------------------------------------------------------ qa facts
def _facts() -> list[tuple[str, str, list[str], str]]:
    """Every askable fact: (entity id, fact kind, question phrasings, answer)."""
    facts = []
    for c in w.COUNTRIES:
        e = f"country:{c.name}"
        facts += [(e, "capital", [f"What is the capital of {c.name}?", f"Which city is the capital of {c.name}?",
                                  f"What is the capital city of {c.name}?"], f"{c.capital}."),
                  (e, "capital_of", [f"{c.capital} is the capital of which country?",
                                     f"Which country has {c.capital} as its capital?"], f"{c.name}."),
                  (e, "continent", [f"Which continent is {c.name} in?", f"On which continent is {c.name}?"],
                   f"{c.continent}."),
                  (e, "language", [f"What language do people speak in {c.name}?",
                                   f"What is the main language of {c.name}?"], f"{c.language}.")]
    for a in w.ANIMALS:
        e, one = f"animal:{a.name}", w.with_article(a.name)
        facts += [(e, "food", [f"What do {a.plural} eat?", f"What does {one} eat?"], f"{w.cap(a.food)}."),
                  (e, "habitat", [f"Where do {a.plural} live?", f"Where does {one} live?"], f"{w.cap(a.habitat)}.")]
        if a.legs:  # None (ambiguous) and 0 are left out: "Zero." would be a poor answer to learn
            facts.append((e, "legs", [f"How many legs does {one} have?"], f"{w.cap(w.NUMBER_WORDS[a.legs])}."))
        if a.sound:
            facts.append((e, "sound", [f"What sound does {one} make?"], f"{w.cap(a.sound)}."))
    for p in w.PRODUCTS:
        facts.append((f"product:{p.name}", "price", [f"How much is the {p.name} at the shop?",
                                                     f"How much does {w.with_article(p.name)} cost?"],
                      f"{w.cap(w.price_text(p.price))}."))
    return facts


# ------------------------------------------------------------------------------------------------ style
PIRATE_WORDS = {"is": "be", "are": "be", "am": "be", "my": "me", "you": "ye", "hello": "ahoy"}
STYLE_INSTRUCTION = "Rewrite the sentence in a pirate's voice."


def pirate(sentence: str) -> str:
    """The pirate voice, as three fixed rules: start with "Arr! "; swap is/are/am → be, my → me, you → ye,
    hello → ahoy (keeping a capital letter); a final "." becomes ", matey!"."""
    out = []
    for token in sentence.split(" "):
        core = token.rstrip(".,!?")
        swap = PIRATE_WORDS.get(core.lower())
        out.append((w.cap(swap) if core[:1].isupper() else swap) + token[len(core):] if swap else token)
    text = " ".join(out)
    text = text[:-1] + ", matey!" if text.endswith(".") else text
    return "Arr! " + text


def _plain_sentence(r: random.Random) -> str:
    c, a, p = r.choice(w.COUNTRIES), r.choice(w.ANIMALS), r.choice(w.PRODUCTS)
    person, town = r.choice(w.PEOPLE), r.choice(w.TOWNS)
    return r.choice([
        f"The capital of {c.name} is {c.capital}.", f"People in {c.name} speak {c.language}.",
        f"{w.cap(a.plural)} eat {a.food}.", f"{w.cap(w.with_article(a.name))} lives {a.habitat}.",
        f"The {p.name} costs {w.price_text(p.price)}.", f"{person.name} walked to the shop in {town}.",
        f"{person.name} is very happy today.", f"You are very kind, {person.name}.",
        f"My {r.choice(w.COLOURS)} {r.choice(['hat', 'scarf', 'kite', 'ball'])} is in the kitchen.",
        f"Hello, {person.name}! How are you?", f"The weather is {r.choice(w.WEATHER)} in {town} today.",
        f"My {p.name} is at home.", f"We are going to {c.capital} today.",
        f"I am hungry, so I would like {r.choice(w.DISHES)}.", f"Are you going to {town} with me?",
        f"{person.name} and I are at the {r.choice(w.PLACES_TO_EAT)}.",
    ])


def follows_pirate_style(text: str) -> bool:
    """The rules a pirate rewrite must satisfy, checkable without a reference: starts with "Arr! " and contains
    none of the words the voice replaces."""
    words = [t.strip(".,!?").lower() for t in text.split()]
    return text.startswith("Arr! ") and not any(t in PIRATE_WORDS for t in words)


# ------------------------------------------------------------------------------------------------ registry
SENTIMENT_INSTRUCTION = "Is this post positive or negative? Answer with one word."
JSON_INSTRUCTION = "Give the sentiment and the topic of this post as JSON."
JSON_SCHEMA: dict[str, list[str]] = {"sentiment": list(w.SENTIMENTS), "topic": list(w.TOPICS)}


def _distinct(r: random.Random, make: Callable[[int], dict], n: int, key: str) -> list[dict]:
    """n examples with distinct `key` values (duplicates regenerated; bounded so it cannot loop forever)."""
    out, seen = [], set()
    for i in range(50 * n):
        ex = make(len(out))
        if ex[key] not in seen:
            seen.add(ex[key])
            out.append(ex)
            if len(out) == n:
                return out
    raise ConfigError(f"could not generate {n} distinct examples; ask for fewer")


def _split(pool: list[dict], sizes: dict[str, int]) -> dict[str, list[dict]]:
    out, start = {}, 0
    for name, n in sizes.items():
        out[name], start = pool[start:start + n], start + n
    return out


def build_sentiment(seed: int, n_train: int = 500, n_val: int = 100, n_test: int = 200,
                    neutral: bool = False, verdicts: bool = True) -> dict[str, list[dict]]:
    """verdicts=False: the same posts without their closing verdict phrases (make_post's shortcut)."""
    r = random.Random(f"sentiment-{seed}")
    labels = ["positive", "negative", "neutral"] if neutral else ["positive", "negative"]
    pool = _distinct(r, lambda i: make_post(r, labels[i % len(labels)]), n_train + n_val + n_test, "text")
    if not verdicts:  # the same posts, drawn the same way, with the closing phrase taken off
        pool = [{**p, "text": p["text"].removesuffix(" " + p["verdict"]) if p["verdict"] else p["text"],
                 "verdict": ""} for p in pool]
    r.shuffle(pool)
    return _split(pool, {"train": n_train, "val": n_val, "test": n_test})


def build_json(seed: int, n_train: int = 400, n_val: int = 50, n_test: int = 100) -> dict[str, list[dict]]:
    r = random.Random(f"json-{seed}")
    pool = _distinct(r, lambda i: make_post(r, w.SENTIMENTS[i % 2]), n_train + n_val + n_test, "text")
    r.shuffle(pool)
    examples = [{"instruction": JSON_INSTRUCTION, "input": p["text"],
                 "output": json.dumps({"sentiment": p["label"], "topic": p["topic"]}),
                 "construction": p["construction"]} for p in pool]
    return _split(examples, {"train": n_train, "val": n_val, "test": n_test})


def build_qa(seed: int, heldout_fraction: float = 0.25, val_fraction: float = 0.1,
             test_fraction: float = 0.15) -> dict[str, list[dict]]:
    r = random.Random(f"qa-{seed}")
    facts = _facts()
    heldout = set()
    for kind in ("country", "animal", "product"):  # stratified: a quarter of each kind of entity
        entities = sorted({f[0] for f in facts if f[0].startswith(kind + ":")})
        heldout |= set(r.sample(entities, max(1, round(heldout_fraction * len(entities)))))
    examples = {"ft": [], "heldout": []}
    for entity, kind, questions, answer in facts:
        for q in questions:
            examples["heldout" if entity in heldout else "ft"].append(
                {"instruction": q, "input": "", "output": answer, "fact": f"{entity}:{kind}"})
    ft = examples["ft"]
    r.shuffle(ft)
    n_val, n_test = round(val_fraction * len(ft)), round(test_fraction * len(ft))
    out = _split(ft, {"val": n_val, "test": n_test, "train": len(ft) - n_val - n_test})
    out["heldout"] = examples["heldout"]
    return out


def build_style(seed: int, n_train: int = 400, n_val: int = 50, n_test: int = 100) -> dict[str, list[dict]]:
    r = random.Random(f"style-{seed}")
    pool = _distinct(r, lambda i: {"input": _plain_sentence(r)}, n_train + n_val + n_test, "input")
    examples = [{"instruction": STYLE_INSTRUCTION, "input": p["input"], "output": pirate(p["input"])} for p in pool]
    return _split(examples, {"train": n_train, "val": n_val, "test": n_test})


def pirate_metrics(texts: list[str]) -> dict:
    """The style task's extra number: the share of outputs that follow the pirate voice's rules."""
    return {"style_adherence": sum(map(follows_pirate_style, texts)) / len(texts)}


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task: how its examples are made and what, besides the common metrics, scores them.

    extra_metrics(predictions) → {name: value} is added to the common metrics of an instruction task (exact
    match) on every evaluated split: a new task brings its own numbers here and touches no other file.
    """

    name: str
    kind: str  # "labelled" or "instruction" (the record shapes of minift.data.loaders)
    build: Callable[..., dict[str, list[dict]]]
    splits: tuple[str, ...]
    metric: str  # the headline metric of its test split
    description: str
    labels: tuple[str, ...] = ()
    schema: dict = field(default_factory=dict)
    extra_metrics: Callable[[list[str]], dict] | None = None


TASKS: dict[str, TaskSpec] = {
    "sentiment": TaskSpec("sentiment", "labelled", build_sentiment, ("train", "val", "test"), "accuracy",
                          "short posts labelled positive / negative, with negation and mixed clauses",
                          labels=("negative", "positive")),
    "qa": TaskSpec("qa", "instruction", build_qa, ("train", "val", "test", "heldout"), "exact_match",
                   "questions about the world's facts; 'heldout' facts never appear in fine-tuning"),
    "json": TaskSpec("json", "instruction", build_json, ("train", "val", "test"), "json_compliance",
                     "post → {\"sentiment\": ..., \"topic\": ...} as strict JSON", schema=JSON_SCHEMA,
                     extra_metrics=lambda texts: json_metrics(texts, JSON_SCHEMA)),
    "style": TaskSpec("style", "instruction", build_style, ("train", "val", "test"), "exact_match",
                      "rewrite a plain sentence in a pirate's voice", extra_metrics=pirate_metrics),
}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; built-in tasks are {', '.join(TASKS)}")
    return TASKS[name]


def load_task(name: str, split: str, seed: int = 0, **options) -> list[dict]:
    """The examples of one split of a built-in task (fresh dicts: changing them changes nothing here).
    options go to the task's builder (e.g. sentiment: n_train=500, neutral=False)."""
    spec = get_task(name)
    if split not in spec.splits:
        raise ConfigError(f"task {name!r} has splits {', '.join(spec.splits)}, not {split!r}")
    return spec.build(seed, **options)[split]


def export_task(name: str, path, split: str = "train", seed: int = 0, **options) -> int:
    """Write one split as JSONL (atomically); returns the number of examples written."""
    return export_jsonl(load_task(name, split, seed, **options), path)


def labelled_to_instruction(examples: list[dict], instruction: str = SENTIMENT_INSTRUCTION) -> list[dict]:
    """Classification as generation: {"text", "label"} → {"instruction", "input": text, "output": label}."""
    return [{"instruction": instruction, "input": ex["text"], "output": ex["label"]} for ex in examples]
