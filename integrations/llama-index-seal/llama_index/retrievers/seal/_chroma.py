"""Find the Chroma collection behind this ecosystem's vector store; the checks live in seal_rag."""

from __future__ import annotations

from typing import Any

from seal_rag.collection_checks import cosine_from_distance, distance_space, ensure_not_empty, verify_collection

__all__ = ["chroma_collection", "cosine_from_distance", "distance_space", "ensure_not_empty", "verify_collection"]


def chroma_collection(vector_store: Any) -> Any | None:
    """The chromadb collection behind a LlamaIndex vector store, or None for other stores."""
    try:
        from llama_index.vector_stores.chroma import ChromaVectorStore
    except ImportError:  # the Chroma integration is optional for other stores
        return None
    return vector_store.client if isinstance(vector_store, ChromaVectorStore) else None
