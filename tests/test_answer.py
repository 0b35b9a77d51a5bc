"""The answering module's typed `Answer`: what rendering and the service read, for both kinds of answer."""

import numpy as np

from seal_rag.answer import Answer, extractive_answer
from seal_rag.errors import LLMError
from seal_rag.store import Hit

HITS = [Hit(1, "a", 0.5, "Apollo 11 landed on the Moon in July 1969. It carried three astronauts to lunar orbit.", {})]


def test_a_chat_models_answer_streams_once_then_holds_its_whole_text():
    answer = Answer.generated(iter(["The ", "Moon", "."]))
    assert answer.kind == "llm" and answer.text == ""
    assert list(answer.tokens()) == ["The ", "Moon", "."]
    assert answer.text == "The Moon." and answer.error is None and answer.seconds >= 0
    assert list(answer.tokens()) == [] and answer.text == "The Moon."  # a stream is read once


def test_a_chat_model_failing_mid_answer_keeps_what_came_and_says_why():
    def stream():
        yield "Partly "
        raise LLMError("the chat model at http://x stopped with an error (boom): check the server's logs")

    answer = Answer.generated(stream()).complete()
    assert answer.text == "Partly " and "stopped with an error" in answer.error


def test_an_extractive_answer_is_complete_at_once_and_is_the_extractive_sentence(embedding):
    query = embedding.embed_texts(["When did Apollo 11 land on the Moon?"])[0]
    answer = Answer.extractive(embedding, query, HITS)
    assert answer.kind == "extractive" and answer.error is None
    assert answer.text == extractive_answer(embedding, np.asarray(query), HITS) == "Apollo 11 landed on the Moon in July 1969."
    assert list(answer.tokens()) == []
