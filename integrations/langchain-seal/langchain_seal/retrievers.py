"""`SealSpeechRetriever`: spoken (or typed) questions over any LangChain vector store."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator
from seal_rag.collection_checks import verify_collection
from seal_rag.errors import ArgumentError
from seal_rag.retrieve import KeywordCache, Retriever

from ._audio import AudioInput, SpokenQuestion, spoken_question
from ._search import VectorStoreSearch, chroma_collection
from .embeddings import SealEmbeddings
from .transcription import SealTranscriber

Mode = Literal["speech", "cascade", "hybrid"]
SEARCH_TYPES = ("similarity", "similarity_score_threshold")
SEARCH_KWARGS = ("k", "filter", "score_threshold")  # what `search_kwargs` may set, as VectorStoreRetriever's do


class SealSpeechRetriever(BaseRetriever):
    """Retrieves documents for a spoken question: audio in, `Document`s out.

    `invoke` takes an audio file path, encoded audio bytes, a sample array,
    `{"audio": ..., "sample_rate": ...}`, or a typed question (a string that names no audio
    file: searched with the text tower, whatever the mode); `k`, `filter` and
    `score_threshold` may be given per call. Callbacks and tracers see `<audio q.wav 3.2 s>`,
    never the audio's bytes. Each document carries its stored metadata plus `rank` and
    `score`, the cosine similarity with the query vector in every mode: the speech tower's
    vector for "speech" and "hybrid" (hybrid ranks by reciprocal-rank fusion, reports each
    document's speech cosine, and keeps the fusion value in `rrf_score`), the transcript's
    text-tower vector for "cascade" and typed questions (text against text: these run higher).

    Args:
        vectorstore: A `langchain_chroma.Chroma` store (checked against the model), or any
            `VectorStore` with `similarity_search_by_vector`.
        embeddings: The `SealEmbeddings`; defaults to the store's embedding function.
        k: How many documents to return.
        filter: Metadata filter passed to the store (a Chroma `where` dict for Chroma, a function
            of a `Document` for `InMemoryVectorStore`, the store's own form elsewhere).
        score_threshold: Drop documents scoring below this cosine.
        search_type: "similarity" (default) or "similarity_score_threshold" (needs a
            `score_threshold`), as for `VectorStore.as_retriever`; "mmr" is refused, since
            seal-rag ranks by similarity (or fusion) only.
        search_kwargs: `k`, `filter` and `score_threshold`, as for `VectorStore.as_retriever`;
            read at each call, so changing them later counts (per-call values come first).
        mode: "speech" (speech tower, no transcript), "cascade" (ASR, then the text tower)
            or "hybrid" (both rankings fused), as in `seal-rag ask --mode`.
        transcriber: The ASR for cascade and hybrid modes; share it with the chain.
        keywords: Rank spoken questions as `seal-rag ask` does: decode with the knowledge base's
            phoneme model and re-rank by keyword spotting of its words (read from the store once,
            and again when its document count changes). Works over Chroma and
            `InMemoryVectorStore`; elsewhere, and with False, the vector alone ranks.

    Raises:
        seal_rag.IndexMismatchError: a Chroma store was filled by another model.
        pydantic.ValidationError: an unknown field, search_type or search_kwargs key.

    Example:
        >>> from langchain_chroma import Chroma
        >>> from langchain_seal import SealEmbeddings, SealSpeechRetriever
        >>> embeddings = SealEmbeddings()
        >>> store = Chroma(client=client, collection_name="seal_rag", embedding_function=embeddings)
        >>> retriever = SealSpeechRetriever(vectorstore=store, search_kwargs={"k": 3})
        >>> [d.metadata["source"] for d in retriever.invoke("question.wav", k=2)]
        ['kb/Apollo_program_0.txt', 'kb/Apollo_program_3.txt']
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not silently ignored

    vectorstore: VectorStore
    embeddings: SealEmbeddings | None = None
    k: int = Field(default=4, gt=0)
    filter: Any = None  # a Chroma `where` dict for Chroma, a function of a Document for InMemoryVectorStore
    score_threshold: float | None = None
    search_type: str = "similarity"
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    mode: Mode = "speech"
    sample_rate: int | None = Field(default=None, gt=0)
    transcriber: SealTranscriber | None = None
    keywords: bool = True
    _keyword_cache: KeywordCache | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _check_search_kwargs(cls, data: Any) -> Any:
        # `search_kwargs` are read at each call (`_setting`), so a later change to them counts, as
        # `configurable_fields` and `model_copy` make; a field given beside them must agree (one at its
        # default is not given: `configurable_fields` rebuilds the retriever passing every field).
        if not isinstance(data, dict) or not data.get("search_kwargs"):
            return data
        _check_search_keys(data["search_kwargs"])
        for key, value in data["search_kwargs"].items():
            if key in data and data[key] != value and data[key] != cls.model_fields[key].default:
                raise ValueError(f"{key}={data[key]!r} and search_kwargs {key}={value!r} disagree: give it once")
        return data

    @field_validator("search_type")
    @classmethod
    def _known_search_type(cls, value: str) -> str:
        if value not in SEARCH_TYPES:
            raise ValueError(
                f"search_type {value!r} is not supported: use 'similarity' or 'similarity_score_threshold' "
                "(seal-rag ranks by similarity, or rank fusion in hybrid mode; it offers no mmr)"
            )
        return value

    @model_validator(mode="after")
    def _bind_model(self) -> SealSpeechRetriever:
        if self.search_type == "similarity_score_threshold" and self._setting("score_threshold", None) is None:
            raise ValueError("search_type 'similarity_score_threshold' needs search_kwargs={'score_threshold': ...}")
        if self.embeddings is None:
            if not isinstance(self.vectorstore.embeddings, SealEmbeddings):
                raise ValueError("pass embeddings=SealEmbeddings(...): the store's embedding function is not one")
            self.embeddings = self.vectorstore.embeddings
        collection = chroma_collection(self.vectorstore)
        if collection is not None:
            verify_collection(collection, self.embeddings.speech_embedding)
        if self.transcriber is None and self.mode != "speech":
            # Loads faster-whisper on first use only.
            self.transcriber = SealTranscriber(sample_rate=self.sample_rate or self.embeddings.sample_rate)
        if self.keywords and self.mode != "cascade" and self.embeddings.speech_embedding.phonetic is not None:
            self._keyword_cache = KeywordCache(self.embeddings.speech_embedding)
        return self

    # Callbacks receive the input as given: hand them the question's short description.
    def invoke(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        return super().invoke(self.question(input), config, **kwargs)

    async def ainvoke(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> list[Document]:
        return await super().ainvoke(self.question(input), config, **kwargs)

    def astream_events(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        return super().astream_events(self.question(input), config, **kwargs)

    def astream_log(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        return super().astream_log(self.question(input), config, **kwargs)

    def question(self, input: Any) -> SpokenQuestion:
        """The input as the retriever passes it on (see `SpokenQuestion`)."""
        return spoken_question(input, self.sample_rate or self.embeddings.sample_rate)

    def _setting(self, name: str, given: Any) -> Any:
        """A search setting for one call: given per call, else `search_kwargs`' (read now), else the field's."""
        if given is not None:
            return given
        _check_search_keys(self.search_kwargs)  # they may have been changed since the constructor checked them
        return self.search_kwargs.get(name, getattr(self, name))

    def _get_relevant_documents(
        self,
        query: Any,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: Any = None,
        score_threshold: float | None = None,
        **unknown: Any,
    ) -> list[Document]:
        if unknown:  # Python's own TypeError would not say what is taken instead
            raise ArgumentError(f"{', '.join(sorted(unknown))} cannot be given per call: SealSpeechRetriever takes "
                                f"{', '.join(SEARCH_KWARGS)} per call (others in its constructor)")
        threshold = self._setting("score_threshold", score_threshold)
        # NaN compares False with every score, so it would silently drop every document.
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or math.isnan(threshold)):
            raise ArgumentError(f"score_threshold must be a number (a cosine), not {threshold!r}")
        question = self.question(query)
        search = VectorStoreSearch(self.vectorstore, self._setting("filter", filter), self.embeddings.speech_embedding)
        keywords = None
        if self._keyword_cache is not None and question.audio is not None:
            if search.seal is not None:  # a seal-rag index keeps its tables on disk
                keywords = self._keyword_cache.for_index(search.seal)
            elif (source := search.knowledge_base()) is not None:
                keywords = self._keyword_cache.get(*source)
        pipeline = Retriever(self.embeddings.speech_embedding, search, self.mode, self.transcriber, keywords=keywords)
        k = self._setting("k", k)  # 0 is a wrong k, refused as such, not the default
        if question.audio is None:
            result = pipeline.retrieve_text(str(question), k)
        else:
            result = pipeline.retrieve(question.audio, k, sample_rate=question.sample_rate)
        return [
            Document(page_content=hit.text, metadata={**hit.metadata, "score": hit.score, "rank": hit.rank}, id=hit.id)
            for hit in result.hits
            if threshold is None or hit.score >= threshold
        ]

    async def _aget_relevant_documents(
        self, query: Any, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # The models are CPU-bound torch: keep them off the event loop.
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs)


def _check_search_keys(search_kwargs: dict) -> None:
    unknown = sorted(set(search_kwargs) - set(SEARCH_KWARGS))
    if unknown:
        raise ArgumentError(f"search_kwargs {unknown} are not supported: SealSpeechRetriever takes {list(SEARCH_KWARGS)}")
