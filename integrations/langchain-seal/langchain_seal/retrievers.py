"""`SealSpeechRetriever`: spoken questions over any LangChain vector store."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from pydantic import Field, model_validator
from seal_rag.ask import Retriever

from ._audio import audio_source, sample_rate_of
from ._chroma import chroma_collection, verify_collection
from ._search import VectorStoreSearch
from .embeddings import SealEmbeddings
from .transcription import SealTranscriber

Mode = Literal["speech", "cascade", "hybrid"]


class SealSpeechRetriever(BaseRetriever):
    """Retrieves documents for a spoken question: audio in, `Document`s out.

    `invoke` takes an audio file path, encoded audio bytes, a sample array, or
    `{"audio": ..., "sample_rate": ...}`; `k` and `filter` may be given per call. Each
    document carries its stored metadata plus `score` (cosine similarity; for hybrid mode
    the reciprocal-rank-fusion score, as in `seal-rag ask`) and `rank`.

    Args:
        vectorstore: A `langchain_chroma.Chroma` store (checked against the model), or any
            `VectorStore` with `similarity_search_by_vector`.
        embeddings: The `SealEmbeddings`; defaults to the store's embedding function.
        k: How many documents to return.
        filter: Metadata filter passed to the store (a Chroma `where` dict for Chroma).
        mode: "speech" (speech tower, no transcript), "cascade" (ASR, then the text tower)
            or "hybrid" (both rankings fused), as in `seal-rag ask --mode`.
        transcriber: The ASR for cascade and hybrid modes; share it with the chain.

    Raises:
        seal_rag.IndexMismatchError: a Chroma store was filled by another model.

    Example:
        >>> from langchain_chroma import Chroma
        >>> from langchain_seal import SealEmbeddings, SealSpeechRetriever
        >>> embeddings = SealEmbeddings()
        >>> store = Chroma(client=client, collection_name="seal_rag", embedding_function=embeddings)
        >>> retriever = SealSpeechRetriever(vectorstore=store, k=3)
        >>> [d.metadata["source"] for d in retriever.invoke("question.wav", k=2)]
        ['kb/Apollo_program_0.txt', 'kb/Apollo_program_3.txt']
    """

    vectorstore: VectorStore
    embeddings: SealEmbeddings | None = None
    k: int = Field(default=4, gt=0)
    filter: dict[str, Any] | None = None
    mode: Mode = "speech"
    sample_rate: int | None = Field(default=None, gt=0)
    transcriber: SealTranscriber | None = None

    @model_validator(mode="after")
    def _bind_model(self) -> SealSpeechRetriever:
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
        return self

    def _get_relevant_documents(
        self,
        query: Any,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filter: dict[str, Any] | None = None,
    ) -> list[Document]:
        search = VectorStoreSearch(self.vectorstore, filter if filter is not None else self.filter)
        pipeline = Retriever(self.embeddings.speech_embedding, search, self.mode, self.transcriber)
        rate = sample_rate_of(query, self.sample_rate or self.embeddings.sample_rate)
        result = pipeline.retrieve(audio_source(query), k or self.k, sample_rate=rate)
        return [
            Document(page_content=hit.text, metadata={**hit.metadata, "score": hit.score, "rank": hit.rank}, id=hit.id)
            for hit in result.hits
        ]

    async def _aget_relevant_documents(
        self, query: Any, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # The models are CPU-bound torch: keep them off the event loop.
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **kwargs)
