"""The built-in world and corpus: deterministic, true to the world's facts, each fact in several phrasings."""

import random
import re
from collections import Counter

import pytest

from minift.data import world as w
from minift.data.corpus import (DEFAULT_N_DOCS, KIND_WEIGHTS, corpus_splits, corpus_stats, generate_corpus,
                                generate_documents)
from minift.data.stories import make_post
from minift.errors import ConfigError

pytestmark = pytest.mark.xdist_group("corpus")  # its module-scoped fixtures are built once under pytest -n

# Independent literal tables (typed from general knowledge, not read from world.py).
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
            "Brazil": "Brasilia", "Australia": "Canberra", "Egypt": "Cairo", "Mexico": "Mexico City",
            "China": "Beijing", "South Korea": "Seoul", "Argentina": "Buenos Aires", "New Zealand": "Wellington",
            "Nigeria": "Abuja", "India": "New Delhi", "Norway": "Oslo"}
CONTINENTS = {"France": "Europe", "Japan": "Asia", "Brazil": "South America", "Egypt": "Africa",
              "Australia": "Oceania", "Mexico": "North America", "Iceland": "Europe", "Peru": "South America"}
LANGUAGES = {"France": "French", "Brazil": "Portuguese", "Mexico": "Spanish", "Japan": "Japanese",
             "Austria": "German", "Egypt": "Arabic"}
FOODS = {"cow": "grass", "panda": "bamboo", "koala": "eucalyptus leaves", "penguin": "fish", "bee": "nectar",
         "polar bear": "seals", "giraffe": "leaves"}
LEGS = {"spider": 8, "bee": 6, "chicken": 2, "cow": 4, "snake": 0, "dolphin": 0}


@pytest.fixture(scope="module")
def default_docs():
    return generate_documents(0)


# --------------------------------------------------------------------------------------------------- the world
def test_world_facts_match_independent_tables():
    for country, capital in CAPITALS.items():
        assert w.capital_of(country) == capital
    for country, continent in CONTINENTS.items():
        assert w.continent_of(country) == continent
    for country, language in LANGUAGES.items():
        assert w.language_of(country) == language
    for name, food in FOODS.items():
        assert w.food_of(name) == food
    for name, legs in LEGS.items():
        assert w.animal(name).legs == legs
    assert w.capital_of("  france ") == "Paris" and w.food_of("mice") == "seeds" and w.price_of("Scarf") == 12


def test_world_is_consistent():
    names = [c.name for c in w.COUNTRIES]
    assert len(names) == len(set(names)) >= 40
    assert len({c.capital for c in w.COUNTRIES}) == len(w.COUNTRIES)
    assert all(c.continent in w.CONTINENTS for c in w.COUNTRIES)
    assert len({a.name for a in w.ANIMALS}) == len(w.ANIMALS) >= 30
    assert all(a.diet in w.DIET_WORD and (a.legs is None or 0 <= a.legs <= 8) for a in w.ANIMALS)
    assert all(p.category in w.PRODUCT_CATEGORIES and p.price >= 1 for p in w.PRODUCTS)
    assert len({p.name for p in w.PRODUCTS}) == len(w.PRODUCTS)
    assert not set(w.POSITIVE_ADJECTIVES) & set(w.NEGATIVE_ADJECTIVES)
    assert {p.pronoun for p in w.PEOPLE} == {"she", "he"}
    with pytest.raises(KeyError):
        w.capital_of("Atlantis")


def test_world_helpers():
    assert w.with_article("umbrella") == "an umbrella" and w.with_article("kite") == "a kite"
    assert w.price_text(1) == "1 dollar" and w.price_text(12) == "12 dollars"
    assert [c.name for c in w.countries_in("Oceania")] == ["Australia", "New Zealand"]
    assert w.place_to_see(w.animal("cow")) == "farm" and w.place_to_see(w.animal("lion")) == "zoo"


# ------------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_text_and_no_global_rng():
    random.seed(123)
    state = random.getstate()
    a = generate_corpus(seed=5, n_docs=300)
    assert random.getstate() == state  # the global generator was neither used nor reseeded
    random.seed(999)
    assert generate_corpus(seed=5, n_docs=300) == a
    assert generate_corpus(seed=6, n_docs=300) != a
    assert generate_corpus(seed=5, n_docs=100) == a[:100]  # a prefix: more documents extend, never reshuffle


def test_splits_are_disjoint_and_cover_the_corpus():
    train, val = corpus_splits(seed=3, n_docs=1000, val_fraction=0.1)
    docs = generate_corpus(seed=3, n_docs=1000)
    assert len(val) == 100 and len(train) == 900
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(docs)
    assert corpus_splits(seed=3, n_docs=1000, val_fraction=0.1) == (train, val)
    assert len(set(docs)) == len(docs)  # documents are distinct, so "disjoint by document" means disjoint text


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        generate_corpus(n_docs=0)
    with pytest.raises(ConfigError):
        corpus_splits(n_docs=100, val_fraction=1.0)
    with pytest.raises(ConfigError):
        corpus_splits(n_docs=1)


# --------------------------------------------------------------------------------------------- size and kinds
def test_default_size_and_kinds(default_docs):
    stats = corpus_stats(default_docs)
    assert stats["docs"] == DEFAULT_N_DOCS
    assert 2_000_000 <= stats["chars"] <= 4_500_000
    assert set(stats["kinds"]) == set(KIND_WEIGHTS)
    assert all(n >= 0.02 * DEFAULT_N_DOCS for n in stats["kinds"].values())
    assert corpus_stats([d.text for d in default_docs[:10]])["chars"] == sum(len(d.text) for d in default_docs[:10])


