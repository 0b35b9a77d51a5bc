"""A LlamaIndex index seen through the interface seal-rag's retrieval pipeline searches.

`seal_rag.retrieve.Retriever` (speech, cascade and hybrid modes, reciprocal-rank fusion) asks
its index for `query(vector, k, where) -> list[Hit]`. This shim answers that through
LlamaIndex's own `VectorIndexRetriever`, so filters, docstores and every vector store
work as in any LlamaIndex app, and the ranking logic exists once, in seal-rag.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
from llama_index.core.schema import BaseNode, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters
from seal_rag.arguments import check_filter
from seal_rag.errors import ArgumentError, StoreError
from seal_rag.store import Hit, collection_texts
from seal_rag.collection_checks import as_store_error, cosine_from_distance, distance_space, ensure_not_empty, seal_index


class IndexSearch:
    """`query(vector, k) -> list[Hit]` over a `VectorStoreIndex`; remembers the nodes it saw.

    Args:
        index: The index to search.
        filters: LlamaIndex metadata filters applied to every query.
        label: The `query_str` LlamaIndex's instrumentation sees for these vector queries.
    """

    def __init__(self, index: VectorStoreIndex, filters: MetadataFilters | None = None, label: str = "", model: Any = None):
        self.index, self.filters, self.label = index, filters, label
        self.collection = chroma_collection(index.vector_store)
        self.space = distance_space(self.collection) if self.collection is not None else None
        # A collection `seal-rag ingest` filled holds only the semantic half in Chroma: seal-rag searches it.
        self.seal = seal_index(self.collection, model) if self.collection is not None and model is not None else None
        self.nodes: dict[str, BaseNode] = {}
        # Checked before any search: a filter Chroma cannot read, or (in `query`) a vector of another
        # model, would otherwise come back as "the vector store failed to answer".
        self.where = _chroma_where(filters) if self.collection is not None else None
        self.dim = model.dim if model is not None else None

    def query(self, vector: np.ndarray, k: int, where: dict | None = None) -> list[Hit]:
        # `where` is seal-rag's Chroma filter; here filters are LlamaIndex's, set on the retriever.
        if self.dim is not None and np.asarray(vector).size != self.dim:
            raise ArgumentError(f"the query vector has {np.asarray(vector).size} values, where this index's model "
                                f"makes {self.dim}: embed it with that model")
        if self.seal is not None:
            return self._seal_query(vector, k)
        if self.collection is not None:
            ensure_not_empty(self.collection)
        retriever = VectorIndexRetriever(self.index, similarity_top_k=k, filters=self.filters)
        bundle = QueryBundle(query_str=self.label, embedding=np.asarray(vector, dtype=np.float32).tolist())
        try:
            found = retriever.retrieve(bundle)
        except Exception as error:
            raise as_store_error(error) from None
        if not found and self.collection is None and self.filters is None:
            raise StoreError("the vector store returned nothing for an unfiltered query: is the index empty? add documents first")
        hits = []
        for rank, scored in enumerate(found, 1):
            node = scored.node
            self.nodes[node.node_id] = node
            hits.append(Hit(rank, node.node_id, self._cosine(scored.score), node.get_content(), dict(node.metadata)))
        return hits

    def knowledge_base(self) -> tuple[int, Callable[[], tuple[list[str], list | None]]] | None:
        """(how many chunks, a reader of every chunk's text, and None for their phonemes) of the
        searched store, for keyword re-ranking (`KeywordCache.get`); None where neither Chroma nor
        the index's docstore holds them. A seal-rag index's tables are read through
        `KeywordCache.for_index` instead."""
        if self.collection is not None:
            collection = self.collection
            return collection.count(), lambda: (collection_texts(collection), None)
        nodes = self.index.docstore.docs
        if nodes:
            return len(nodes), lambda: ([n.get_content() for n in nodes.values() if n.get_content()], None)
        return None

    def _seal_query(self, vector: np.ndarray, k: int) -> list[Hit]:
        from llama_index.core.schema import TextNode
        from llama_index.core.vector_stores.utils import metadata_dict_to_node

        hits = self.seal.query(vector, k, self.where)
        for hit in hits:
            try:  # a node LlamaIndex stored carries itself in its metadata, as ChromaVectorStore reads it
                node = metadata_dict_to_node(hit.metadata, text=hit.text)
            except Exception:  # noqa: BLE001 - seal-rag's own chunks carry plain metadata
                node = TextNode(text=hit.text, id_=hit.id, metadata=dict(hit.metadata))
            self.nodes[hit.id] = node
        return hits

    def _cosine(self, score: float | None) -> float:
        if score is None:
            return float("nan")
        if self.space is None:
            return float(score)  # other stores report their own similarity
        # ChromaVectorStore reports exp(-distance); undo it to get seal-rag's cosine score.
        return cosine_from_distance(-math.log(max(score, 1e-300)), self.space)


def _chroma_where(filters: MetadataFilters | None) -> dict | None:
    """LlamaIndex filters as the Chroma `where` the ChromaVectorStore would send, checked."""
    from llama_index.vector_stores.chroma.base import _to_chroma_filter

    if filters is None:
        return None
    try:
        return check_filter(_to_chroma_filter(filters) or None)
    except ValueError as error:  # an operator Chroma has no counterpart for (TEXT_MATCH, CONTAINS, NOT)
        if isinstance(error, ArgumentError):
            raise
        raise ArgumentError(f"these filters cannot be searched in Chroma ({' '.join(str(error).split())[:120]}): "
                            "use EQ, NE, GT, GTE, LT, LTE, IN or NIN, joined by AND or OR") from None


def chroma_collection(vector_store: Any) -> Any | None:
    """The chromadb collection behind a LlamaIndex vector store, or None for other stores."""
    try:
        from llama_index.vector_stores.chroma import ChromaVectorStore
    except ImportError:  # the Chroma integration is optional for other stores
        return None
    return vector_store.client if isinstance(vector_store, ChromaVectorStore) else None
