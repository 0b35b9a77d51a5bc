"""`SealSpeechRetriever`: spoken questions over any LlamaIndex vector index."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.llms import LLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, QueryType
from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters
from llama_index.embeddings.seal import SealEmbedding
from seal_rag.ask import MODES, Retriever
from seal_rag.audio import AudioSource

from ._chroma import chroma_collection, verify_collection
from ._query import as_query_bundle, audio_of
from ._search import IndexSearch
from .synthesizer import SealExtractiveSynthesizer


class SealSpeechRetriever(BaseRetriever):
    """Retrieves nodes for a spoken question: audio in, `NodeWithScore` out.

    Queries may be an audio file path (also as `QueryBundle.query_str`, which is what
    `RetrieverQueryEngine.query("question.wav")` passes), encoded audio bytes, a sample
    array, or a `QueryBundle` whose `embedding` came from `SealEmbedding.get_audio_embedding`.
    Scores are cosine similarities (for `mode="hybrid"`, reciprocal-rank-fusion scores),
    as in `seal-rag ask`.

    Args:
        index: A `VectorStoreIndex` whose documents were embedded by `SealEmbedding`.
        embed_model: The `SealEmbedding`; defaults to the index's embedding model.
        vector_store: Instead of `index`, a vector store that holds text (e.g. `ChromaVectorStore`).
        similarity_top_k: How many nodes to return.
        filters: LlamaIndex metadata filters, applied inside the vector store.
        mode: "speech" (speech tower, no transcript), "cascade" (ASR, then the text tower)
            or "hybrid" (both rankings fused), as in `seal-rag ask --mode`.
        transcribe: Replace the bundle's `query_str` with the transcript, so an LLM
            synthesizer reads the question rather than a file name (one ASR pass; free
            in cascade and hybrid modes, which transcribe anyway).
        sample_rate: Rate of sample arrays; defaults to the embedding model's.
        transcriber: The ASR (`seal_rag.cascade.Transcriber`) for cascade and hybrid modes and
            `transcribe`; loaded on first need when None.

    Raises:
        seal_rag.IndexMismatchError: a Chroma index was built by another model.

    Example:
        >>> from llama_index.core.query_engine import RetrieverQueryEngine
        >>> from llama_index.retrievers.seal import SealExtractiveSynthesizer, SealSpeechRetriever
        >>> retriever = SealSpeechRetriever(index=index, embed_model=embed_model, similarity_top_k=3)
        >>> [n.node.metadata["source"] for n in retriever.retrieve("question.wav")]
        ['kb/brooklyn_bridge.txt', ...]
        >>> engine = RetrieverQueryEngine(retriever, response_synthesizer=SealExtractiveSynthesizer(embed_model))
        >>> print(engine.query("question.wav"))
    """

    def __init__(
        self,
        index: VectorStoreIndex | None = None,
        embed_model: SealEmbedding | None = None,
        *,
        vector_store: BasePydanticVectorStore | None = None,
        similarity_top_k: int = DEFAULT_SIMILARITY_TOP_K,
        filters: MetadataFilters | None = None,
        mode: str = "speech",
        transcribe: bool = False,
        sample_rate: int | None = None,
        transcriber: Any = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if (index is None) == (vector_store is None):
            raise ValueError("SealSpeechRetriever needs exactly one of index= or vector_store=")
        embed_model = embed_model or getattr(index, "_embed_model", None)
        if not isinstance(embed_model, SealEmbedding):
            raise TypeError("SealSpeechRetriever needs embed_model=SealEmbedding(...), the model that embedded the documents")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if similarity_top_k < 1:
            raise ValueError(f"similarity_top_k must be at least 1, not {similarity_top_k}")
        if index is None:
            index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
        collection = chroma_collection(index.vector_store)
        if collection is not None:
            verify_collection(collection, embed_model.speech_embedding)
        self._index = index
        self._embed_model = embed_model
        self._similarity_top_k = similarity_top_k
        self._filters = filters
        self._mode = mode
        self._transcribe = transcribe
        self._sample_rate = sample_rate or embed_model.sample_rate
        self._transcriber = transcriber  # faster-whisper, loaded on first need and kept
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def similarity_top_k(self) -> int:
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        self._similarity_top_k = value

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def embed_model(self) -> SealEmbedding:
        return self._embed_model

    # ---- entry points: accept audio as well as the str / QueryBundle LlamaIndex passes ----

    def retrieve(self, str_or_query_bundle: QueryType | AudioSource) -> list[NodeWithScore]:
        """Nodes for a spoken question (path, bytes, array or `QueryBundle`), best first."""
        return super().retrieve(as_query_bundle(str_or_query_bundle))

    async def aretrieve(self, str_or_query_bundle: QueryType | AudioSource) -> list[NodeWithScore]:
        return await super().aretrieve(as_query_bundle(str_or_query_bundle))

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        search = IndexSearch(self._index, self._filters, label=query_bundle.query_str)
        if query_bundle.embedding is not None:
            hits = search.query(np.asarray(query_bundle.embedding, dtype=np.float32), self._similarity_top_k)
        else:
            pipeline = Retriever(self._embed_model.speech_embedding, search, self._mode, self._shared_transcriber())
            result = pipeline.retrieve(
                audio_of(query_bundle), self._similarity_top_k, sample_rate=self._sample_rate, want_transcript=self._transcribe
            )
            # Cache the query vector on the bundle, as VectorIndexRetriever does, so the
            # synthesizer (e.g. the extractive one) reuses it instead of embedding again.
            query_bundle.embedding = result.query_vector.tolist()
            if self._transcribe and result.transcript is not None:
                query_bundle.query_str = result.transcript
            hits = result.hits
        return [NodeWithScore(node=search.nodes[hit.id], score=hit.score) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _shared_transcriber(self, needed: bool = False):
        if self._transcriber is None and (needed or self._mode != "speech" or self._transcribe):
            from seal_rag.cascade import Transcriber

            self._transcriber = Transcriber()
        return self._transcriber

    # ---- convenience -------------------------------------------------------------------

    def as_query_engine(self, llm: LLM | None = None, **kwargs: Any) -> RetrieverQueryEngine:
        """A `RetrieverQueryEngine` answering spoken questions.

        Args:
            llm: Any LlamaIndex LLM; it reads the transcript of the question. None answers
                extractively (the best sentence of the top passage, no LLM at all).
            **kwargs: Passed to `RetrieverQueryEngine.from_args` when `llm` is given.
        """
        if llm is None:
            return RetrieverQueryEngine(self, response_synthesizer=SealExtractiveSynthesizer(self._embed_model))
        reader = self
        if not self._transcribe:
            self._shared_transcriber(needed=True)  # load it here, so the copy shares it
            reader = copy.copy(self)  # same models, index and ASR; only this engine's copy transcribes
            reader._transcribe = True
        return RetrieverQueryEngine.from_args(reader, llm=llm, **kwargs)
