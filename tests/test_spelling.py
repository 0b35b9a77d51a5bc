"""Spelling a recognized phoneme string with a knowledge base's words (seal_rag.spelling), and the
spelled semantic half of a spoken query (`KBDecoder.query_vector` for a model with `spelled_weight`)."""

from collections import Counter

import numpy as np
import pytest

from seal_rag.phonetic import phonemize, phonemize_words
from seal_rag.spelling import Speller, common_words, words_of

KB = ["Joseph Priestley discovered oxygen in 1774.", "The Khwarezmian Empire fell to the Mongols.",
      "Their house stood there, by the Rhine."]


@pytest.fixture(scope="module")
def speller():
    return Speller.from_texts(KB)


def test_words_of_keeps_letters_digits_and_inner_apostrophes():
    assert words_of("Newton's 3 laws, don't they? (co-op) _x_") == ["newton's", "3", "laws", "don't", "they", "co", "op", "x"]


def test_a_knowledge_base_word_said_exactly_is_spelled_back(speller):
    assert speller.spell(phonemize("Priestley discovered oxygen")) == "priestley discovered oxygen"
    assert speller.spell(phonemize("the Khwarezmian Empire")) == "the khwarezmian empire"


def test_a_slightly_misheard_word_takes_the_nearest_pronunciation(speller):
    heard = phonemize("Khwarezmian").replace("z", "s")  # one symbol wrong: no exact entry
    assert heard not in speller.pronunciations
    assert speller.word(heard) == "khwarezmian"


def test_a_word_near_nothing_known_is_left_out(speller):
    assert speller.word("ʒʒʒʒʒʒʒ") is None
    assert speller.spell(f"ʒʒʒʒʒʒʒ {phonemize('oxygen')}") == "oxygen"
    assert speller.spell("") == ""


def test_homophones_take_the_knowledge_bases_more_frequent_spelling():
    pronunciation = phonemize_words(["kernel"])[0]
    assert phonemize_words(["colonel"])[0] == pronunciation  # the same sounds, and neither a common word
    assert Speller.from_counts(Counter({"kernel": 1, "colonel": 5})).word(pronunciation) == "colonel"
    assert Speller.from_counts(Counter({"kernel": 5, "colonel": 1})).word(pronunciation) == "kernel"


def test_common_question_words_are_known_whatever_the_knowledge_base():
    words = common_words()
    assert len(words) == 3000 and {"what", "which", "century"} <= set(words)
    empty = Speller.from_texts([])
    assert empty.spell(phonemize("what century")) == "what century"


def test_arrays_round_trip(speller):
    again = Speller.from_arrays(speller.arrays())
    assert again.pronunciations == speller.pronunciations and again.spellings == speller.spellings
    heard = phonemize("Khwarezmian").replace("z", "s")
    assert again.word(heard) == speller.word(heard)
    broken = dict(speller.arrays(), spellings=np.frombuffer(b"one", np.uint8))
    with pytest.raises(ValueError, match="spellings"):
        Speller.from_arrays(broken)


def test_only_the_most_frequent_words_are_kept_and_lookups_are_remembered(monkeypatch):
    from seal_rag import spelling

    monkeypatch.setattr(spelling, "MAX_WORDS", 3002)  # the common words are the most frequent, then the knowledge base's
    speller = Speller.from_counts(Counter({"khwarezmia": 5, "tenochtitlan": 2, "xochimilco": 1}))
    assert "khwarezmia" in speller.spellings and "xochimilco" not in speller.spellings
    heard = phonemize("Khwarezmia").replace("z", "s")
    assert speller.word(heard) == speller.word(heard) == "khwarezmia" and speller.word.cache_info().hits == 1
