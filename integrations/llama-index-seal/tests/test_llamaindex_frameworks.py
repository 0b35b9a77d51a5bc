"""The framework entry points behave as a LlamaIndex user expects (issue 34): audio is never
embedded as text, the caller's objects are left alone, streaming works, and scores compare."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import QueryBundle
from llama_index.embeddings.seal import SealEmbedding
from llama_index.readers.seal import SealReader
from llama_index.retrievers.seal import SealExtractiveSynthesizer, SealQueryEngine, SealSpeechRetriever
from seal_rag import ArgumentError, ModelLoadError, NotAudioError
from seal_rag.answer import extractive_answer
from seal_rag.store import SealIndex
from seal_rag.text_tower import TruncatedTextWarning

TOP_K = 5
DEMOS = Path(__file__).resolve().parents[3] / "demos"


def ids(nodes) -> list[str]:
    return [n.node.node_id for n in nodes]


# ---- audio is never embedded as text ------------------------------------------------------


def test_plain_index_retriever_hears_an_audio_path(kb_index, seal_embedding, speech_embedding, question_wav, cli_vector_ids,
                                                    cli_top_ids):
    # Any store holding the joined text vectors (here LlamaIndex's own, filled with the chunks seal-rag
    # stored) ranks as seal-rag's vector does (`ask --no-keywords`). seal-rag's Chroma collection holds only the semantic half, so
    # LlamaIndex's own Chroma search cannot rank it: SealSpeechRetriever searches it through seal-rag.
    from llama_index.core.schema import TextNode

    stored = kb_index.collection.get(include=["documents", "metadatas"])
    vectors = speech_embedding.embed_texts(stored["documents"])
    nodes = [TextNode(id_=i, text=text, metadata=meta, embedding=vector.tolist())
             for i, text, meta, vector in zip(stored["ids"], stored["documents"], stored["metadatas"], vectors)]
    index = VectorStoreIndex(nodes, embed_model=seal_embedding)
    assert ids(index.as_retriever(similarity_top_k=TOP_K).retrieve(str(question_wav))) == cli_vector_ids
    # SealSpeechRetriever reads the docstore's texts and ranks as `ask` does.
    assert ids(SealSpeechRetriever(index=index, similarity_top_k=TOP_K).retrieve(str(question_wav))) == cli_top_ids
    vector = seal_embedding.get_query_embedding(str(question_wav))
    assert np.allclose(vector, speech_embedding.embed_audio([question_wav])[0], atol=1e-5)
    with pytest.raises(NotAudioError, match="encoded audio"):
        seal_embedding.get_query_embedding(question_wav.read_bytes().decode("latin-1"))


def test_speech_retriever_takes_a_typed_question(retriever, kb_index, speech_embedding):
    question = "What is the Rankine cycle of a steam engine?"
    nodes = retriever.retrieve(question)
    hits = kb_index.query(speech_embedding.embed_texts([question])[0], TOP_K)
    assert ids(nodes) == [h.id for h in hits] and "Steam" in nodes[0].node.metadata["title"]
    assert np.allclose([n.score for n in nodes], [h.score for h in hits], atol=1e-5)
    response = retriever.as_query_engine().query(question)
    assert response.response in hits[0].text and response.metadata["mode"] == "text"
    assert response.metadata["audio"] is None and response.metadata["transcript"] is None


# ---- one audio-embedding signature ----------------------------------------------------------


def test_audio_embedding_takes_one_clip_or_a_list(seal_embedding, speech_embedding, question_wav, recorded_flac):
    expected = speech_embedding.embed_audio([question_wav, recorded_flac])
    one = seal_embedding.get_audio_embedding(question_wav)
    both = seal_embedding.get_audio_embedding([question_wav, recorded_flac.read_bytes()])
    assert np.allclose(one, expected[0], atol=1e-5) and np.allclose(both, expected, atol=1e-4)
    assert np.allclose(speech_embedding.embed_audio(question_wav), expected[:1], atol=1e-5)  # core: always a batch
    for wrong in (42, [[str(question_wav)]], {"audio": str(question_wav)}):
        with pytest.raises(NotAudioError, match="cannot embed a"):
            seal_embedding.get_audio_embedding(wrong)
        with pytest.raises(NotAudioError, match="cannot embed a"):
            speech_embedding.embed_audio(wrong)


# ---- settings: honoured or refused ----------------------------------------------------------


def test_model_name_loads_that_model_or_is_refused(speech_embedding):
    with pytest.raises(ModelLoadError, match="not/a-model"):
        SealEmbedding(model_name="not/a-model", speech_embedding=speech_embedding)
    assert SealEmbedding(model_name=speech_embedding.name, speech_embedding=speech_embedding).model_name == speech_embedding.name
    with pytest.raises(ValueError, match="embed_batch"):
        SealEmbedding(speech_embedding=speech_embedding, embed_batch=8)  # misspelt: refused, not ignored
    with pytest.raises(ArgumentError, match="not both"):  # model_path was silently ignored
        SealEmbedding(model_path="elsewhere", speech_embedding=speech_embedding)


def test_from_defaults_opens_a_seal_rag_directory(kb_db, question_wav, cli_top_ids, seal_embedding):
    retriever = SealSpeechRetriever.from_defaults(db=kb_db, embed_model=seal_embedding, similarity_top_k=TOP_K)
    assert ids(retriever.retrieve(str(question_wav))) == cli_top_ids


def test_extractive_synthesizer_needs_no_arguments(retriever, kb_index, speech_embedding, question_wav):
    engine = SealQueryEngine(retriever, response_synthesizer=SealExtractiveSynthesizer())
    vector = speech_embedding.embed_audio([question_wav])[0]
    assert engine.query(str(question_wav)).response == extractive_answer(speech_embedding, vector, kb_index.query(vector, TOP_K))


# ---- the caller's objects are left alone; the response says what was heard ------------------


def test_llm_reads_the_transcript_and_the_callers_bundle_is_untouched(retriever, question_wav, asr, seal_embedding):
    retriever = SealSpeechRetriever.from_defaults(
        index=VectorStoreIndex.from_vector_store(retriever._index.vector_store, embed_model=seal_embedding),
        similarity_top_k=3, transcriber=asr,
    )
    question = QueryBundle(str(question_wav))
    response = retriever.as_query_engine(llm=MockLLM()).query(question)  # MockLLM echoes its prompt
    assert question.query_str == str(question_wav) and question.embedding is None
    transcript = response.metadata["transcript"]
    assert "steam" in transcript.lower() and f"Question: {transcript}" in str(response)
    assert ".wav" not in str(response)
    assert response.metadata["audio"] == str(question_wav)
    assert response.metadata["model"] == seal_embedding.model_name and response.metadata["mode"] == "speech"


class QueryStrings(BaseCallbackHandler):
    """Keeps every query string LlamaIndex's callbacks are given."""

    def __init__(self):
        super().__init__([], [])
        self.seen: list = []

    def on_event_start(self, event_type, payload=None, event_id="", parent_id="", **kwargs):
        if payload and "query_str" in payload:
            self.seen.append(payload["query_str"])
        return event_id

    def on_event_end(self, event_type, payload=None, event_id="", **kwargs):
        pass

    def start_trace(self, trace_id=None):
        pass

    def end_trace(self, trace_id=None, trace_map=None):
        pass


