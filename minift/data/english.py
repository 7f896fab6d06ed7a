"""A fixed sample of general English, written for minift: the forgetting probe of a base whose pretraining text we
do not have (a real model such as SmolLM2). Forgetting is then measured as the change in next-token loss on these
paragraphs before and after fine-tuning; a model that keeps its general English keeps this loss.

The paragraphs are everyday prose on varied topics (no facts about minift's built-in world, no task formats), so a
fine-tuning task cannot teach them. The text never changes: the same probe for every run. PROMPTS are general
questions whose greedy answers before and after fine-tuning are compared (minift/finetune/forgetting.py).
"""

from __future__ import annotations

PARAGRAPHS = (
    "The morning market opens before sunrise. Farmers arrive with crates of apples, onions and fresh bread, and the "
    "first customers are usually the bakers and cooks who need ingredients for the day. By nine o'clock the square "
    "is crowded, and the smell of coffee drifts over the stalls.",
    "Learning to ride a bicycle takes patience. Most children fall a few times before they find their balance, and "
    "the trick is to keep pedalling instead of stopping when the bike starts to wobble. Once the skill is learned, "
    "it is rarely forgotten, even after many years without practice.",
    "Rain fell all night, and by dawn the river had risen above its banks. The low fields near the bridge were under "
    "water, and a few roads were closed until the afternoon. People in the village watched from the hill and "
    "talked about the great flood their grandparents still remembered.",
    "A good letter is short and clear. It says why it was written in the first sentence, gives the details the "
    "reader needs, and ends with what should happen next. Long introductions and vague promises make a letter "
    "harder to answer.",
    "The library on the corner has been there for more than a century. Its wooden shelves hold novels, atlases and "
    "old newspapers, and on winter evenings students fill the reading room because it is warm and quiet.",
    "Cooking rice well is simpler than many people think. Rinse the grains, use the right amount of water, bring it "
    "to a boil, then lower the heat and keep the lid closed. Letting the pot rest for ten minutes at the end makes "
    "the rice soft and even.",
    "Trains connect the small towns along the coast. The journey is slow, but the view of the sea, the cliffs and "
    "the fishing boats makes it one of the most pleasant rides in the country, especially in late summer.",
    "When the power went out, the whole street became dark at once. Neighbours came outside with candles and "
    "torches, someone brought a radio that ran on batteries, and for an hour the evening felt like a small party.",
    "Plants need light, water and air, but each kind needs them in different amounts. A cactus can survive weeks "
    "without water, while a fern on a sunny window will soon dry out. Reading the label before buying helps a lot.",
    "The old clock in the hall stopped at a quarter past three. Nobody knew how long it had been broken, because "
    "everyone in the house had stopped looking at it long ago and used their phones to check the time instead.",
    "Writing a computer program is a little like writing a recipe. Each step must be precise, the order matters, "
    "and a small mistake in one line can spoil the result. Testing each part as you go saves hours of searching "
    "for errors later.",
    "In spring the park fills with birds. Some have flown thousands of kilometres from warmer places, and they "
    "return to the same trees year after year to build their nests and raise their young.",
    "The meeting lasted longer than planned. Everyone agreed that the project was important, but no one agreed on "
    "how to pay for it, and in the end they decided to meet again the following week with better numbers.",
    "A walk in the mountains requires good shoes, enough water and a map. The weather can change quickly at high "
    "altitude, so experienced walkers always carry a warm jacket, even when the day begins bright and clear.",
    "My grandmother kept every letter she ever received. After she died, we found boxes of them in the attic, tied "
    "with ribbon and sorted by year, telling the story of her life in other people's words.",
    "Most cities grew around rivers, harbours or crossroads, because trade needed places where goods could be "
    "moved easily. Today many of those old routes are motorways and railway lines, but the pattern is the same.",
    "Sleep is not wasted time. While we rest, the body repairs itself and the brain sorts the events of the day, "
    "which is why a good night's sleep often makes a difficult problem easier to solve in the morning.",
    "The children built a small boat out of wood and string and set it on the pond. It drifted slowly towards the "
    "middle, turned in the wind, and came back to the shore, where they cheered as if it had crossed an ocean.",
    "Good teachers ask questions more often than they give answers. A question makes students think for "
    "themselves, and what they work out on their own they usually remember far longer than what they are told.",
    "The festival ended with music in the square. Lanterns hung between the houses, families danced until late, "
    "and the next morning the streets were quiet again, as if nothing had happened.",
)

TEXT = "\n\n".join(PARAGRAPHS)

# General questions whose greedy answers are compared before and after fine-tuning: the share answered word for
# word as the base model answered them is the second forgetting measure of a real model. Everyday knowledge and
# skills, nothing from minift's built-in tasks.
PROMPTS = (
    "What is the capital of France?",
    "How many days are there in a week?",
    "Name three colours of the rainbow.",
    "What do bees make?",
    "Give me a synonym for happy.",
    "What is the boiling point of water in degrees Celsius?",
    "Translate 'thank you' into Spanish.",
    "Which planet is closest to the Sun?",
    "Write one sentence about the sea.",
    "What is 12 plus 7?",
    "Who wrote Romeo and Juliet?",
    "What is the opposite of cold?",
    "How many legs does a spider have?",
    "What language is spoken in Brazil?",
    "Suggest a name for a pet cat.",
    "What season comes after winter?",
)
