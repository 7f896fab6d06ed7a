"""Prompting a base instead of fine-tuning it: the few-shot layouts, the verbalizer, and the scores' shape."""

from __future__ import annotations

import pytest

from minift.data.task_data import TaskData, load_task_data
from minift.errors import ConfigError
from minift.finetune.chat import chat_ids
from minift.finetune.prompting import as_questions, evaluate_prompted, verbalize, with_shots
from minift.finetune.sft import _prompt_ids
from minift.finetune.templates import ALPACA, CHATML, PLAIN

SHOTS = [{"instruction": "Capital of Spain?", "input": "", "output": "Madrid."},
         {"instruction": "Say it loud.", "input": "hello", "output": "HELLO!"}]
QUESTION = {"instruction": "Capital of France?", "input": "", "output": "Paris."}


def test_the_verbalizer_reads_the_first_label_named():
    labels = ["negative", "neutral", "positive"]
    assert verbalize("This review is Negative.", labels) == "negative"
    assert verbalize("positive, not negative", labels) == "positive"
    assert verbalize("non-negative", labels) is None  # whole words only
    assert verbalize("I cannot tell.", labels) is None


def test_a_labelled_example_becomes_its_text_then_the_question():
    td = TaskData("t", "labelled", {"train": [], "test": [{"text": "Great pizza.", "label": "positive"}]},
                  ["negative", "positive"])
    [q] = as_questions(td, td.splits["test"])
    assert q == {"instruction": "Great pizza.\n\nIs this text negative or positive? Answer with one word.",
                 "input": "", "output": "positive"}


def test_few_shot_is_worked_turns_for_a_chat_model_and_blocks_otherwise(chat_tok):
    convo = with_shots(QUESTION, SHOTS, CHATML)
    roles = [m["role"] for m in convo["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert convo["messages"][3]["content"] == "HELLO!" and convo["messages"][2]["content"] == "Say it loud.\n\nhello"
    # the model reads the worked turns, then the question, and must write the answer
    assert _prompt_ids(chat_tok, convo, CHATML) == chat_ids(chat_tok, convo["messages"][:-1])
    text = with_shots(QUESTION, SHOTS, ALPACA)
    assert text.startswith(ALPACA.format_prompt("Capital of Spain?") + ALPACA.response_text("Madrid."))
    assert text.endswith(ALPACA.format_prompt("Capital of France?"))
    assert with_shots(QUESTION, [], PLAIN) == PLAIN.format_prompt("Capital of France?")


def test_a_base_is_scored_prompted_like_a_run(quick_base):
    model, tok = quick_base
    td = load_task_data("qa")
    zero, samples = evaluate_prompted(model, tok, td, PLAIN, n_eval=4)
    two, _ = evaluate_prompted(model, tok, td, PLAIN, shots=2, n_eval=4)
    for m in (zero, two):
        assert set(m) == {"test", "heldout"} and m["test"]["n"] == 4 and 0.0 <= m["test"]["exact_match"] <= 1.0
    assert samples[0]["reference"] == td.splits["test"][0]["output"]
    sentiment, _ = evaluate_prompted(model, tok, load_task_data("sentiment"), PLAIN, n_eval=4)
    assert set(sentiment["test"]) == {"accuracy", "no_label", "n"}
    with pytest.raises(ConfigError, match="shots"):
        evaluate_prompted(model, tok, td, PLAIN, shots=10**6)
