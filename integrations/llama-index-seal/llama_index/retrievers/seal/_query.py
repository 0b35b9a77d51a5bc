"""Spoken (or typed) questions as LlamaIndex `QueryBundle`s that seal-rag owns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import QueryBundle
from seal_rag.audio import SAMPLE_RATE
from seal_rag.errors import NotAudioError
from seal_rag.query_input import audio_reference, describe_audio, is_audio_path, reject_encoded_audio


@dataclass
class SpokenQueryBundle(QueryBundle):
    """A query made by seal-rag from the caller's, which it may fill in freely.

    `query_str` is what callbacks, tracers and a synthesizer read: a short description of
    the audio (`<audio q.wav 3.2 s>`), the transcript once the engine asks for one, or the
    typed question. The audio itself is kept out of `repr` so tracers never log its bytes.
    """

    audio: Any = field(default=None, repr=False)  # None for a typed question or a given embedding
    kind: str = "text"  # "audio", "text" (typed) or "embedding" (the caller's vector)
    sample_rate: int = SAMPLE_RATE  # of a sample array
    reference: str | None = None  # the file's path, or the description
    transcript: str | None = None  # set by retrieval when one was made
    needs_transcript: bool = False  # an LLM will read query_str: make it the transcript


def as_query_bundle(query: Any, sample_rate: int = SAMPLE_RATE) -> SpokenQueryBundle:
    """A path, bytes, sample array, typed question or `QueryBundle` as a bundle of our own.

    The caller's objects are never changed: a `QueryBundle` they pass is copied. Only a
    `SpokenQueryBundle`, which a `SealQueryEngine` made and hands to both retriever and
    synthesizer, is returned as is, so the synthesizer sees what retrieval found out.
    """
    if isinstance(query, SpokenQueryBundle):
        return query
    if isinstance(query, QueryBundle):
        if query.embedding is not None:  # already embedded (get_audio_embedding): nothing to hear
            return SpokenQueryBundle(query_str=query.query_str, embedding=list(query.embedding), kind="embedding")
        query = query.query_str
    if isinstance(query, (str, Path)) and not is_audio_path(query):
        reject_encoded_audio(str(query))
        return SpokenQueryBundle(query_str=str(query))
    if isinstance(query, (str, Path, bytes, bytearray, np.ndarray)):
        audio = bytes(query) if isinstance(query, bytearray) else query
        return SpokenQueryBundle(
            query_str=describe_audio(audio, sample_rate), audio=audio, kind="audio", sample_rate=sample_rate,
            reference=audio_reference(audio, sample_rate),
        )
    raise NotAudioError(
        f"cannot query with a {type(query).__name__}: pass an audio file path, encoded audio bytes, a sample array, "
        "a typed question, or a QueryBundle"
    )
