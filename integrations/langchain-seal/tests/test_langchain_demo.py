"""demos/langchain_audio_chain.py runs offline and retrieves the gold passage."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_demo_retrieves_the_gold_passage_and_answers(demo_runner, demo_questions):
    output = demo_runner.run("langchain_audio_chain.py")  # the default question, as a user runs it
    gold = next(q["gold_source"] for q in demo_questions if q["audio"] == "q1.wav")
    assert gold in demo_runner.sources(output)
    answer = output.split("Answer: ", 1)[1].split("\n", 1)[0]
    assert answer.strip()
