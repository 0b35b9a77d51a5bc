"""LangChain fixtures over the shared ones in integrations/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def seal_embeddings(speech_embedding):
    from langchain_seal import SealEmbeddings

    return SealEmbeddings(speech_embedding=speech_embedding)


@pytest.fixture(scope="session")
def kb_store(kb_db, seal_embeddings):
    """`langchain_chroma.Chroma` over the collection `seal-rag ingest` built."""
    import chromadb
    from langchain_chroma import Chroma

    return Chroma(client=chromadb.PersistentClient(path=str(kb_db)), collection_name="seal_rag",
                  embedding_function=seal_embeddings, create_collection_if_not_exists=False)


@pytest.fixture(scope="session")
def transcriber():
    """One SealTranscriber (faster-whisper, loaded on first use) for every cascade test."""
    from langchain_seal import SealTranscriber

    return SealTranscriber()


@pytest.fixture
def make_store(tmp_path, speech_embedding, seal_embeddings, passages):
    """A Chroma store over a fresh seal-rag index holding `passages` (or none)."""
    import chromadb
    from langchain_chroma import Chroma
    from seal_rag.store import SealIndex

    def build(model=speech_embedding, rows=passages):
        db = tmp_path / "db"
        index = SealIndex.open(model, db=db, create=True)
        if rows:
            texts = [r[1] for r in rows]
            index.upsert([r[0] for r in rows], speech_embedding.embed_texts(texts), texts, [r[2] for r in rows])
        return Chroma(client=chromadb.PersistentClient(path=str(db)), collection_name="seal_rag",
                      embedding_function=seal_embeddings, create_collection_if_not_exists=False)

    return build
