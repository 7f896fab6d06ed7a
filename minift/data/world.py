"""The small world minift's base model learns about, as plain data.

Every piece of text minift trains on — the pretraining corpus (corpus.py, stories.py) and the fine-tuning tasks
built later (question answering, sentiment, JSON output, style) — talks about the same small world, defined here:

* COUNTRIES — 43 real countries with their capital, continent and main official language;
* ANIMALS — 32 real animals with what they eat, where they live, their legs and (for some) their sound;
* PRODUCTS — what the world's shops sell, each with a category and a fixed whole-number price in dollars;
* PEOPLE, TOWNS, COLOURS, WEATHER, DISHES — names and words for stories, dialogues and posts;
* TOPICS and the POSITIVE_* / NEGATIVE_* word lists — what posts are about and how their sentiment is expressed.

Why one fixed world? A model with a few million parameters, pretrained for minutes on a CPU, can only learn a small
vocabulary and a few hundred facts. If fine-tuning later asks "What is the capital of France?", the answer must
already be in the base model, so the facts live here once and both the corpus and the task data read them from
here. The real-world facts are true (public reference knowledge: capitals, continents, what animals eat), so a
learner can check the model's answers against what they already know. The shop, its prices, the people and the
towns are invented but fixed, so they too are "facts" the model can learn.

Names are ASCII only ("Bogota", "Brasilia", "Reykjavik") to keep the vocabulary small. No country name needs "the"
in front of it, so templates such as f"the capital of {c.name}" are always grammatical.
"""

from __future__ import annotations

from dataclasses import dataclass


# --------------------------------------------------------------------------------------------------- countries
@dataclass(frozen=True)
class Country:
    name: str       # "France"
    capital: str    # "Paris"
    continent: str  # one of CONTINENTS
    language: str   # the main official language: "French"


CONTINENTS = ("Europe", "Asia", "Africa", "North America", "South America", "Oceania")

COUNTRIES: tuple[Country, ...] = (
    # Europe
    Country("France", "Paris", "Europe", "French"),
    Country("Germany", "Berlin", "Europe", "German"),
    Country("Spain", "Madrid", "Europe", "Spanish"),
    Country("Italy", "Rome", "Europe", "Italian"),
    Country("Portugal", "Lisbon", "Europe", "Portuguese"),
    Country("Greece", "Athens", "Europe", "Greek"),
    Country("Poland", "Warsaw", "Europe", "Polish"),
    Country("Sweden", "Stockholm", "Europe", "Swedish"),
    Country("Norway", "Oslo", "Europe", "Norwegian"),
    Country("Finland", "Helsinki", "Europe", "Finnish"),
    Country("Denmark", "Copenhagen", "Europe", "Danish"),
    Country("Austria", "Vienna", "Europe", "German"),
    Country("Hungary", "Budapest", "Europe", "Hungarian"),
    Country("Romania", "Bucharest", "Europe", "Romanian"),
    Country("Iceland", "Reykjavik", "Europe", "Icelandic"),
    Country("Croatia", "Zagreb", "Europe", "Croatian"),
    # Asia
    Country("Japan", "Tokyo", "Asia", "Japanese"),
    Country("China", "Beijing", "Asia", "Chinese"),
    Country("South Korea", "Seoul", "Asia", "Korean"),
    Country("Thailand", "Bangkok", "Asia", "Thai"),
    Country("Vietnam", "Hanoi", "Asia", "Vietnamese"),
    Country("India", "New Delhi", "Asia", "Hindi"),
    Country("Iran", "Tehran", "Asia", "Persian"),
    Country("Saudi Arabia", "Riyadh", "Asia", "Arabic"),
    Country("Mongolia", "Ulaanbaatar", "Asia", "Mongolian"),
    Country("Nepal", "Kathmandu", "Asia", "Nepali"),
    # Africa
    Country("Egypt", "Cairo", "Africa", "Arabic"),
    Country("Morocco", "Rabat", "Africa", "Arabic"),
    Country("Nigeria", "Abuja", "Africa", "English"),
    Country("Ghana", "Accra", "Africa", "English"),
    Country("Ethiopia", "Addis Ababa", "Africa", "Amharic"),
    # North America
    Country("Mexico", "Mexico City", "North America", "Spanish"),
    Country("Cuba", "Havana", "North America", "Spanish"),
    Country("Jamaica", "Kingston", "North America", "English"),
    Country("Panama", "Panama City", "North America", "Spanish"),
    # South America
    Country("Brazil", "Brasilia", "South America", "Portuguese"),
    Country("Argentina", "Buenos Aires", "South America", "Spanish"),
    Country("Peru", "Lima", "South America", "Spanish"),
    Country("Chile", "Santiago", "South America", "Spanish"),
    Country("Colombia", "Bogota", "South America", "Spanish"),
    Country("Venezuela", "Caracas", "South America", "Spanish"),
    # Oceania
    Country("Australia", "Canberra", "Oceania", "English"),
    Country("New Zealand", "Wellington", "Oceania", "English"),
)


