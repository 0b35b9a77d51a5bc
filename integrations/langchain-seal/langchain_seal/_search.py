"""A LangChain vector store seen through the interface seal-rag's retrieval pipeline searches.

`seal_rag.retrieve.Retriever` (speech, cascade and hybrid modes, reciprocal-rank fusion) asks
its index for `query(vector, k, where) -> list[Hit]`. This shim answers through the
store's own `similarity_search_by_vector*` methods, so any `VectorStore` works and the
ranking logic exists once, in seal-rag.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from seal_rag.arguments import check_filter
from seal_rag.errors import ArgumentError, StoreError
from seal_rag.store import Hit, collection_texts
from seal_rag.collection_checks import as_store_error, cosine_from_distance, distance_space, ensure_not_empty, seal_index


class VectorStoreSearch:
    """`query(vector, k) -> list[Hit]` over a LangChain `VectorStore`.

    Scores: cosine similarity for Chroma (whatever its distance space); the store's own
    score where it offers `similarity_search_with_score_by_vector`; NaN otherwise.

    Args:
        vectorstore: The store to search.
        filter: The store's metadata filter (a Chroma `where` dict for Chroma).
    """

    def __init__(self, vectorstore: VectorStore, filter: Any = None, model: Any = None):
        self.vectorstore, self.filter = vectorstore, filter
        self.collection = chroma_collection(vectorstore)
        if self.collection is not None:  # Chroma's own error for a malformed filter reads as a broken store
            self.filter = check_filter(filter)
        elif filter is not None and _filters_by_function(vectorstore) and not callable(filter):
            raise ArgumentError(f"{type(vectorstore).__name__} filters with a function of a Document, not a "
                                f"{type(filter).__name__}: e.g. filter=lambda doc: doc.metadata.get('title') == 'Oxygen'")
        self.space = distance_space(self.collection) if self.collection is not None else None
        # A collection `seal-rag ingest` filled holds only the semantic half in Chroma: seal-rag searches it.
        self.seal = seal_index(self.collection, model) if self.collection is not None and model is not None else None

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[Hit]:
        # `where` is seal-rag's own Chroma filter; here the filter is the retriever's.
        if self.seal is not None:
            return self.seal.query(vector, k, self.filter or None)
        if self.collection is not None:
            ensure_not_empty(self.collection)
        embedding = np.asarray(vector, dtype=np.float32).tolist()
        try:
            scored = self._search(embedding, k)
        except Exception as error:
            raise as_store_error(error) from None
        if not scored and self.collection is None and self.filter is None:
            raise StoreError("the vector store returned nothing for an unfiltered query: is it empty? add documents first")
        return [
            Hit(rank, doc.id or _content_id(doc), score, doc.page_content, dict(doc.metadata))
            for rank, (doc, score) in enumerate(scored, 1)
        ]

    def knowledge_base(self) -> tuple[int, Callable[[], tuple[list[str], list | None]]] | None:
        """(how many chunks, a reader of every chunk's text, and None for their phonemes) of the
        searched store, for keyword re-ranking (`KeywordCache.get`); None for stores whose texts
        cannot be listed (only Chroma and InMemoryVectorStore can). A seal-rag index's tables are
        read through `KeywordCache.for_index` instead."""
        if self.collection is not None:
            collection = self.collection
            return collection.count(), lambda: (collection_texts(collection), None)
        from langchain_core.vectorstores import InMemoryVectorStore

        if isinstance(self.vectorstore, InMemoryVectorStore):
            rows = self.vectorstore.store
            return len(rows), lambda: ([row["text"] for row in rows.values() if row.get("text")], None)
        return None

    def _search(self, embedding: list[float], k: int) -> list[tuple[Document, float]]:
        options = {"filter": self.filter} if self.filter is not None else {}
        store = self.vectorstore
        if self.collection is not None:
            # langchain_chroma returns raw distances here, despite the method's name.
            pairs = store.similarity_search_by_vector_with_relevance_scores(embedding, k=k, **options)
            return [(doc, cosine_from_distance(distance, self.space)) for doc, distance in pairs]
        if hasattr(store, "similarity_search_with_score_by_vector"):
            return [(doc, float(score)) for doc, score in store.similarity_search_with_score_by_vector(embedding, k=k, **options)]
        return [(doc, math.nan) for doc in store.similarity_search_by_vector(embedding, k=k, **options)]


def _filters_by_function(vectorstore: VectorStore) -> bool:
    from langchain_core.vectorstores import InMemoryVectorStore

    return isinstance(vectorstore, InMemoryVectorStore)


def _content_id(doc: Document) -> str:
    # Stores that return no ids: the text identifies the chunk for rank fusion.
    return f"content:{hash(doc.page_content)}"


def chroma_collection(vectorstore: Any) -> Any | None:
    """The chromadb collection behind a `langchain_chroma.Chroma` store, or None for other stores."""
    try:
        from langchain_chroma import Chroma
    except ImportError:  # other stores do not need it
        return None
    return vectorstore._collection if isinstance(vectorstore, Chroma) else None
