"""`SealEmbedding`: seal-rag's two towers as a LlamaIndex embedding model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from seal_rag import SpeechEmbedding
from seal_rag.audio import SAMPLE_RATE, AudioSource

from seal_rag import load_model

DEFAULT_BATCH = 64  # what seal-rag's own ingest embeds at once


class SealEmbedding(BaseEmbedding):
    """Text in, text-tower vectors out; `get_audio_embedding` puts speech in the same space.

    Documents and typed queries go through the text tower (all-MiniLM-L6-v2 plus the
    shared scaling layer), so `VectorStoreIndex.from_documents(docs, embed_model=...)`
    and `ChromaVectorStore` work unchanged. Spoken queries go through the speech tower.

    Args:
        model_path: A seal-rag model directory; None loads the model shipped with seal-rag.
        speech_embedding: An already loaded `seal_rag.SpeechEmbedding` to share instead.
        sample_rate: Rate of raw sample arrays given as audio (files carry their own).

    Example:
        >>> from llama_index.core import Document, VectorStoreIndex
        >>> from llama_index.embeddings.seal import SealEmbedding
        >>> embed_model = SealEmbedding()
        >>> index = VectorStoreIndex.from_documents(
        ...     [Document(text="The Brooklyn Bridge opened in 1883.")], embed_model=embed_model
        ... )
        >>> len(embed_model.get_audio_embedding("question.wav"))
        384
    """

    model_path: str | None = Field(
        default=None, description="seal-rag model directory; None for the model shipped with seal-rag."
    )
    sample_rate: int = Field(default=SAMPLE_RATE, gt=0, description="Sample rate of raw sample arrays.")
    embed_batch_size: int = Field(default=DEFAULT_BATCH, gt=0, le=2048, description="Texts embedded per call.")

    _model: SpeechEmbedding = PrivateAttr()

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        speech_embedding: SpeechEmbedding | None = None,
        **kwargs: Any,
    ) -> None:
        model = speech_embedding if speech_embedding is not None else load_model(model_path)
        kwargs.setdefault("model_name", model.name)
        super().__init__(model_path=str(model_path) if model_path is not None else None, **kwargs)
        self._model = model

    @classmethod
    def class_name(cls) -> str:
        return "SealEmbedding"

    @property
    def speech_embedding(self) -> SpeechEmbedding:
        """The loaded seal-rag model (both towers), e.g. for `SealIndex.open`."""
        return self._model

    # ---- text side: what LlamaIndex calls while indexing and for typed queries -----

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed_texts([query])[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed_texts([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed_texts(texts)

    # The model is CPU-bound torch: run it in a worker thread so the event loop stays free.
    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        # One batched call rather than the base class's one thread per text.
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    def _embed_texts(self, texts: list[str]) -> list[Embedding]:
        return self._model.embed_texts(texts, batch_size=self.embed_batch_size).tolist()

    # ---- speech side ----------------------------------------------------------------

    def get_audio_embedding(self, audio: AudioSource, sample_rate: int | None = None) -> Embedding:
        """Embed one spoken query with the speech tower.

        Args:
            audio: A path to a wav/flac/ogg/mp3 file, its encoded bytes, or a sample array.
            sample_rate: Rate of a sample array; defaults to `self.sample_rate`.

        Raises:
            seal_rag.AudioError: the input is missing, not audio, empty, silent or too long.
        """
        return self.audio_vector(audio, sample_rate).tolist()

    async def aget_audio_embedding(self, audio: AudioSource, sample_rate: int | None = None) -> Embedding:
        """`get_audio_embedding` in a worker thread."""
        return await asyncio.to_thread(self.get_audio_embedding, audio, sample_rate)

    def audio_vector(self, audio: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """`get_audio_embedding` as a float32 numpy vector."""
        return self._model.embed_audio([audio], sample_rate=sample_rate or self.sample_rate)[0]