# ----------------------------------------------------------------------------------------------------- animals
@dataclass(frozen=True)
class Animal:
    name: str          # singular: "cow"
    plural: str        # "cows"
    food: str          # what it eats, a noun phrase: "grass"
    habitat: str       # where it lives, a prepositional phrase: "on farms"
    diet: str          # "plants" (herbivore), "meat" (carnivore) or "both" (omnivore)
    legs: int | None   # None where "legs" is ambiguous (monkeys, kangaroos)
    sound: str | None  # the word for its sound ("moo"), None if it has no well-known one


ANIMALS: tuple[Animal, ...] = (
    Animal("cow", "cows", "grass", "on farms", "plants", 4, "moo"),
    Animal("horse", "horses", "grass and hay", "on farms", "plants", 4, "neigh"),
    Animal("sheep", "sheep", "grass", "on farms", "plants", 4, "baa"),
    Animal("pig", "pigs", "roots and grain", "on farms", "both", 4, "oink"),
    Animal("chicken", "chickens", "seeds and grain", "on farms", "both", 2, "cluck"),
    Animal("duck", "ducks", "water plants and insects", "on ponds", "both", 2, "quack"),
    Animal("dog", "dogs", "meat", "in houses with people", "both", 4, "woof"),
    Animal("cat", "cats", "meat and fish", "in houses with people", "meat", 4, "meow"),
    Animal("mouse", "mice", "seeds", "in fields", "both", 4, "squeak"),
    Animal("rabbit", "rabbits", "grass", "in fields", "plants", 4, None),
    Animal("frog", "frogs", "insects", "near ponds", "meat", 4, "croak"),
    Animal("owl", "owls", "mice", "in forests", "meat", 2, "hoot"),
    Animal("bee", "bees", "nectar", "in hives", "plants", 6, "buzz"),
    Animal("butterfly", "butterflies", "nectar", "in gardens", "plants", 6, None),
    Animal("spider", "spiders", "insects", "in gardens", "meat", 8, None),
    Animal("lion", "lions", "meat", "on the savanna", "meat", 4, "roar"),
    Animal("tiger", "tigers", "meat", "in forests", "meat", 4, "roar"),
    Animal("elephant", "elephants", "grass and leaves", "on the savanna", "plants", 4, None),
    Animal("giraffe", "giraffes", "leaves", "on the savanna", "plants", 4, None),
    Animal("zebra", "zebras", "grass", "on the savanna", "plants", 4, None),
    Animal("monkey", "monkeys", "fruit", "in jungles", "both", None, None),
    Animal("panda", "pandas", "bamboo", "in forests", "plants", 4, None),
    Animal("koala", "koalas", "eucalyptus leaves", "in trees", "plants", 4, None),
    Animal("kangaroo", "kangaroos", "grass", "in grasslands", "plants", None, None),
    Animal("camel", "camels", "desert plants", "in the desert", "plants", 4, None),
    Animal("polar bear", "polar bears", "seals", "in the Arctic", "meat", 4, None),
    Animal("penguin", "penguins", "fish", "in Antarctica", "meat", 2, None),
    Animal("dolphin", "dolphins", "fish", "in the sea", "meat", 0, None),
    Animal("shark", "sharks", "fish", "in the sea", "meat", 0, None),
    Animal("squirrel", "squirrels", "nuts", "in trees", "both", 4, None),
    Animal("wolf", "wolves", "meat", "in forests", "meat", 4, "howl"),
    Animal("snake", "snakes", "mice", "in fields", "meat", 0, "hiss"),
)

DIET_WORD = {"plants": "herbivore", "meat": "carnivore", "both": "omnivore"}


# ---------------------------------------------------------------------------------------------------- the shop
@dataclass(frozen=True)
class Product:
    name: str      # as it is asked for, without an article: "pair of socks"
    category: str  # one of PRODUCT_CATEGORIES
    price: int     # whole dollars; fixed, so prices are learnable facts too


PRODUCT_CATEGORIES = ("food", "clothes", "books", "toys", "home")
CURRENCY = "dollar"  # singular; price_text() adds the plural "s"

PRODUCTS: tuple[Product, ...] = (
    Product("loaf of bread", "food", 2),
    Product("bottle of milk", "food", 1),
    Product("bag of apples", "food", 3),
    Product("jar of honey", "food", 6),
    Product("piece of cheese", "food", 5),
    Product("box of tea", "food", 4),
    Product("bar of chocolate", "food", 2),
    Product("scarf", "clothes", 12),
    Product("hat", "clothes", 15),
    Product("pair of socks", "clothes", 4),
    Product("raincoat", "clothes", 40),
    Product("pair of boots", "clothes", 55),
    Product("sweater", "clothes", 30),
    Product("cookbook", "books", 18),
    Product("atlas", "books", 20),
    Product("notebook", "books", 3),
    Product("storybook", "books", 9),
    Product("kite", "toys", 10),
    Product("ball", "toys", 6),
    Product("puzzle", "toys", 14),
    Product("teddy bear", "toys", 16),
    Product("lamp", "home", 25),
    Product("teapot", "home", 19),
    Product("umbrella", "home", 11),
    Product("candle", "home", 3),
)