def test_callbacks_see_a_description_not_the_audio(retriever, question_wav):
    handler = QueryStrings()
    engine = retriever.as_query_engine(callback_manager=CallbackManager([handler]))
    retriever.callback_manager = engine.callback_manager
    try:
        response = engine.query(question_wav.read_bytes())
    finally:
        retriever.callback_manager = Settings.callback_manager
    assert response.response and handler.seen
    assert all(isinstance(q, str) and q.startswith("<audio ") and q.endswith(" s>") and len(q) < 60 for q in handler.seen)
    assert response.metadata["audio"] == handler.seen[0]


# ---- streaming ------------------------------------------------------------------------------


def test_streaming_with_and_without_an_llm(retriever, question_wav, asr, capsys):
    extractive = retriever.as_query_engine().query(str(question_wav)).response
    streamed = retriever.as_query_engine(streaming=True).query(str(question_wav))
    assert isinstance(streamed, StreamingResponse)
    streamed.print_response_stream()
    assert capsys.readouterr().out.strip() == extractive
    retriever._transcriber = retriever._transcriber or asr
    with_llm = retriever.as_query_engine(llm=MockLLM(), streaming=True).query(str(question_wav))
    assert isinstance(with_llm, StreamingResponse)
    text = "".join(with_llm.response_gen)
    assert "Question: " in text and "<passage n=\"1\"" in text and ".wav" not in text and with_llm.metadata["transcript"]


