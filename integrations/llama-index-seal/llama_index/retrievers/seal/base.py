"""`SealSpeechRetriever`: spoken (or typed) questions over any LlamaIndex vector index."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.constants import DEFAULT_SIMILARITY_TOP_K
from llama_index.core.llms import LLM
from llama_index.core.schema import NodeWithScore, QueryBundle, QueryType
from llama_index.core.vector_stores.types import BasePydanticVectorStore, MetadataFilters
from llama_index.embeddings.seal import SealEmbedding
from seal_rag.retrieve import MODES, KeywordCache, Retriever
from seal_rag.arguments import check_top_k
from seal_rag.audio import AudioSource, check_rate
from seal_rag.collection_checks import verify_collection
from seal_rag.errors import ArgumentError
from seal_rag.store import DEFAULT_COLLECTION, Hit

from ._query import SpokenQueryBundle, as_query_bundle
from ._search import IndexSearch, chroma_collection
from .synthesizer import default_embed_model


class SealSpeechRetriever(BaseRetriever):
    """Retrieves nodes for a spoken question: audio in, `NodeWithScore` out.

    Queries may be an audio file path (also as `QueryBundle.query_str`, which is what
    `RetrieverQueryEngine.query("question.wav")` passes), encoded audio bytes, a sample
    array, a typed question (searched with the text tower, whatever the mode), or a
    `QueryBundle` whose `embedding` came from `SealEmbedding.get_audio_embedding`. The
    caller's `QueryBundle` is never changed.

    Scores are cosine similarities with the query vector, in every mode: the speech tower's
    vector for "speech" and "hybrid" (which ranks by reciprocal-rank fusion but reports each
    node's speech cosine, so one `similarity_cutoff` serves both), the transcript's text-tower
    vector for "cascade" and typed questions (text against text: these run higher).

    Args:
        index: A `VectorStoreIndex` whose documents were embedded by `SealEmbedding`.
        embed_model: The `SealEmbedding`; defaults to the index's embedding model.
        vector_store: Instead of `index`, a vector store that holds text (e.g. `ChromaVectorStore`).
        similarity_top_k: How many nodes to return.
        filters: LlamaIndex metadata filters, applied inside the vector store.
        mode: "speech" (speech tower, no transcript), "cascade" (ASR, then the text tower)
            or "hybrid" (both rankings fused), as in `seal-rag ask --mode`.
        transcribe: Transcribe in speech mode too, so a `SealQueryEngine`'s
            `Response.metadata["transcript"]` is filled for the extractive answer (an engine
            with an LLM transcribes anyway; cascade and hybrid modes always do).
        sample_rate: Rate of sample arrays; defaults to the embedding model's.
        transcriber: The ASR (`seal_rag.cascade.Transcriber`) for cascade and hybrid modes and
            `transcribe`; loaded on first need when None.
        keywords: Rank spoken questions as `seal-rag ask` does: decode with the knowledge base's
            phoneme model and re-rank by keyword spotting of its words (read from the store once,
            and again when its node count changes). Works over Chroma and stores whose nodes
            sit in the index's docstore; elsewhere, and with False, the vector alone ranks.

    Raises:
        seal_rag.IndexMismatchError: a Chroma index was built by another model.

    Example:
        >>> from llama_index.core.query_engine import RetrieverQueryEngine
        >>> from llama_index.retrievers.seal import SealExtractiveSynthesizer, SealSpeechRetriever
        >>> retriever = SealSpeechRetriever(index=index, embed_model=embed_model, similarity_top_k=3)
        >>> [n.node.metadata["source"] for n in retriever.retrieve("question.wav")]
        ['kb/brooklyn_bridge.txt', ...]
        >>> engine = retriever.as_query_engine()  # extractive; as_query_engine(llm=...) for any LLM
        >>> response = engine.query("question.wav")
        >>> response.response, response.metadata["transcript"], response.metadata["model"]
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
        keywords: bool = True,
    ) -> None:
        if (index is None) == (vector_store is None):
            raise ValueError("SealSpeechRetriever needs exactly one of index= or vector_store=")
        embed_model = embed_model or getattr(index, "_embed_model", None)
        if not isinstance(embed_model, SealEmbedding):
            raise TypeError(
                "SealSpeechRetriever needs embed_model=SealEmbedding(...), the model that embedded the documents "
                "(SealSpeechRetriever.from_defaults picks one)"
            )
        if mode not in MODES:
            raise ArgumentError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        check_top_k(similarity_top_k, "similarity_top_k")
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
        # 0 must not quietly mean the model's rate: arrays would be read at the wrong speed.
        self._sample_rate = embed_model.sample_rate if sample_rate is None else check_rate(sample_rate, "sample_rate")
        self._transcriber = transcriber  # faster-whisper, loaded on first need and kept
        self._transcriber_lock = threading.Lock()
        self._keywords = KeywordCache(embed_model.speech_embedding) if keywords else None
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def similarity_top_k(self) -> int:
        return self._similarity_top_k

    @similarity_top_k.setter
    def similarity_top_k(self, value: int) -> None:
        self._similarity_top_k = check_top_k(value, "similarity_top_k")

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def embed_model(self) -> SealEmbedding:
        return self._embed_model

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @classmethod
    def from_defaults(
        cls,
        index: VectorStoreIndex | None = None,
        embed_model: SealEmbedding | None = None,
        *,
        vector_store: BasePydanticVectorStore | None = None,
        db: str | Path | None = None,
        collection: str = DEFAULT_COLLECTION,
        **kwargs: Any,
    ) -> SealSpeechRetriever:
        """A retriever over an index, a vector store, or the directory `seal-rag ingest --db` filled.

        Args:
            index, vector_store: As in the constructor.
            embed_model: Defaults to the index's `SealEmbedding`, else `Settings.embed_model`
                when it is one, else the model shipped with seal-rag.
            db: A seal-rag Chroma directory, instead of `index` or `vector_store`.
            collection: The collection in `db`.
            **kwargs: The constructor's other arguments (`similarity_top_k`, `mode`, ...).

        Example:
            >>> retriever = SealSpeechRetriever.from_defaults(db=".seal_rag", similarity_top_k=3)
        """
        if db is not None:
            if index is not None or vector_store is not None:
                raise ValueError("pass one of index=, vector_store= or db=")
            from llama_index.vector_stores.chroma import ChromaVectorStore
            from seal_rag.store import SealIndex

            from seal_rag.errors import FrameworkVectorsError
            from seal_rag.store import connect

            embed_model = embed_model or default_embed_model()
            try:
                chroma = SealIndex.open(embed_model.speech_embedding, db=db, collection=collection).collection
            except FrameworkVectorsError:  # filled through LlamaIndex itself (`VectorStoreIndex(documents, ...)`): read as it is
                chroma = connect(db, must_exist=True).get_collection(collection, embedding_function=None)
            vector_store = ChromaVectorStore(chroma_collection=chroma)
        if embed_model is None and not isinstance(getattr(index, "_embed_model", None), SealEmbedding):
            embed_model = default_embed_model()
        return cls(index, embed_model, vector_store=vector_store, **kwargs)

    # ---- entry points: accept audio and typed questions as well as a QueryBundle ---------

    def retrieve(self, str_or_query_bundle: QueryType | AudioSource) -> list[NodeWithScore]:
        """Nodes for a spoken or typed question (path, bytes, array, text or `QueryBundle`), best first."""
        return super().retrieve(as_query_bundle(str_or_query_bundle, self._sample_rate))

    async def aretrieve(self, str_or_query_bundle: QueryType | AudioSource) -> list[NodeWithScore]:
        return await super().aretrieve(as_query_bundle(str_or_query_bundle, self._sample_rate))

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        bundle = as_query_bundle(query_bundle, self._sample_rate)
        search = IndexSearch(self._index, self._filters, label=bundle.query_str, model=self._embed_model.speech_embedding)
        if bundle.embedding is not None:
            vector = np.asarray(bundle.embedding, dtype=np.float32)
            if not np.isfinite(vector).all():
                raise ArgumentError("the QueryBundle's embedding holds NaN or infinite values: embed the query again")
            hits = search.query(vector, self._similarity_top_k)
        else:
            hits = self._search(bundle, search)
        return [NodeWithScore(node=search.nodes[hit.id], score=hit.score) for hit in hits]

    def _search(self, bundle: SpokenQueryBundle, search: IndexSearch) -> list[Hit]:
        """Hits for a bundle we own, recording on it what a synthesizer and the response need."""
        if bundle.kind == "text":
            pipeline = Retriever(self._embed_model.speech_embedding, search, self._mode)
            result = pipeline.retrieve_text(bundle.query_str, self._similarity_top_k)
        else:
            want = self._transcribe or bundle.needs_transcript
            pipeline = Retriever(self._embed_model.speech_embedding, search, self._mode, self._shared_transcriber(want),
                                 keywords=self._keyword_reranker(search))
            result = pipeline.retrieve(bundle.audio, self._similarity_top_k, sample_rate=bundle.sample_rate, want_transcript=want)
            bundle.transcript = result.transcript
            if bundle.needs_transcript and result.transcript is not None:
                bundle.query_str = result.transcript  # the LLM reads the question, not a file name
        # Keep the searched vector, as VectorIndexRetriever does, so the extractive
        # synthesizer reuses it instead of embedding the question again.
        bundle.embedding = result.query_vector.tolist()
        return result.hits

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _keyword_reranker(self, search: IndexSearch):
        """The knowledge base's keyword re-ranker when this retriever re-ranks and the store's texts can be read."""
        if self._keywords is None or self._mode == "cascade" or self._embed_model.speech_embedding.phonetic is None:
            return None
        if search.seal is not None:  # a seal-rag index keeps its tables on disk
            return self._keywords.for_index(search.seal)
        source = search.knowledge_base()
        return self._keywords.get(*source) if source is not None else None

    def _shared_transcriber(self, wanted: bool):
        with self._transcriber_lock:
            if self._transcriber is None and (wanted or self._mode != "speech"):
                from seal_rag.cascade import Transcriber

                self._transcriber = Transcriber()
            return self._transcriber

    # ---- convenience -------------------------------------------------------------------

    def as_query_engine(self, llm: LLM | None = None, **kwargs: Any):
        """A `SealQueryEngine` answering spoken or typed questions.

        Args:
            llm: Any LlamaIndex LLM; it reads the transcript of the question (made
                automatically). None answers extractively (the best sentence of the top
                passage, no LLM at all).
            **kwargs: `SealQueryEngine.from_args`'s, e.g. `streaming=True`, `node_postprocessors`.
        """
        from .query_engine import SealQueryEngine

        return SealQueryEngine.from_args(self, llm=llm, **kwargs)
