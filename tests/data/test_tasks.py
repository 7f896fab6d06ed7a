"""Built-in tasks: deterministic, disjoint splits, labels that follow the stated rule, facts that are true."""

import json
import re
from collections import Counter

import pytest

from minift.data import world as w
from minift.data.corpus import generate_corpus
from minift.data.loaders import check_examples, load_jsonl
from minift.errors import ConfigError
from minift.data.metrics import check_json
from minift.data.tasks import (ASPECTS, JSON_SCHEMA, TASKS, export_task, follows_pirate_style, labelled_to_instruction,
                          load_task, pirate)


def key(ex):
    return ex["text"] if "text" in ex else (ex["instruction"], ex["input"])


@pytest.mark.parametrize("name", list(TASKS))
def test_deterministic_disjoint_and_well_formed(name):
    spec = TASKS[name]
    splits = {s: load_task(name, s) for s in spec.splits}
    assert splits == {s: load_task(name, s) for s in spec.splits}  # same seed, same data
    assert load_task(name, "train", seed=1) != splits["train"]  # another seed, other data
    seen = {}
    for s, examples in splits.items():
        assert examples, f"{name}/{s} is empty"
        assert check_examples(examples).report.kind == spec.kind
        keys = [key(e) for e in examples]
        assert len(set(keys)) == len(keys), f"duplicate inside {name}/{s}"
        for other, other_keys in seen.items():
            assert not set(keys) & other_keys, f"{name}: {s} shares examples with {other}"
        seen[s] = set(keys)


def test_sizes_and_balance():
    assert [len(load_task("sentiment", s)) for s in ("train", "val", "test")] == [500, 100, 200]
    pool = [e for s in ("train", "val", "test") for e in load_task("sentiment", s)]
    assert Counter(e["label"] for e in pool) == {"positive": 400, "negative": 400}
    assert set(Counter(e["construction"] for e in pool)) == {"plain", "negated", "but", "although"}
    three = load_task("sentiment", "train", neutral=True, n_train=90, n_val=0, n_test=0)
    assert len(three) == 90 and Counter(e["label"] for e in three) == {"positive": 30, "negative": 30, "neutral": 30}
    with pytest.raises(ConfigError):
        load_task("sentiment", "heldout")
    with pytest.raises(ConfigError):
        load_task("poetry", "train")


# an independent reading of the label rule: clause polarity = word polarity, flipped by "not"; "but" → the second
# clause decides; "although" → the other clause decides; "and" joins clauses that agree
POS = set(w.POSITIVE_ADJECTIVES) | {x for a in ASPECTS.values() for _, _, pos, _ in a for x in pos}
NEG = set(w.NEGATIVE_ADJECTIVES) | {x for a in ASPECTS.values() for _, _, _, neg in a for x in neg}


def polarity(clause):
    m = re.search(r"\b(was|were)( not)? (.+)$", clause)
    assert m and (m[3] in POS) != (m[3] in NEG), clause
    positive = (m[3] in POS) != bool(m[2])
    return "positive" if positive else "negative"


def oracle(text):
    closing = None
    for phrase in w.POSITIVE_PHRASES + w.NEGATIVE_PHRASES:
        if text.endswith(" " + phrase):
            text, closing = text[: -len(phrase) - 1], "positive" if phrase in w.POSITIVE_PHRASES else "negative"
    text = text.rstrip(".")
    if text.startswith("Although "):
        conceded, deciding = text[len("Although "):].split(", ", 1)
    elif ", although " in text:
        deciding, conceded = text.split(", although ")
    elif ", but " in text:
        conceded, deciding = text.split(", but ")
    else:
        labels = {polarity(c) for c in text.split(" and the ")}
        assert len(labels) == 1, text
        return labels.pop(), closing
    assert polarity(conceded) != polarity(deciding), text  # a mixed post really is mixed
    return polarity(deciding), closing


