"""Decoding the query with the knowledge base's phoneme model (seal_rag.kb_decoding): the beam search
on hand-made posteriors, the same n-best as the validated experiment's search, and real speech
(demos/questions against demos/kb) through the shipped recognizer and `Retriever`."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from seal_rag.audio import load_audio
from seal_rag.kb_decoding import (
    DecodingSettings,
    KBDecoder,
    PhonemeLM,
    nbest_counts,
    prefix_beam_search,
)
from seal_rag.keyword_rerank import KeywordReranker
from seal_rag.phonetic import PHONEMES, phonemize
from seal_rag.spelling import words_of

DEMOS = Path(__file__).resolve().parents[1] / "demos"
BLANK = len(PHONEMES)
QUESTIONS = [json.loads(line) for line in (DEMOS / "questions" / "questions.jsonl").read_text().splitlines()]


def posteriors(*steps: dict[str, float]) -> np.ndarray:
    """Log posteriors, one step per dict of {symbol ("_" the blank): probability}; the rest share what is left."""
    rows = []
    for step in steps:
        rest = (1 - sum(step.values())) / (BLANK + 1 - len(step))
        row = np.full(BLANK + 1, rest)
        for c, p in step.items():
            row[BLANK if c == "_" else PHONEMES.index(c)] = p
        rows.append(row)
    return np.log(np.array(rows))


def said(path: str, sure: float = 0.99) -> list[dict[str, float]]:
    return [{c: sure} for c in path]


def best(log_probs: np.ndarray, lm=None, weight: float = 0.0, bonus: float = 0.0) -> str:
    return "".join(PHONEMES[i] for i in prefix_beam_search(log_probs, BLANK, lm, weight, bonus)[0][0])


def test_beam_search_reads_the_best_path_as_ctc_collapses_it():
    assert best(posteriors(*said("__kk_æ_tt__"))) == "kæt"
    assert best(posteriors(*said("_k_k_æ__t"))) == "kkæt"  # a blank between two of one symbol: said twice
    assert best(posteriors(*said("_kæ_t_ _d_ɑː_ɡ"))) == "kæt dɑːɡ"


def test_beam_search_sums_the_paths_of_one_prefix():
    # Greedy reads "a" at each step apart; "aa" with a blank inside is more likely per step, but
    # "a" alone collects three paths (a a, a _, _ a) and wins: CTC's prefix sum, not the best path.
    steps = posteriors({"a": 0.5, "_": 0.4}, {"a": 0.5, "_": 0.4})
    assert best(steps) == "a"
    nbest = prefix_beam_search(steps, BLANK, None, 0.0, 0.0)
    probability = {p: np.exp(s) for p, s in nbest}
    a = PHONEMES.index("a")
    assert probability[(a,)] == pytest.approx(0.5 * 0.5 + 0.5 * 0.4 + 0.4 * 0.5)


def test_the_knowledge_bases_phoneme_model_tips_an_unsure_step_to_its_words():
    # The vowel is heard as "ɛ" a little more than "æ"; the knowledge base only says "kæt".
    steps = posteriors(*said("_k"), {"ɛ": 0.5, "æ": 0.45}, *said("_t_"))
    assert best(steps) == "kɛt"
    lm = PhonemeLM([phonemize("cat")] * 3 + [phonemize("the dog sat")])
    assert phonemize("cat") == "kæt"
    assert best(steps, lm, 0.6, 1.0) == "kæt"


def test_the_phoneme_model_is_witten_bell_over_the_strings_symbols():
    lm = PhonemeLM(["ab", "ab", "ad"], order=3)
    a, b, d, space = (PHONEMES.index(x) for x in "abd ")
    floor = 1 / 4  # the strings hold a, b and d (the word gaps are only around them): three symbols, and one more
    unigram = {a: 3, b: 2, d: 1, space: 3}  # each string is followed by a word gap
    p0 = {s: (n + 4 * floor) / (9 + 4) for s, n in unigram.items()}
    p1 = (2 + 2 * p0[b]) / (3 + 2)  # after "a": b twice, d once (two types)
    p2 = (2 + 2 * p1) / (3 + 2)  # after " a": the same counts, smoothed by the bigram's
    assert np.exp(lm.logp([a])[b]) == pytest.approx(p2)
    assert np.exp(lm.logp([a, b])[space]) == pytest.approx((2 + (2 + p0[space]) / 3) / 3)
    unseen = 4 * floor / 13  # "z" at a string's start: the floor's share, then a single type (a) twice over
    assert np.exp(lm.logp([])[PHONEMES.index("z")]) == pytest.approx(unseen / 4 / 4)


def test_the_library_search_equals_the_validated_experiments_on_random_posteriors():
    from training.experiments.kb_scoring import PhonemeLM as ExperimentLM
    from training.experiments.kb_scoring import prefix_beam

    texts = [phonemize(t) for t in ("The cat sat on the mat.", "Oxygen is the third most abundant element.",
                                    "Steam engines do work by the Rankine cycle.")]
    lm, reference = PhonemeLM(texts), ExperimentLM(texts)
    rng = np.random.default_rng(0)
    for _ in range(5):
        logits = rng.normal(size=(30, BLANK + 1)) * 4
        logits[:, BLANK] += 3
        x = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        ours = {"".join(PHONEMES[i] for i in p): s for p, s in prefix_beam_search(x, BLANK, lm, 0.6, 1.0)}
        theirs = {p: s for p, s in prefix_beam(logits, PHONEMES, reference, 0.6, 1.0) if np.isfinite(s)}
        assert ours.keys() == theirs.keys()
        assert all(ours[p] == pytest.approx(theirs[p], abs=1e-9) for p in ours)


def test_nbest_counts_weigh_each_hypothesis_by_its_posterior():
    counts = nbest_counts([("kæt", np.log(0.75)), ("kɛt", np.log(0.25))], lambda gram: gram)
    assert counts[" kæ"] == pytest.approx(0.75) and counts[" kɛ"] == pytest.approx(0.25) and counts["t "] == pytest.approx(1.0)
    assert nbest_counts([], hash) == {}


@pytest.fixture(scope="module")
def demo_decoder():
    return KBDecoder.from_texts([p.read_text() for p in sorted((DEMOS / "kb").glob("*.txt"))])


def test_decoding_with_the_knowledge_base_brings_spoken_questions_nearer_their_passages(embedding, demo_decoder):
    """On real speech, the decoded phonetic half is nearer the gold passage's phonetic half than the soft counts' is."""
    nearer = 0
    for question in QUESTIONS:
        vectors, logits = embedding.encode_clips([load_audio(DEMOS / "questions" / question["audio"])])
        gold = embedding.split(embedding.embed_texts([(DEMOS / "kb" / question["gold_source"]).read_text()]))[1][0]
        decoded = demo_decoder.query_vector(embedding, vectors[0], logits[0])
        soft_half = embedding.split(vectors)[1][0]
        decoded_half = embedding.split(decoded[None])[1][0]
        decoded_half /= np.linalg.norm(decoded_half)
        nearer += float(decoded_half @ gold) > float(soft_half @ gold)
    assert nearer >= 5


def test_the_spelled_query_reads_the_decoding_with_the_text_tower_at_its_own_weight(embedding, demo_decoder):
    """The shipped model spells the decoded question's 5-best with the knowledge base's words: its semantic
    half is the mean of the text tower's vectors of those spellings, and the query ranks passages by
    (1 - spelled_weight) * semantic + spelled_weight * phonetic cosine (a unit vector: its cosine is that over a constant)."""
    w = embedding.config.spelled_weight
    assert 0 < w < 1 and demo_decoder.speller is not None
    spelled_words = 0
    for question in QUESTIONS:
        vectors, logits = embedding.encode_clips([load_audio(DEMOS / "questions" / question["audio"])])
        nbest = demo_decoder.nbest(logits[0])
        spelled = demo_decoder.spelled(nbest)
        assert 1 <= len(spelled) <= 5
        spelled_words += len(set(spelled[0].split()) & set(words_of(question["question"])))
        decoded = demo_decoder.query_vector(embedding, vectors[0], logits[0])
        semantic = embedding.text_semantic(spelled).mean(axis=0, keepdims=True)
        semantic /= np.linalg.norm(semantic)
        phonetic = demo_decoder.phonetic_vector(logits[0], embedding.phonetic, nbest)[None]
        np.testing.assert_allclose(decoded, embedding.weighted(semantic, phonetic, w)[0], atol=1e-6)
        passage = embedding.embed_texts([(DEMOS / "kb" / question["gold_source"]).read_text()])
        cosines = [float(half[0] @ p[0]) for half, p in zip((semantic, phonetic), embedding.split(passage))]
        w0 = embedding.config.phonetic_weight
        scale = np.linalg.norm(np.concatenate([semantic[0] * (1 - w) / np.sqrt(1 - w0), phonetic[0] * w / np.sqrt(w0)]))
        assert np.linalg.norm(decoded) == pytest.approx(1.0, abs=1e-5)
        assert float(decoded @ passage[0]) * scale == pytest.approx((1 - w) * cosines[0] + w * cosines[1], abs=1e-5)
    assert spelled_words >= 3 * len(QUESTIONS)  # many of each question's words come back spelled right


def test_a_model_without_a_spelled_weight_keeps_the_speech_towers_semantic_half(embedding, demo_decoder):
    from dataclasses import replace

    speech_semantic = SimpleNamespace(config=replace(embedding.config, spelled_weight=0.0), phonetic=embedding.phonetic,
                                      split=embedding.split, weighted=embedding.weighted)
    vectors, logits = embedding.encode_clips([load_audio(DEMOS / "questions" / QUESTIONS[0]["audio"])])
    decoded = demo_decoder.query_vector(speech_semantic, vectors[0], logits[0])
    np.testing.assert_allclose(embedding.split(decoded[None])[0][0], embedding.split(vectors)[0][0], atol=1e-6)
    assert np.linalg.norm(decoded) == pytest.approx(1.0, abs=1e-5)


def test_an_empty_knowledge_base_or_a_model_without_a_phonetic_half_keeps_the_vector(embedding):
    vector = np.random.default_rng(0).normal(size=embedding.dim).astype(np.float32)
    logits = np.random.default_rng(1).normal(size=(20, BLANK + 1)).astype(np.float32)
    empty = KBDecoder.from_texts([])
    assert empty.query_vector(embedding, vector, logits) is vector
    assert KeywordReranker.from_texts([], decoding=DecodingSettings()).decoder.lm is None
    semantic_only = SimpleNamespace(phonetic=None, name="semantic-only")
    decoder = KBDecoder.from_texts(["The cat sat on the mat."])
    np.testing.assert_array_equal(decoder.query_vector(semantic_only, vector[:384], None), vector[:384])
    assert decoder.nbest(np.zeros((0, BLANK + 1), np.float32)) == [("", 0.0)]  # nothing heard: the empty string, surely


def test_join_undoes_split(embedding):
    vectors = embedding.embed_texts(["Oxygen is the third most abundant element."])
    np.testing.assert_allclose(embedding.join(*embedding.split(vectors)), vectors, atol=1e-6)


@pytest.fixture(scope="module")
def decoding_retriever(embedding, demo_db):
    from seal_rag.retrieve import Retriever, keyword_reranker
    from seal_rag.store import SealIndex

    index = SealIndex.open(embedding, demo_db)
    return Retriever(embedding, index, keywords=keyword_reranker(embedding, index.all_texts()))


@pytest.mark.parametrize("question", QUESTIONS, ids=[q["audio"] for q in QUESTIONS])
def test_the_default_retriever_decodes_then_re_ranks_and_finds_each_demo_questions_passage_first(decoding_retriever, question):
    assert decoding_retriever.keywords.decoder is not None  # keyword_reranker builds it from the same phonemes
    found = decoding_retriever.retrieve(DEMOS / "questions" / question["audio"], k=3)
    assert Path(found.hits[0].metadata["source"]).name == question["gold_source"]
    assert list(found.timings).index("kb_decoding") < list(found.timings).index("search") < list(found.timings).index("keywords")
    scores = decoding_retriever.index.query(found.query_vector, 30)
    cosine = {h.id: h.score for h in scores}
    assert all(h.score == pytest.approx(cosine[h.id], abs=1e-5) for h in found.hits)  # the decoded vector was searched


def test_keyword_reranker_without_decoding_and_for_a_model_without_a_phonetic_half(embedding, demo_db):
    from seal_rag.retrieve import keyword_reranker
    from seal_rag.store import SealIndex

    index = SealIndex.open(embedding, demo_db)
    assert keyword_reranker(embedding, index.all_texts(), decoding=False).decoder is None
    assert keyword_reranker(SimpleNamespace(phonetic=None), index.all_texts()) is None


def test_a_query_that_spells_its_semantic_half_does_not_run_the_speech_towers(decoding_retriever, monkeypatch):
    speech = decoding_retriever.model.speech
    calls, original = [], speech.embed_states
    monkeypatch.setattr(speech, "embed_states", lambda *args: calls.append(1) or original(*args))
    question = QUESTIONS[0]
    found = decoding_retriever.retrieve(DEMOS / "questions" / question["audio"], k=3)
    assert Path(found.hits[0].metadata["source"]).name == question["gold_source"] and calls == []
    decoding_retriever.model.embed_audio(DEMOS / "questions" / question["audio"])  # without a knowledge base it does
    assert calls == [1]


def test_a_question_with_nothing_to_spell_takes_the_speech_towers_semantic_half(decoding_retriever, monkeypatch):
    """Where no decoding spells a word, the served query falls back on the speech tower's semantic half
    (at the model's own weight), not on a zero half or NaN."""
    model, decoder = decoding_retriever.model, decoding_retriever.keywords.decoder
    monkeypatch.setattr(decoder, "spelled", lambda nbest: [])
    clip = load_audio(DEMOS / "questions" / QUESTIONS[0]["audio"])
    found = decoding_retriever.retrieve_clip(clip, k=3)
    vectors, logits = model.encode_clips([clip])
    np.testing.assert_allclose(found.query_vector, decoder.query_vector(model, vectors[0], logits[0]), atol=1e-5)
    assert np.linalg.norm(found.query_vector) == pytest.approx(1.0, abs=1e-5)
    assert Path(found.hits[0].metadata["source"]).name == QUESTIONS[0]["gold_source"]


def test_weighing_halves_that_are_both_zero_gives_zeros_not_nan(embedding):
    zeros = np.zeros((1, embedding.config.dim), np.float32), np.zeros((1, embedding.config.phonetic_dim), np.float32)
    assert not embedding.weighted(*zeros, 0.7).any()
