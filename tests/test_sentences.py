"""The one sentence splitter, and the three places that cut text with it."""

from __future__ import annotations

import numpy as np
import pytest
from seal_rag.answer import extractive_answer
from seal_rag.chunking import chunk_section
from seal_rag.loaders import Section
from seal_rag.sentences import context_without, split_sentences
from seal_rag.store import Hit

KENNEDY = (
    "Apollo program\n\n"
    "President John F. Kennedy set the goal of landing a man on the Moon in a speech to Congress in May 1961. "
    "The U.S. Army and Dr. Wernher von Braun's team at the Marshall center in St. Louis, e.g. the Saturn group, built the rockets. "
    "Was it worth it? Many said yes! See Fig. 3 and No. 5 for the costs."
)


def test_initials_and_abbreviations_stay_inside_their_sentence():
    assert split_sentences(KENNEDY) == [
        "Apollo program",
        "President John F. Kennedy set the goal of landing a man on the Moon in a speech to Congress in May 1961.",
        "The U.S. Army and Dr. Wernher von Braun's team at the Marshall center in St. Louis, e.g. the Saturn group, built the rockets.",
        "Was it worth it?",
        "Many said yes!",
        "See Fig. 3 and No. 5 for the costs.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('He said "Go." Then he left.', ['He said "Go."', "Then he left."]),
        ("It ended in World War II. The peace followed.", ["It ended in World War II.", "The peace followed."]),
        ("Apples, pears, etc. The rest rotted.", ["Apples, pears, etc.", "The rest rotted."]),
        ("Wait... Then it came.", ["Wait...", "Then it came."]),
        ("A title\n\nno stop at its end", ["A title", "no stop at its end"]),
    ],
)
def test_sentence_ends(text, expected):
    assert split_sentences(text) == expected


def test_chunks_never_end_at_an_initial():
    chunks = chunk_section(Section("a.txt", "Apollo", KENNEDY), chunk_chars=120, overlap_chars=0)
    assert not any(c.text.endswith(("F.", "Dr.", "St.", "U.S.")) for c in chunks)
    assert any(split_sentences(KENNEDY)[1] in c.text for c in chunks)


def test_context_without_removes_whole_sentences():
    rest = context_without(KENNEDY, 1)
    assert "Kennedy" not in rest and "The U.S. Army" in rest


def test_extractive_answer_is_the_whole_sentence(embedding):
    hits = [Hit(1, "apollo", 0.5, KENNEDY, {})]
    query = embedding.embed_texts(["Which president set the goal of landing on the Moon?"])[0]
    answer = extractive_answer(embedding, np.asarray(query), hits)
    assert answer.startswith("President John F. Kennedy set the goal") and answer.endswith("May 1961.")


@pytest.mark.parametrize("text", ["Contents" + "." * 200_000 + "1", "?" * 200_000 + "x", "Go. " * 50_000 + "Stop."])
def test_long_runs_of_stops_and_long_paragraphs_split_in_linear_time(text):
    """A table of contents' dot leaders or one huge paragraph must not stall an ingest: before the
    fix, 16,000 dots took 6 s and 200,000 would take about 15 minutes (quadratic)."""
    import time

    began = time.perf_counter()
    sentences = split_sentences(text)
    assert time.perf_counter() - began < 5  # linear: about 0.02 s here
    assert "".join(sentences).replace(" ", "") == text.replace(" ", "")  # nothing lost