def test_sentiment_labels_follow_the_rule():
    for s in ("train", "val", "test"):
        for ex in load_task("sentiment", s):
            label, closing = oracle(ex["text"])
            assert label == ex["label"], ex
            assert closing in (None, label), ex
    assert oracle("The hotel was not noisy, but the people were rude.")[0] == "negative"
    assert oracle("Although the trains were late, the hotel was quiet.")[0] == "positive"


def test_posts_and_questions_use_the_corpus_vocabulary():
    vocab = set(re.findall(r"[a-z']+", " ".join(generate_corpus(0, n_docs=4000)).lower()))
    texts = [e["text"] for s in ("train", "val", "test") for e in load_task("sentiment", s, neutral=True)]
    texts += [e["instruction"] + " " + e["output"] for s in TASKS["qa"].splits for e in load_task("qa", s)]
    texts += [e["input"] for e in load_task("style", "train")]
    unseen = {x for t in texts for x in re.findall(r"[a-z']+", t.lower())} - vocab
    assert unseen <= {"although"}, unseen


def test_qa_answers_are_true_and_heldout_facts_never_fine_tuned():
    def up(s):
        return s[0].upper() + s[1:]

    check = {"capital": lambda c: w.country(c).capital, "capital_of": lambda c: w.country(c).name,
             "continent": w.continent_of, "language": w.language_of,
             "food": lambda a: up(w.food_of(a)), "habitat": lambda a: up(w.animal(a).habitat),
             "legs": lambda a: up(w.NUMBER_WORDS[w.animal(a).legs]),
             "sound": lambda a: up(w.animal(a).sound), "price": lambda p: w.price_text(w.price_of(p))}
    entities = {}
    for s in TASKS["qa"].splits:
        for ex in load_task("qa", s):
            kind_entity, _, fact = ex["fact"].rpartition(":")
            assert ex["output"] == check[fact](kind_entity.split(":", 1)[1]) + ".", ex
            entities.setdefault(s, set()).add(kind_entity)
    tuned = entities["train"] | entities["val"] | entities["test"]
    assert entities["heldout"] and not entities["heldout"] & tuned
    for kind, n in (("country", len(w.COUNTRIES)), ("animal", len(w.ANIMALS)), ("product", len(w.PRODUCTS))):
        held = sum(e.startswith(kind) for e in entities["heldout"])
        assert held == round(0.25 * n)  # a quarter of every kind of entity


def test_json_targets_are_compliant_and_agree_with_the_rule():
    for ex in load_task("json", "train") + load_task("json", "test"):
        assert check_json(ex["output"], JSON_SCHEMA) == (True, True, "ok")
        target = json.loads(ex["output"])
        assert target["sentiment"] == oracle(ex["input"])[0]
        assert list(target) == ["sentiment", "topic"]  # fixed key order


def test_pirate_rules():
    assert pirate("The capital of France is Paris.") == "Arr! The capital of France be Paris, matey!"
    assert pirate("Hello, Anna! How are you?") == "Arr! Ahoy, Anna! How be ye?"
    assert pirate("I am hungry, so I would like soup.") == "Arr! I be hungry, so I would like soup, matey!"
    for ex in load_task("style", "test"):
        assert ex["output"] == pirate(ex["input"]) and follows_pirate_style(ex["output"])
    assert not follows_pirate_style("Arr! The sky is blue, matey!")
    assert not follows_pirate_style("The capital of France be Paris.")


def test_export_roundtrip_and_instruction_view(tmp_path):
    n = export_task("qa", tmp_path / "qa.jsonl", split="heldout")
    loaded = load_jsonl(tmp_path / "qa.jsonl")
    assert n == len(loaded) and loaded.report.ignored_fields == ["fact"]
    assert [e["instruction"] for e in loaded] == [e["instruction"] for e in load_task("qa", "heldout")]
    sft = labelled_to_instruction(load_task("sentiment", "val"))
    assert sft[0]["input"] == load_task("sentiment", "val")[0]["text"] and sft[0]["output"] in ("positive", "negative")