def test_extractive_settings_for_an_llm_are_refused(retriever):
    with pytest.raises(ValueError, match="text_qa_template"):
        retriever.as_query_engine(text_qa_template=None)


# ---- reader and chunk size ------------------------------------------------------------------


def test_reader_gives_ingests_chunks(kb_db, speech_embedding, seal_embedding, tmp_path, question_wav, cli_top_ids):
    import chromadb
    from llama_index.core import StorageContext
    from llama_index.vector_stores.chroma import ChromaVectorStore

    documents = SealReader().load_data(DEMOS / "kb")
    stored = SealIndex.open(speech_embedding, db=kb_db).collection.get(include=["documents", "metadatas"])
    by_id = dict(zip(stored["ids"], zip(stored["documents"], stored["metadatas"])))
    assert sorted(d.id_ for d in documents) == sorted(by_id)
    assert all((d.text, d.metadata) == by_id[d.id_] for d in documents)
    # Indexed as nodes (kept whole, with ingest's ids) and embedded without metadata, they rank as seal-rag ask does.
    collection = chromadb.PersistentClient(path=str(tmp_path / "db")).get_or_create_collection("read", metadata={"hnsw:space": "cosine"})
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    index = VectorStoreIndex(documents, storage_context=storage, embed_model=seal_embedding)
    retriever = SealSpeechRetriever(index=index, similarity_top_k=TOP_K)
    assert ids(retriever.retrieve(str(question_wav))) == cli_top_ids
    # Deleting a document by its id deletes it (its nodes had no ref_doc_id, so nothing went).
    top = next(d for d in documents if d.id_ == cli_top_ids[0])
    index.delete_ref_doc(top.id_, delete_from_docstore=True)
    assert collection.count() == len(documents) - 1 and top.id_ not in ids(retriever.retrieve(str(question_wav)))


def test_the_reader_serves_simple_directory_reader_as_its_file_extractor():
    # SimpleDirectoryReader calls load_data(path, extra_info=...): it was "Error loading file".
    from llama_index.core import SimpleDirectoryReader

    alone = SealReader().load_data(DEMOS / "kb")
    documents = SimpleDirectoryReader(DEMOS / "kb", file_extractor={".txt": SealReader()}, raise_on_error=True).load_data()
    assert sorted(d.id_ for d in documents) == sorted(d.id_ for d in alone)
    assert all(d.metadata["file_name"].endswith(".txt") and "chunk_index" in d.metadata for d in documents)
    assert [d.id_ for d in SealReader().load_data(file_path=DEMOS / "kb" / "Oxygen_0.txt")] == \
        [d.id_ for d in alone if d.metadata["source"].endswith("Oxygen_0.txt")]


def test_default_chunks_fit_the_text_tower_and_longer_text_warns(seal_embedding, speech_embedding):
    documents = SealReader().load_data(DEMOS / "kb")
    assert speech_embedding.text.overlong([d.text for d in documents]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedTextWarning)
        seal_embedding.get_text_embedding_batch([d.text for d in documents[:8]])
    long_text = " ".join(d.text for d in documents[:4])  # ~4,000 characters, as a 1,024-token chunk
    with pytest.warns(TruncatedTextWarning, match="256 tokens"):
        seal_embedding.get_text_embedding_batch([long_text])


# ---- scores ---------------------------------------------------------------------------------


def test_hybrid_scores_are_cosines_so_one_cutoff_serves_both_modes(kb_vector_store, seal_embedding, question_wav, asr):
    def nodes(mode):
        return SealSpeechRetriever(vector_store=kb_vector_store, embed_model=seal_embedding, similarity_top_k=TOP_K,
                                   mode=mode, transcriber=asr).retrieve(str(question_wav))

    speech, hybrid = nodes("speech"), nodes("hybrid")
    speech_scores = {n.node.node_id: n.score for n in speech}
    shared = [n for n in hybrid if n.node.node_id in speech_scores]
    assert shared and all(n.score == pytest.approx(speech_scores[n.node.node_id], abs=1e-5) for n in shared)
    cutoff = min(speech_scores.values()) - 1e-6  # keeps every speech node
    kept = SimilarityPostprocessor(similarity_cutoff=cutoff).postprocess_nodes(hybrid)
    assert {n.node.node_id for n in shared} <= {n.node.node_id for n in kept}
