"""Keyword spotting re-ranking: CTC word alignment on known posteriors, and the shipped recognizer
finding a spoken word in the passage that holds it (real speech from demos/questions)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from seal_rag.audio import load_audio
from seal_rag.keyword_rerank import (
    KeywordReranker,
    KeywordSettings,
    log_posteriors,
    spot,
)
from seal_rag.phonetic import PHONEMES, phonemize
from seal_rag.store import Hit

QUESTIONS = Path(__file__).resolve().parents[1] / "demos" / "questions"
BLANK = len(PHONEMES)


def posteriors(path: str, sure: float = 0.9) -> np.ndarray:
    """Log posteriors whose best path is `path` ("_" a blank step), each step `sure` of its class."""
    rest = (1 - sure) / BLANK
    p = np.full((len(path), BLANK + 1), rest)
    for t, c in enumerate(path):
        p[t, BLANK if c == "_" else PHONEMES.index(c)] = sure
    return np.log(p).astype(np.float32)


def labels(*words: str) -> list[list[int]]:
    return [[PHONEMES.index(c) for c in w] for w in words]


def test_a_word_on_the_best_path_costs_nothing_wherever_it_is_said():
    said = posteriors("__kk_æ_t__ dɑː_ɡ_")
    cost = spot(said, labels("kæt", "dɑːɡ", "kæ", "ɡ"), BLANK)
    np.testing.assert_allclose(cost, 0, atol=1e-6)


def test_a_word_not_said_costs_the_deficit_of_each_step_it_needs():
    said = posteriors("__kk_æ_t__")
    one_wrong = np.log(0.9) - np.log(0.1 / BLANK)  # one step read as another class than its best
    cost = spot(said, labels("kæt", "bæt", "bæd", "kæts"), BLANK)
    assert cost[0] == pytest.approx(0, abs=1e-6)
    assert cost[1] == pytest.approx(one_wrong, rel=1e-4) and cost[2] == pytest.approx(2 * one_wrong, rel=1e-4)
    assert cost[3] == pytest.approx(one_wrong, rel=1e-4)  # the extra "s" takes one blank step


def test_words_of_any_length_cost_the_same_together_as_alone():
    rng = np.random.default_rng(0)
    said = log_posteriors(rng.normal(size=(40, BLANK + 1)) * 3)
    words = [list(rng.integers(0, BLANK, size=n)) for n in (1, 3, 6, 7, 9, 10, 16, 20)]
    together = spot(said, words, BLANK)
    np.testing.assert_allclose(together, [spot(said, [w], BLANK)[0] for w in words], rtol=1e-5)
    assert spot(said, [], BLANK).shape == (0,)


def test_log_posteriors_are_normalised_per_step():
    x = log_posteriors(np.random.default_rng(0).normal(size=(7, BLANK + 1)) * 5)
    np.testing.assert_allclose(np.exp(x).sum(axis=1), 1, atol=1e-5)


def test_rare_words_weigh_more_and_long_passages_do_not_win_by_length():
    texts = ["the cat sat on the mat", "the dog sat on the rug", "the cat and the dog"]
    reranker = KeywordReranker.from_texts(texts)
    cat, sat = (reranker._words[phonemize(w)] for w in ("cat", "sat"))
    assert reranker.idf[cat] == pytest.approx(np.log(3 / 2)) and reranker.idf[sat] == pytest.approx(np.log(3 / 2))
    assert phonemize("the") not in reranker._words  # under min_length: not spotted
    said = posteriors("_" + "_".join(phonemize("Kazakhstan")) + "_")
    plain = ["Kazakhstan borders Russia.", "Kazakhstan borders Russia. " + "Other words fill the passage out a long way."]
    evidence = KeywordReranker.from_texts(plain + texts).evidence(said, plain)
    assert evidence[0] > evidence[1] > 0


def test_rerank_moves_the_passage_with_the_spoken_word_up_and_keeps_cosines():
    texts = ["The element nitrogen was named in France.", "The element oxygen was named in France.", "Steam engines do work."]
    reranker = KeywordReranker.from_texts(texts, KeywordSettings(depth=2))
    said = posteriors("_" + "_".join(phonemize("oxygen")) + "_")
    hits = [Hit(1, "n", 0.31, texts[0], {"source": "n.txt"}), Hit(2, "o", 0.30, texts[1], {}), Hit(3, "s", 0.29, texts[2], {})]
    ranked = reranker.rerank(said, hits)
    assert [h.id for h in ranked] == ["o", "n", "s"] and [h.rank for h in ranked] == [1, 2, 3]
    assert [h.score for h in ranked] == [0.30, 0.31, 0.29]  # cosines kept; evidence beside them
    assert ranked[0].metadata["keyword_score"] == 1.0 and ranked[1].metadata == {"source": "n.txt", "keyword_score": 0.0}
    assert "keyword_score" not in ranked[2].metadata  # past `depth`: left where it was
    assert reranker.rerank(said, []) == []


def test_a_passage_the_table_never_saw_is_phonemized_when_it_comes_and_counts_as_rare():
    reranker = KeywordReranker.from_texts(["the cat sat on the mat", "the dog sat on the rug"])
    known = len(reranker._words)
    ids = reranker.words_of("Samarkand is a city")
    assert len(reranker._words) > known and reranker.idf[ids].max() == pytest.approx(np.log(3))


@pytest.mark.parametrize("name, word, other", [("q3.wav", "oxygen", "nitrogen"), ("q5.wav", "Americans", "Europeans"),
                                               ("q1.wav", "thermodynamic", "electromagnetic")])
def test_the_shipped_recognizer_finds_a_spoken_word_in_real_speech(embedding, name, word, other):
    with torch.no_grad():
        logits = embedding.phonetic.logits(embedding.speech.encode_clips([load_audio(QUESTIONS / name)]))[0]
    passages = [f"The {other} studies were published in the journal that year.", f"The {word} studies were published in the journal that year."]
    reranker = KeywordReranker.from_texts(passages + ["An unrelated passage about cooking rice.", "Another about the weather."])
    evidence = reranker.evidence(logits, passages)
    assert evidence[1] > evidence[0]
    hits = [Hit(1, "without", 0.40, passages[0], {}), Hit(2, "with", 0.39, passages[1], {})]
    assert reranker.rerank(logits, hits)[0].id == "with"


@pytest.fixture(scope="module")
def keyword_retriever(embedding, demo_db):
    from seal_rag.retrieve import Retriever
    from seal_rag.store import SealIndex

    index = SealIndex.open(embedding, demo_db)
    return Retriever(embedding, index, keywords=KeywordReranker.from_texts(index.all_texts()))


@pytest.mark.parametrize("name", [f"q{i}.wav" for i in range(1, 7)])
def test_a_retriever_with_keywords_finds_each_demo_questions_passage_first(keyword_retriever, name):
    import json

    gold = next(r["gold_source"] for r in map(json.loads, (QUESTIONS / "questions.jsonl").read_text().splitlines()) if r["audio"] == name)
    found = keyword_retriever.retrieve(QUESTIONS / name, k=3)
    assert Path(found.hits[0].metadata["source"]).name == gold
    assert [h.rank for h in found.hits] == [1, 2, 3] and all("keyword_score" in h.metadata for h in found.hits)
    assert {"features", "encode", "search", "keywords"} <= set(found.timings)


def test_keywords_only_reorder_the_speech_towers_own_candidates(keyword_retriever, embedding, demo_db):
    from seal_rag.retrieve import Retriever

    plain = Retriever(embedding, keyword_retriever.index).retrieve(QUESTIONS / "q4.wav", k=KeywordSettings().depth)
    ranked = keyword_retriever.retrieve(QUESTIONS / "q4.wav", k=5)
    np.testing.assert_allclose(ranked.query_vector, plain.query_vector, atol=1e-5)  # the same vector searched
    cosine = {h.id: h.score for h in plain.hits}
    assert all(h.id in cosine and h.score == pytest.approx(cosine[h.id], abs=1e-5) for h in ranked.hits)
    assert "keywords" not in plain.timings and "keyword_score" not in plain.hits[0].metadata