# ------------------------------------------------------------------------------------------ people and places
@dataclass(frozen=True)
class Person:
    name: str
    pronoun: str  # "she" or "he"; possessive() and object_pronoun() derive the other forms


PEOPLE: tuple[Person, ...] = tuple(Person(n, "she") for n in (
    "Anna", "Clara", "Emma", "Grace", "Ivy", "Kate", "Lily", "Maya", "Nora", "Olivia", "Rosa", "Zoe")) + tuple(
    Person(n, "he") for n in ("Ben", "David", "Finn", "Hugo", "Jack", "Leo", "Max", "Noah", "Omar", "Paul", "Sam",
                              "Tom"))

TOWNS = ("Millbrook", "Riverton", "Oakvale", "Stonebridge", "Greenhill", "Westport", "Lakeside", "Pinewood")
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "brown", "orange", "purple", "grey")
WEATHER = ("sunny", "rainy", "windy", "cloudy", "snowy", "foggy")
DISHES = ("soup", "pizza", "cake", "pasta", "salad", "fish", "bread", "rice", "pie", "noodles")
PLACES_TO_EAT = ("cafe", "restaurant", "bakery")


# ----------------------------------------------------------------------------------------- topics, sentiment
TOPICS = ("food", "travel", "weather", "shopping", "animals")

# Clear, unambiguous sentiment. Adjectives fit "It was ___." / "The ___ was ___." in any topic.
POSITIVE_ADJECTIVES = ("wonderful", "great", "lovely", "excellent", "amazing", "fantastic", "perfect", "beautiful")
NEGATIVE_ADJECTIVES = ("terrible", "awful", "horrible", "disappointing", "dreadful", "bad", "unpleasant")
POSITIVE_PHRASES = ("I loved it.", "I would do it again.", "I am very happy.", "It made my day.",
                    "I recommend it to everyone.", "What a great time!")
NEGATIVE_PHRASES = ("I hated it.", "I will never do it again.", "I am very unhappy.", "It ruined my day.",
                    "I do not recommend it.", "What a waste of time!")
SENTIMENTS = ("positive", "negative")


# ---------------------------------------------------------------------------------------------------- helpers
def with_article(noun: str) -> str:
    """'a' or 'an' + noun, by the first letter (enough for this world's words): 'an umbrella', 'a kite'."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def price_text(price: int) -> str:
    """1 -> '1 dollar', 12 -> '12 dollars'."""
    return f"{price} {CURRENCY}" + ("" if price == 1 else "s")


def place_to_see(a: Animal) -> str:
    """Where a person in a story goes to see the animal: 'farm', 'park' (pets) or 'zoo'."""
    return {"on farms": "farm", "in houses with people": "park"}.get(a.habitat, "zoo")


def possessive(person: Person) -> str:
    return "her" if person.pronoun == "she" else "his"


def object_pronoun(person: Person) -> str:
    return "her" if person.pronoun == "she" else "him"


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def number_word(n: int) -> str:
    """3 -> 'three': 0 to 10 as words, any other number as digits."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def cap(s: str) -> str:
    """Capitalise the first letter only ('eucalyptus leaves' -> 'Eucalyptus leaves')."""
    return s[:1].upper() + s[1:]


_BY_COUNTRY = {c.name.lower(): c for c in COUNTRIES}
_BY_ANIMAL = {**{a.name.lower(): a for a in ANIMALS}, **{a.plural.lower(): a for a in ANIMALS}}
_BY_PRODUCT = {p.name.lower(): p for p in PRODUCTS}


def country(name: str) -> Country:
    """The Country called `name` (case-insensitive); KeyError if the world has none."""
    return _BY_COUNTRY[name.strip().lower()]


def capital_of(name: str) -> str:
    """capital_of('France') -> 'Paris'."""
    return country(name).capital


def continent_of(name: str) -> str:
    return country(name).continent


def language_of(name: str) -> str:
    return country(name).language


def animal(name: str) -> Animal:
    """The Animal called `name`, singular or plural, case-insensitive: animal('mice').name == 'mouse'."""
    return _BY_ANIMAL[name.strip().lower()]


def food_of(name: str) -> str:
    """food_of('cow') -> 'grass'."""
    return animal(name).food


def product(name: str) -> Product:
    return _BY_PRODUCT[name.strip().lower()]


def price_of(name: str) -> int:
    """price_of('scarf') -> 12 (dollars)."""
    return product(name).price


def countries_in(continent: str) -> list[Country]:
    return [c for c in COUNTRIES if c.continent == continent]
