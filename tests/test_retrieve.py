"""The ask path one way: audio -> staged encode -> vector -> index -> hits (real model, real Chroma, real speech)."""

import json
from pathlib import Path

import numpy as np
import pytest

from seal_rag.audio import load_audio
from seal_rag.fusion import fused_scores, reciprocal_rank_fusion
from seal_rag.retrieve import Retriever
from seal_rag.store import Hit, SealIndex

QUESTIONS = Path(__file__).resolve().parents[1] / "demos" / "questions"


def source_name(hit: Hit) -> str:
    return Path(hit.metadata["source"]).name


def gold_of(name: str) -> str:
    rows = [json.loads(line) for line in (QUESTIONS / "questions.jsonl").read_text().splitlines()]
    return next(r["gold_source"] for r in rows if r["audio"] == name)


@pytest.fixture(scope="module")
def retriever(embedding, demo_db):
    return Retriever(embedding, SealIndex.open(embedding, demo_db))


def test_the_staged_encode_times_each_stage_and_equals_the_unstaged_one(embedding, demo_question):
    clip = load_audio(demo_question)
    timings: dict[str, float] = {}
    staged = embedding.embed_clips([clip], timings=timings)
    assert set(timings) == {"features", "encode"} and all(0 < s < 30 for s in timings.values())
    np.testing.assert_allclose(staged, embedding.embed_clips([clip]), atol=1e-6)
    np.testing.assert_allclose(staged, embedding.embed_audio(demo_question), atol=1e-6)


def test_split_undoes_the_join_into_two_unit_halves_whose_weighted_cosines_add_up(embedding, demo_question):
    queries = embedding.embed_audio(demo_question)
    passages = embedding.embed_texts(["The Apollo program put the first Americans on the Moon.", "Oxygen is element 8."])
    (qs, qp), (ps, pp) = embedding.split(queries), embedding.split(passages)
    assert qs.shape[1] == embedding.config.dim and qp.shape[1] == embedding.config.phonetic_dim
    for half in (qs, qp, ps, pp):
        np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-4)
    w = embedding.config.phonetic_weight
    np.testing.assert_allclose(queries @ passages.T, (1 - w) * qs @ ps.T + w * qp @ pp.T, atol=1e-5)


def test_a_decoded_clip_and_its_file_give_the_same_hits_and_only_the_file_is_decoded_here(retriever, demo_question):
    from_file = retriever.retrieve(demo_question, k=3)
    from_clip = retriever.retrieve_clip(load_audio(demo_question), k=3)
    assert [h.id for h in from_file.hits] == [h.id for h in from_clip.hits]
    assert "decode" in from_file.timings and "decode" not in from_clip.timings
    assert {"features", "encode", "search"} <= set(from_clip.timings)
    assert source_name(from_file.hits[0]) == gold_of(demo_question.name)


@pytest.mark.parametrize("name", ["q1.wav", "q3.wav"])
def test_speech_mode_finds_the_spoken_questions_passage_first(retriever, name):
    assert source_name(retriever.retrieve(QUESTIONS / name, k=5).hits[0]) == gold_of(name)


def test_a_filter_keeps_only_matching_chunks(retriever, demo_question):
    oxygen = next(h.metadata["source"] for h in retriever.retrieve(QUESTIONS / "q3.wav", k=5).hits if source_name(h) == "Oxygen_0.txt")
    hits = retriever.retrieve(demo_question, k=5, where={"source": oxygen}).hits  # asked about Apollo
    assert hits and {h.metadata["source"] for h in hits} == {oxygen}


def test_a_filter_of_several_plain_keys_means_all_of_them(retriever, demo_question):
    # LangChain users write {"a": 1, "b": 2}; Chroma refuses it, and the refusal read as a damaged index.
    first = retriever.retrieve(demo_question, k=1).hits[0]
    where = {"source": first.metadata["source"], "chunk_index": first.metadata["chunk_index"]}
    assert [h.id for h in retriever.retrieve(demo_question, k=5, where=where).hits] == [first.id]


