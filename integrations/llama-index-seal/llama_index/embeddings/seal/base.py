"""`SealEmbedding`: seal-rag's two towers as a LlamaIndex embedding model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from seal_rag import ModelLoadError, SpeechEmbedding
from seal_rag.arguments import check_texts
from seal_rag.errors import ArgumentError
from seal_rag.audio import SAMPLE_RATE, AudioSource
from seal_rag.query_input import embed_audio_forms, embed_one_clip, describe_audio, is_audio_path, reject_encoded_audio
from seal_rag.text_tower import warn_if_truncated

from seal_rag import load_model

DEFAULT_BATCH = 64  # what seal-rag's own ingest embeds at once

dispatcher = get_dispatcher(__name__)


class SealEmbedding(BaseEmbedding):
    """Text in, text-tower vectors out; `get_audio_embedding` puts speech in the same space.

    Documents and typed queries go through the text tower (all-MiniLM-L6-v2 plus the
    shared scaling layer), so `VectorStoreIndex.from_documents(docs, embed_model=...)`
    and `ChromaVectorStore` work unchanged. Spoken queries go through the speech tower,
    including a query string that names an audio file: `get_query_embedding("q.wav")`
    (and so `index.as_retriever().retrieve("q.wav")`) embeds the recording, never its path.

    The text tower reads 256 word pieces of each passage (its semantic half drops the rest):
    chunk at about 200 tokens, as `SealReader` does, not LlamaIndex's default 1,024. Longer
    passages raise a `seal_rag.text_tower.TruncatedTextWarning`.

    Args:
        model_path: A seal-rag model directory; None loads the model shipped with seal-rag.
        speech_embedding: An already loaded `seal_rag.SpeechEmbedding` to share instead.
        model_name: Optional; must name the model loaded (the shipped model's name, or
            `model_path`'s directory), else `seal_rag.ModelLoadError`. A directory here
            loads that model.
        sample_rate: Rate of raw sample arrays given as audio (files carry their own).

    Example:
        >>> from llama_index.core import Document, VectorStoreIndex
        >>> from llama_index.embeddings.seal import SealEmbedding
        >>> embed_model = SealEmbedding()
        >>> index = VectorStoreIndex.from_documents(
        ...     [Document(text="The Brooklyn Bridge opened in 1883.")], embed_model=embed_model
        ... )
        >>> len(embed_model.get_audio_embedding("question.wav"))
        8576
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error, not silently ignored

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
        name = kwargs.pop("model_name", None)
        if speech_embedding is not None and model_path is not None:  # one would be silently ignored
            raise ArgumentError("give SealEmbedding a model_path or a loaded speech_embedding, not both")
        if model_path is None and speech_embedding is None and name and Path(name).expanduser().is_dir():
            model_path = name  # LlamaIndex users name models by model_name
        model = speech_embedding if speech_embedding is not None else load_model(model_path)
        if name not in (None, model.name) and model_path != name:
            raise ModelLoadError(
                f"model_name {name!r} is not the seal-rag model loaded ({model.name!r}): pass a seal-rag model "
                "directory as model_path (or model_name), or leave model_name out for the shipped model"
            )
        super().__init__(model_path=str(model_path) if model_path is not None else None, model_name=model.name, **kwargs)
        self._model = model

    @classmethod
    def class_name(cls) -> str:
        return "SealEmbedding"

    @property
    def speech_embedding(self) -> SpeechEmbedding:
        """The loaded seal-rag model (both towers), e.g. for `SealIndex.open`."""
        return self._model

    # ---- queries: a spoken one goes around LlamaIndex's query path --------------------

    def get_query_embedding(self, query: str) -> Embedding:
        if isinstance(query, str) and not is_audio_path(query):
            return super().get_query_embedding(query)
        return self._audio_query_embedding(query)

    async def aget_query_embedding(self, query: str) -> Embedding:
        if isinstance(query, str) and not is_audio_path(query):
            return await super().aget_query_embedding(query)
        return await asyncio.to_thread(self._audio_query_embedding, query)

    def _audio_query_embedding(self, audio: AudioSource) -> Embedding:
        # LlamaIndex's own path keys `embeddings_cache` by the query string (a file re-recorded
        # under the same path would get the old recording's vector back) and hands the query to
        # events that take strings only (a Path, bytes or array failed their validation, and the
        # callbacks were given the audio's bytes). Here callbacks see `<audio q.wav 3.2 s>`.
        description = describe_audio(audio, self.sample_rate)
        dispatcher.event(EmbeddingStartEvent(model_dict=self.to_payload()))
        with self.callback_manager.event(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: self.to_payload()}) as event:
            vector = self.audio_vector(audio).tolist()
            event.on_end(payload={EventPayload.CHUNKS: [description], EventPayload.EMBEDDINGS: [vector]})
        dispatcher.event(EmbeddingEndEvent(chunks=[description], embeddings=[vector]))
        return vector

    # ---- text side: what LlamaIndex calls while indexing and for typed queries -----

    def _get_query_embedding(self, query: str) -> Embedding:
        # A query string that names a recording (`retrieve("q.wav")`) is a spoken question.
        if is_audio_path(query) or not isinstance(query, str):
            return self.audio_vector(query).tolist()
        reject_encoded_audio(query)
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
        texts = check_texts(texts)
        warn_if_truncated(self._model.text, texts)
        return self._model.embed_texts(texts, batch_size=self.embed_batch_size).tolist()

    # ---- speech side ----------------------------------------------------------------

    def get_audio_embedding(
        self, audio: AudioSource | list[AudioSource], sample_rate: int | None = None
    ) -> Embedding | list[Embedding]:
        """Embed spoken queries with the speech tower: one clip, or a list of clips.

        The forms of `seal_rag.SpeechEmbedding.embed_audio` and LangChain's
        `SealEmbeddings.embed_audio`: one clip gives one vector, a list gives one per clip.

        Args:
            audio: A path to a wav/flac/ogg/mp3 file, its encoded bytes, or a sample array;
                or a list of them.
            sample_rate: Rate of sample arrays; defaults to `self.sample_rate`.

        Raises:
            seal_rag.AudioError: a clip is missing, not audio, empty, silent or too long, or
                the input is neither a clip nor a list of clips.
        """
        return embed_audio_forms(self._model, audio, self.sample_rate if sample_rate is None else sample_rate)

    async def aget_audio_embedding(
        self, audio: AudioSource | list[AudioSource], sample_rate: int | None = None
    ) -> Embedding | list[Embedding]:
        """`get_audio_embedding` in a worker thread."""
        return await asyncio.to_thread(self.get_audio_embedding, audio, sample_rate)

    def audio_vector(self, audio: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """One clip's `get_audio_embedding` as a float32 numpy vector."""
        return embed_one_clip(self._model, audio, self.sample_rate if sample_rate is None else sample_rate)
