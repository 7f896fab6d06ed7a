"""The corpus's everyday text: short stories, shop dialogues, and posts/reviews with a clear sentiment.

corpus.py writes the world's facts as fact sheets (encyclopedia paragraphs, Q&A, quizzes, JSON records); the three
kinds here put the same world into running text, so the model also learns narrative, dialogue and opinion:

    story     one of five short plots with named people and towns: a trip to the shop, a trip abroad, meeting an
              animal, a day of weather, something lost and found
    dialogue  a customer and a shop assistant; prices always match world.PRODUCTS, so they are facts too
    post      a short post or review about one of world.TOPICS, clearly positive or negative (`make_post`, which
              the fine-tuning tasks can also call to build labelled examples)

Every function takes the corpus's `random.Random` and draws only from it, so the same seed gives the same text.
Each sentence slot has a few variants, so documents of one kind vary; corpus.py skips any exact repeat.
"""

from __future__ import annotations

import random

from minift.data import world as w
from minift.errors import ConfigError
from minift.data.world import cap, number_word


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