def test_text_is_plain_ascii_and_has_no_template_leftovers(default_docs):
    for d in default_docs:
        assert d.text.isascii() and "None" not in d.text and "  " not in d.text
        if d.kind != "record":
            assert "{" not in d.text and "}" not in d.text
    text = "\n".join(d.text for d in default_docs)
    assert not re.search(r"\b[Aa] [aeiou]", text)  # "a umbrella"
    assert not re.search(r"\b[Aa]n (?!hour)[^aeiouAEIOU\s]", text)  # "an kite"


# ------------------------------------------------------------------------------------------ facts and phrasings
def test_every_capital_fact_appears_in_several_phrasings(default_docs):
    text = "\n".join(d.text for d in default_docs)
    for c in w.COUNTRIES:
        n, k = c.name, c.capital
        counts = [text.count(f"The capital of {n} is {k}"), text.count(f"{k} is the capital of {n}."),
                  text.count(f"capital city of {n} is {k}.") + text.count(f"{k} is the capital city of {n}."),
                  len(re.findall(rf"(Q|Question): What is the capital of {n}\?\n(A|Answer): ", text))]
        assert min(counts) >= 3, (n, counts)
        assert sum(counts) >= 50, (n, counts)


def test_every_animal_food_fact_appears_in_several_phrasings(default_docs):
    text = "\n".join(d.text for d in default_docs)
    for a in w.ANIMALS:
        forms = [f"{a.plural} eat {a.food}.", f"{w.with_article(a.name)} eats {a.food}.",
                 f"What do {a.plural} eat?"]
        counts = [text.lower().count(f.lower()) for f in forms]
        assert min(counts) >= 3, (a.name, counts)


def test_stated_facts_are_true(default_docs):
    """Parse facts back out of the text and compare them with the independent tables and with world.py."""
    text = "\n".join(d.text for d in default_docs)
    seen = Counter()
    for country, capital in re.findall(r"The capital of ([A-Z][a-z]+(?: [A-Z][a-z]+)?) is ([A-Z][A-Za-z ]+?)[.,]",
                                       text):
        assert CAPITALS.get(country, w.capital_of(country)) == capital
        seen[country] += 1
    assert all(seen[c] > 0 for c in CAPITALS)
    answers = re.findall(r"Q: What is the capital of ([A-Za-z ]+)\?\nA: ([^\n]+)", text)
    assert len(answers) > 100
    for country, answer in answers:  # short ("Paris.") or a sentence naming both the country and the capital
        assert answer == w.capital_of(country) + "." or (country in answer and w.capital_of(country) in answer)
    for country, lang in re.findall(r"People in ([A-Z][a-z]+(?: [A-Z][a-z]+)?) speak ([A-Z][a-z]+)\.", text):
        if country in LANGUAGES:
            assert LANGUAGES[country] == lang
    for animal, food in re.findall(r"(?:^|\. )([A-Z][a-z]+(?: [a-z]+)?) eat ([a-z ]+)\.", text, re.M):
        a = w.animal(animal)
        assert food == FOODS.get(a.name, a.food)


def test_prices_and_totals_in_dialogues_are_right(default_docs):
    text = "\n".join(d.text for d in default_docs if d.kind == "dialogue")
    stated = re.findall(r"The ([a-z ]+) (?:costs|is) (\d+) dollars?", text)
    assert len(stated) > 500
    for name, price in stated:
        assert w.price_of(name) == int(price)
    assert w.price_of("scarf") == 12 and w.price_of("bottle of milk") == 1  # pinned
    for d in default_docs:
        if d.kind == "dialogue" and "in total" in d.text:
            prices = [int(x) for x in re.findall(r"(\d+) dollars?", d.text)]
            assert prices[-1] == sum(prices[-3:-1])  # the two item prices, then their total


def test_posts_have_one_clear_sentiment(default_docs):
    pos_words, neg_words = set(w.POSITIVE_ADJECTIVES), set(w.NEGATIVE_ADJECTIVES)
    n_pos = n_neg = 0
    for d in default_docs:
        if d.kind != "post":
            continue
        words = set(re.findall(r"[a-z]+", d.text.lower()))
        has_pos, has_neg = bool(words & pos_words), bool(words & neg_words)
        assert has_pos != has_neg, d.text
        n_pos, n_neg = n_pos + has_pos, n_neg + has_neg
    assert 0.4 < n_pos / (n_pos + n_neg) < 0.6  # balanced


def test_make_post_follows_the_requested_topic_and_sentiment():
    r = random.Random(0)
    markers = {"food": ("I had ",), "travel": ("the capital of",), "weather": ("the weather was",),
               "shopping": ("at the shop",), "animals": ("to see the",)}
    for topic in w.TOPICS:
        for sentiment in w.SENTIMENTS:
            for _ in range(20):
                text = make_post(r, topic, sentiment)
                words = set(re.findall(r"[a-z]+", text.lower()))
                good, bad = words & set(w.POSITIVE_ADJECTIVES), words & set(w.NEGATIVE_ADJECTIVES)
                assert (bool(good), bool(bad)) == ((True, False) if sentiment == "positive" else (False, True))
                assert any(m in text for m in markers[topic]), (topic, text)
    with pytest.raises(ConfigError):
        make_post(r, "sports", "positive")
