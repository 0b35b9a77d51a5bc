"""LlamaIndex fixtures over the shared ones in integrations/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def seal_embedding(speech_embedding):
    from llama_index.embeddings.seal import SealEmbedding

    return SealEmbedding(speech_embedding=speech_embedding)


@pytest.fixture(scope="session")
def kb_vector_store(kb_db, speech_embedding):
    """LlamaIndex's ChromaVectorStore over the collection `seal-rag ingest` built."""
    from llama_index.vector_stores.chroma import ChromaVectorStore
    from seal_rag.store import SealIndex

    return ChromaVectorStore(chroma_collection=SealIndex.open(speech_embedding, db=kb_db).collection)


@pytest.fixture(scope="session")
def asr():
    """One faster-whisper for every cascade test (loaded on first use)."""
    from seal_rag.cascade import Transcriber

    return Transcriber()


@pytest.fixture
def make_index(tmp_path, speech_embedding, passages):
    """Build a seal-rag index in a fresh directory from `passages` (or none) and return it."""
    from seal_rag.store import SealIndex

    def build(model=speech_embedding, rows=passages, name="seal_rag"):
        index = SealIndex.open(model, db=tmp_path / name, create=True)
        if rows:
            texts = [r[1] for r in rows]
            index.upsert([r[0] for r in rows], speech_embedding.embed_texts(texts), texts, [r[2] for r in rows])
        return index

    return build


@pytest.fixture(scope="session")
def retriever(kb_vector_store, seal_embedding):
    """A speech-mode `SealSpeechRetriever` over the demo index, top 5."""
    from llama_index.retrievers.seal import SealSpeechRetriever

    return SealSpeechRetriever(vector_store=kb_vector_store, embed_model=seal_embedding, similarity_top_k=5)


@pytest.fixture(scope="session")
def kb_index(kb_db, speech_embedding):
    """The demo index as seal-rag opens it."""
    from seal_rag.store import SealIndex

    return SealIndex.open(speech_embedding, db=kb_db)
