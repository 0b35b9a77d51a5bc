"""SealEmbeddings and SealSpeechRetriever over real Chroma stores."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf
from langchain_core.documents import Document
from langchain_seal import SealEmbeddings, SealSpeechRetriever
from seal_rag import ArgumentError, AudioFileNotFoundError, IndexMismatchError, NotAudioError, StoreError
from seal_rag.audio import load_audio
from seal_rag.retrieve import Retriever, keyword_reranker
from seal_rag.store import SealIndex

TOP_K = 5


@pytest.fixture(scope="module")
def retriever(kb_store):
    return SealSpeechRetriever(vectorstore=kb_store, k=TOP_K)


@pytest.fixture(scope="module")
def kb_index(kb_db, speech_embedding):
    return SealIndex.open(speech_embedding, db=kb_db)


def ids(documents: list[Document]) -> list[str]:
    return [d.id for d in documents]


def test_embeddings_text_and_audio_sides(seal_embeddings, speech_embedding, recorded_flac):
    texts = ["The Brooklyn Bridge opened in 1883.", "Oxygen is abundant."]
    assert np.allclose(seal_embeddings.embed_documents(texts), speech_embedding.embed_texts(texts), atol=1e-5)
    assert np.allclose(seal_embeddings.embed_query(texts[0]), speech_embedding.embed_texts([texts[0]])[0], atol=1e-5)
    audio = seal_embeddings.embed_audio(recorded_flac)
    assert isinstance(audio, list) and isinstance(audio[0], float) and len(audio) == speech_embedding.dim
    assert np.allclose(audio, speech_embedding.embed_audio([recorded_flac])[0], atol=1e-5)
    assert np.allclose(asyncio.run(seal_embeddings.aembed_audio(recorded_flac.read_bytes())), audio, atol=1e-5)


def test_an_empty_list_or_a_zero_rate_is_refused_not_guessed(seal_embeddings):
    from seal_rag import InvalidSamplesError, NotAudioError

    with pytest.raises(NotAudioError, match="the list of clips is empty"):
        seal_embeddings.embed_audio([])  # was torch's RuntimeError
    with pytest.raises(InvalidSamplesError, match="sample rate 0 Hz"):
        seal_embeddings.embed_audio(np.full(16000, 0.1, np.float32), sample_rate=0)  # was taken as 16 kHz
    with pytest.raises(ArgumentError, match="not both"):  # model_path was silently ignored
        SealEmbeddings(model_path="elsewhere", speech_embedding=seal_embeddings.speech_embedding)


def test_odd_inputs_are_named_not_tracebacks(retriever, seal_embeddings, question_wav):
    from seal_rag import InvalidSamplesError

    with pytest.raises(NotAudioError, match="encoded audio decoded as a string"):
        seal_embeddings.embed_query("q\x00.wav")  # was ValueError: embedded null byte
    with pytest.raises(ArgumentError, match="text 1 is a NoneType, not a string"):
        seal_embeddings.embed_documents(["A passage.", None])  # was TypeError inside the text tower
    for rate in ("abc", None, float("nan"), 0):
        with pytest.raises(InvalidSamplesError, match="is not a rate"):
            retriever.invoke({"audio": str(question_wav), "sample_rate": rate})
    samples, rate = sf.read(question_wav, dtype="float32")
    assert ids(retriever.invoke({"audio": samples, "sample_rate": np.int64(rate)})) == \
        ids(retriever.invoke({"audio": samples, "sample_rate": rate}))  # numpy's scalars are rates too


def test_returns_documents_with_metadata_and_score(retriever, served, question_wav):
    documents = retriever.invoke(str(question_wav))
    assert len(documents) == TOP_K and all(isinstance(d, Document) for d in documents)
    meta = documents[0].metadata
    assert {"source", "title", "start_char", "end_char", "chunk_index", "score", "rank"} <= set(meta)
    assert [d.metadata["rank"] for d in documents] == list(range(1, TOP_K + 1))
    # Ranked as seal-rag ranks (decoding, keyword re-ranking); scores are cosines with the searched vector.
    assert ids(documents) == [h.id for h in served.hits]
    assert np.allclose([d.metadata["score"] for d in documents], [h.score for h in served.hits], atol=1e-5)


def test_same_top_k_ids_in_order_as_seal_rag_ask(retriever, question_wav, cli_top_ids):
    assert ids(retriever.invoke(str(question_wav))) == cli_top_ids


def test_path_bytes_array_and_dict_inputs_agree(retriever, question_wav):
    expected = ids(retriever.invoke(str(question_wav)))
    samples, rate = sf.read(question_wav, dtype="float32")
    assert ids(retriever.invoke(question_wav.read_bytes())) == expected
    assert ids(retriever.invoke({"audio": str(question_wav)})) == expected
    assert ids(retriever.invoke({"audio": samples, "sample_rate": rate})) == expected
    assert ids(retriever.invoke(question_wav)) == expected  # a Path


def test_k_and_filter_per_call(retriever, question_wav):
    assert len(retriever.invoke(str(question_wav), k=2)) == 2
    titles = ["Oxygen_0", "Oxygen_1", "Apollo_program_0"]
    documents = retriever.invoke(str(question_wav), filter={"title": {"$in": titles}})
    assert documents and {d.metadata["title"] for d in documents} <= set(titles)


@pytest.mark.parametrize("options, message", [
    ({"k": 0}, "k must be a whole number between 1 and 1000, not 0"),  # was the default k
    ({"k": -1}, "k must be a whole number between 1 and 1000, not -1"),  # was every chunk
    ({"filter": {"title": {"$regex": "Ox"}}}, "the filter is not one Chroma reads"),  # was "damaged index"
    ({"score_threshold": "0.2"}, "score_threshold must be a number"),
    ({"score_threshold": float("nan")}, "score_threshold must be a number"),  # was no documents, silently
    ({"fetch_k": 10, "search_kwargs": {"k": 1}}, "fetch_k, search_kwargs cannot be given per call"),
])
def test_a_wrong_k_filter_or_threshold_per_call_is_named(retriever, question_wav, options, message):
    from seal_rag import ArgumentError

    with pytest.raises(ArgumentError, match=message):
        retriever.invoke(str(question_wav), **options)


def test_an_empty_typed_question_is_refused_not_answered(retriever):
    from seal_rag import ArgumentError

    with pytest.raises(ArgumentError, match="the question is empty"):
        retriever.invoke("   ")


def test_hybrid_mode_matches_seal_rag(kb_store, kb_index, speech_embedding, question_wav, transcriber):
    retriever = SealSpeechRetriever(vectorstore=kb_store, k=TOP_K, mode="hybrid", transcriber=transcriber)
    keywords = keyword_reranker(speech_embedding, kb_index.all_texts())
    reference = Retriever(speech_embedding, kb_index, "hybrid", transcriber, keywords=keywords).retrieve(question_wav, TOP_K)
    documents = retriever.invoke(str(question_wav))
    assert ids(documents) == [h.id for h in reference.hits]
    assert np.allclose([d.metadata["score"] for d in documents], [h.score for h in reference.hits])


def test_async_invoke_matches_sync(retriever, question_wav):
    documents = asyncio.run(retriever.ainvoke(question_wav.read_bytes(), k=3))
    assert ids(documents) == ids(retriever.invoke(str(question_wav), k=3))


def test_any_vector_store_works(seal_embeddings, passages, recorded_flac, speech_embedding):
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(seal_embeddings)
    store.add_documents([Document(page_content=text, metadata=meta, id=key) for key, text, meta in passages])
    documents = SealSpeechRetriever(vectorstore=store, k=3, keywords=False).invoke(str(recorded_flac))
    vectors = speech_embedding.embed_texts([p[1] for p in passages]) @ speech_embedding.embed_audio([recorded_flac])[0]
    assert ids(documents) == [passages[i][0] for i in np.argsort(-vectors)[:3]]
    assert documents[0].metadata["score"] == pytest.approx(float(vectors.max()), abs=1e-4)

    # By default the store's texts also decode and re-rank, as seal-rag ranks (its matrix form here).
    from seal_rag.bench.served import served_scores

    texts = [p[1] for p in passages]
    reranker = keyword_reranker(speech_embedding, texts)
    spoken, logits = speech_embedding.encode_clips([load_audio(recorded_flac)])
    scores = served_scores(speech_embedding, reranker, spoken, logits, speech_embedding.embed_texts(texts), texts)[0]
    served = SealSpeechRetriever(vectorstore=store, k=3).invoke(str(recorded_flac))
    assert ids(served) == [passages[i][0] for i in np.argsort(-scores)[:3]]


def test_an_in_memory_store_filters_by_function_and_names_a_dict_filter(seal_embeddings, passages, recorded_flac):
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore(seal_embeddings)
    store.add_documents([Document(page_content=text, metadata=meta, id=key) for key, text, meta in passages])
    keep = passages[1][0]
    retriever = SealSpeechRetriever(vectorstore=store, k=3, keywords=False, search_kwargs={"filter": lambda doc: doc.id == keep})
    assert ids(retriever.invoke(str(recorded_flac))) == [keep]
    with pytest.raises(ArgumentError, match="InMemoryVectorStore filters with a function of a Document, not a dict"):
        retriever.invoke(str(recorded_flac), filter={"title": "x"})  # was "the vector store failed to answer"


def test_store_langchain_filled_itself(tmp_path, seal_embeddings, passages, recorded_flac):
    from langchain_chroma import Chroma

    store = Chroma.from_texts([p[1] for p in passages], seal_embeddings, metadatas=[p[2] for p in passages],
                              ids=[p[0] for p in passages], persist_directory=str(tmp_path / "db"))
    documents = SealSpeechRetriever(vectorstore=store, k=len(passages)).invoke(str(recorded_flac))
    assert sorted(ids(documents)) == sorted(p[0] for p in passages)
    assert all(-1.0 <= d.metadata["score"] <= 1.0 for d in documents)  # cosine, though the space is l2


# ---- bad input: the project's errors, never a library's traceback -------------------------


def test_non_audio_input_raises_not_audio_error(retriever, not_audio, tmp_path):
    with pytest.raises(NotAudioError, match="not readable audio"):
        retriever.invoke(str(not_audio))
    with pytest.raises(AudioFileNotFoundError):
        retriever.invoke(str(tmp_path / "missing.wav"))
    with pytest.raises(NotAudioError, match="'audio' key"):
        retriever.invoke({"question": "q.wav"})
    with pytest.raises(NotAudioError, match="cannot take a int"):
        retriever.invoke(42)


def test_empty_store_raises_store_error(make_store, question_wav):
    with pytest.raises(StoreError, match="is empty"):
        SealSpeechRetriever(vectorstore=make_store(rows=[])).invoke(str(question_wav))


def test_index_from_another_model_raises_index_mismatch(make_store, other_model):
    with pytest.raises(IndexMismatchError, match="some-other-model"):
        SealSpeechRetriever(vectorstore=make_store(model=other_model))


def test_store_needs_seal_embeddings(passages):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.vectorstores import InMemoryVectorStore

    with pytest.raises(ValueError, match="SealEmbeddings"):
        SealSpeechRetriever(vectorstore=InMemoryVectorStore(DeterministicFakeEmbedding(size=384)))
