"""The brand-voice rubric: the voice's own reference rewrite passes every check on every example of the task, and
each check fails on the one mistake it is there to catch."""

from __future__ import annotations

import pytest

from minift.data.rubric import RUBRIC, rubric_checks, rubric_scores
from minift.data.tasks import load_task, pirate
from minift.errors import InputError


def test_the_reference_rewrite_passes_every_check_and_the_plain_input_fails_the_greeting():
    inputs = [ex["input"] for split in ("train", "test") for ex in load_task("style", split)]
    assert rubric_scores(inputs, [pirate(s) for s in inputs]) == {**dict.fromkeys(RUBRIC, 1.0), "all": 1.0}
    plain = rubric_scores(inputs, inputs)
    assert plain["greeting"] == 0.0 and plain["all"] == 0.0 and plain["faithful"] == 1.0


@pytest.mark.parametrize("output, failed", [
    ("Sam be very happy today, matey!", "greeting"),
    ("Arr! Sam is very happy today, matey!", "vocabulary"),
    ("Arr! Sam be very happy today.", "sign-off"),
    ("Arr! Sam be happy today, matey!", "faithful"),               # "very" dropped
    ("Arr! Today Sam be very happy, matey!", "faithful"),          # reordered
    ("Arr! Sam be very very very very very happy today, matey!", "concise"),
])
def test_each_check_catches_its_mistake(output, failed):
    checks = rubric_checks("Sam is very happy today.", output)
    assert [name for name, ok in checks.items() if not ok] == [failed]


def test_a_question_keeps_its_mark_and_the_pairs_must_match():
    assert all(rubric_checks("Are you going to Lakeside with me?", "Arr! Be ye going to Lakeside with me?").values())
    assert not rubric_checks("Are you going?", "Arr! Be ye going, matey!")["sign-off"]
    with pytest.raises(InputError, match="one output per input"):
        rubric_scores(["a."], [])