@pytest.mark.parametrize("call, message", [
    (lambda r, q: r.retrieve(q, k=0), "k must be a whole number between 1 and 1000, not 0"),
    (lambda r, q: r.retrieve(q, k=-1), "k must be a whole number between 1 and 1000, not -1"),
    (lambda r, q: r.retrieve(q, k=2.5), "k must be a whole number between 1 and 1000, not 2.5"),
    (lambda r, q: r.retrieve(q, k="2"), "k must be a whole number between 1 and 1000, not '2'"),
    (lambda r, q: r.retrieve(q, where={"title": {"$regex": "Ox"}}), "the filter is not one Chroma reads"),
    (lambda r, q: r.retrieve(q, where="Oxygen"), "a filter must be a dict, not a str"),
    # Chroma's own check passes an unknown top-level operator, and its search then failed as "damaged".
    (lambda r, q: r.retrieve(q, where={"$foo": 1}), "'$foo' is not an operator a clause can start with"),
    (lambda r, q: r.retrieve(q, where={"$or": [{"title": "a"}, {"$nor": [{"title": "b"}]}]}), "'$nor' is not an operator"),
    (lambda r, q: r.retrieve_text("   "), "the question is empty"),
    (lambda r, q: r.retrieve_text("hi \ud800 there"), "invalid Unicode (a lone surrogate)"),
    (lambda r, q: r.index.query(np.full(10, 0.1, np.float32)), "the query vector has 10 values"),
    (lambda r, q: r.index.query(np.full(r.model.dim, np.nan, np.float32)), "NaN or infinite"),
])
def test_a_wrong_k_filter_question_or_vector_is_named_not_called_a_damaged_index(retriever, demo_question, call, message):
    from seal_rag.errors import ArgumentError

    with pytest.raises(ArgumentError) as raised:
        call(retriever, demo_question)
    assert message in str(raised.value) and "damaged" not in str(raised.value)


def test_a_typed_question_is_searched_with_the_text_tower_in_every_mode(embedding, demo_db):
    index = SealIndex.open(embedding, demo_db)
    for mode in ("speech", "cascade", "hybrid"):
        found = Retriever(embedding, index, mode).retrieve_text("What project put the first Americans into space?", k=2)
        assert found.transcript.startswith("What project") and set(found.timings) == {"text_embed", "search"}
        assert source_name(found.hits[0]).startswith("Apollo")


def test_an_unknown_mode_is_refused(embedding, demo_db):
    with pytest.raises(ValueError, match="mode must be one of"):
        Retriever(embedding, SealIndex.open(embedding, demo_db), "telepathy")


def test_fusion_rewards_agreement_and_keeps_the_first_seen_text():
    a = [Hit(1, "x", 0.9, "x text", {}), Hit(2, "y", 0.8, "y text", {})]
    b = [Hit(1, "y", 0.7, "y other", {}), Hit(2, "z", 0.6, "z text", {})]
    fused = reciprocal_rank_fusion([a, b], k=3)
    assert [h.id for h in fused] == ["y", "x", "z"] and [h.rank for h in fused] == [1, 2, 3]
    assert fused[0].text == "y text" and fused[0].score == pytest.approx(1 / 62 + 1 / 61)


def test_matrix_fusion_scores_each_passage_as_the_retrievers_fusion_of_the_same_rankings():
    rng = np.random.default_rng(0)
    speech, text = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    fused = fused_scores(speech, text)
    for row in range(3):
        lists = [[Hit(r, str(p), 0.0, "", {}) for r, p in enumerate(np.argsort(-m[row])[:20], 1)] for m in (speech, text)]
        expected = np.zeros(50)
        for hit in reciprocal_rank_fusion(lists, k=50):
            expected[int(hit.id)] = hit.score
        np.testing.assert_allclose(fused[row], expected)


def test_open_re_ranks_by_keywords_unless_told_not_to(demo_db, demo_question):
    with_keywords = Retriever.open(db=str(demo_db))
    found = with_keywords.retrieve(demo_question, k=3)
    assert with_keywords.keywords is not None and "keywords" in found.timings
    assert all("keyword_score" in h.metadata for h in found.hits)
    assert source_name(found.hits[0]) == gold_of(demo_question.name)
    plain = Retriever.open(db=str(demo_db), keywords=False)
    assert plain.keywords is None and "keywords" not in plain.retrieve(demo_question, k=3).timings
