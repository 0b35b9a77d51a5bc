"""Find the Chroma collection behind this ecosystem's vector store; the checks live in seal_rag."""

from __future__ import annotations

from typing import Any

from seal_rag.collection_checks import cosine_from_distance, distance_space, ensure_not_empty, verify_collection

__all__ = ["chroma_collection", "cosine_from_distance", "distance_space", "ensure_not_empty", "verify_collection"]


def chroma_collection(vectorstore: Any) -> Any | None:
    """The chromadb collection behind a `langchain_chroma.Chroma` store, or None for other stores."""
    try:
        from langchain_chroma import Chroma
    except ImportError:  # other stores do not need it
        return None
    return vectorstore._collection if isinstance(vectorstore, Chroma) else None
