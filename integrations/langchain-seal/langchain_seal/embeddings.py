"""`SealEmbeddings`: seal-rag's two towers as a LangChain embedding model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from seal_rag import SpeechEmbedding
from seal_rag.arguments import check_texts
from seal_rag.errors import ArgumentError
from seal_rag.audio import SAMPLE_RATE, AudioSource
from seal_rag.query_input import embed_audio_forms, embed_one_clip, is_audio_path, reject_encoded_audio
from seal_rag.text_tower import warn_if_truncated

from seal_rag import load_model


class SealEmbeddings(BaseModel, Embeddings):
    """Text-tower vectors for documents and typed queries; `embed_audio` for spoken ones.

    Both land in one space, so a store filled through `embed_documents` answers spoken
    questions embedded by `embed_audio`. `embed_query` given the path of an audio file (or
    its bytes) embeds the recording, never the path: `store.as_retriever().invoke("q.wav")`
    searches with the speech tower.

    The text tower reads 256 word pieces of each passage (its semantic half drops the rest):
    split documents at about 1,000 characters, as `SealDocumentLoader` does. Longer ones
    raise a `seal_rag.text_tower.TruncatedTextWarning`.

    Args:
        model_path: A seal-rag model directory; None loads the model shipped with seal-rag.
        speech_embedding: An already loaded `seal_rag.SpeechEmbedding` to share instead.
        sample_rate: Rate of raw sample arrays given as audio (files carry their own).
        batch_size: Texts embedded per forward pass.

    Example:
        >>> from langchain_chroma import Chroma
        >>> from langchain_seal import SealEmbeddings
        >>> embeddings = SealEmbeddings()
        >>> store = Chroma.from_texts(["The Brooklyn Bridge opened in 1883."], embeddings)
        >>> len(embeddings.embed_audio("question.wav"))
        8576
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_path: str | None = Field(default=None, description="seal-rag model directory; None for the shipped model.")
    sample_rate: int = Field(default=SAMPLE_RATE, gt=0, description="Sample rate of raw sample arrays.")
    batch_size: int = Field(default=64, gt=0, description="Texts embedded per forward pass.")

    _model: SpeechEmbedding = PrivateAttr()

    def __init__(self, *, speech_embedding: SpeechEmbedding | None = None, **data: Any) -> None:
        if isinstance(data.get("model_path"), Path):
            data["model_path"] = str(data["model_path"])
        if speech_embedding is not None and data.get("model_path") is not None:
            raise ArgumentError("give SealEmbeddings a model_path or a loaded speech_embedding, not both")
        super().__init__(**data)
        self._model = speech_embedding if speech_embedding is not None else load_model(self.model_path)

    @property
    def speech_embedding(self) -> SpeechEmbedding:
        """The loaded seal-rag model (both towers), e.g. for `SealIndex.open`."""
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages with the text tower."""
        texts = check_texts(texts)
        warn_if_truncated(self._model.text, texts)
        return self._model.embed_texts(texts, batch_size=self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a typed question with the text tower; an audio file's path or bytes with the speech tower."""
        if is_audio_path(text) or not isinstance(text, str):
            return self.audio_vector(text).tolist()
        reject_encoded_audio(text)
        return self._model.embed_texts([text], batch_size=self.batch_size)[0].tolist()

    def embed_audio(
        self, audio: AudioSource | list[AudioSource], sample_rate: int | None = None
    ) -> list[float] | list[list[float]]:
        """Embed spoken questions with the speech tower: one clip, or a list of clips.

        The forms of `seal_rag.SpeechEmbedding.embed_audio` and LlamaIndex's
        `SealEmbedding.get_audio_embedding`: one clip gives one vector, a list gives one per clip.

        Args:
            audio: A path to a wav/flac/ogg/mp3 file, its encoded bytes, or a sample array;
                or a list of them.
            sample_rate: Rate of sample arrays; defaults to `self.sample_rate`.

        Raises:
            seal_rag.AudioError: a clip is missing, not audio, empty, silent or too long, or
                the input is neither a clip nor a list of clips.
        """
        return embed_audio_forms(self._model, audio, self.sample_rate if sample_rate is None else sample_rate)

    async def aembed_audio(
        self, audio: AudioSource | list[AudioSource], sample_rate: int | None = None
    ) -> list[float] | list[list[float]]:
        """`embed_audio` in a worker thread, so the event loop stays free."""
        return await run_in_executor(None, self.embed_audio, audio, sample_rate)

    def audio_vector(self, audio: AudioSource, sample_rate: int | None = None) -> np.ndarray:
        """One clip's `embed_audio` as a float32 numpy vector."""
        return embed_one_clip(self._model, audio, self.sample_rate if sample_rate is None else sample_rate)
