"""Spoken queries as LlamaIndex `QueryBundle`s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import QueryBundle
from seal_rag.errors import NotAudioError


@dataclass
class AudioQueryBundle(QueryBundle):
    """A `QueryBundle` carrying audio that is not a path: encoded bytes or a sample array.

    `query_str` holds a short description until a transcript replaces it.
    """

    audio: Any = None


def as_query_bundle(query: Any) -> QueryBundle:
    """A path, bytes, sample array or `QueryBundle` as the bundle `retrieve` works on.

    A bundle given by the caller is returned as is: LlamaIndex's query engines hand the
    same object to the synthesizer, which then sees the embedding (and transcript) we add.
    """
    if isinstance(query, QueryBundle):
        return query
    if isinstance(query, (str, Path)):
        return QueryBundle(query_str=str(query))
    if isinstance(query, (bytes, bytearray)):
        return AudioQueryBundle(query_str=f"<spoken query: {len(query)} bytes of audio>", audio=bytes(query))
    if isinstance(query, np.ndarray):
        return AudioQueryBundle(query_str=f"<spoken query: {query.shape[0] if query.ndim else 0} samples>", audio=query)
    raise NotAudioError(
        f"cannot query with a {type(query).__name__}: pass an audio file path, encoded audio bytes, a sample array "
        "or a QueryBundle whose embedding came from get_audio_embedding"
    )


def audio_of(bundle: QueryBundle) -> Any:
    """The audio a bundle stands for: its attached audio, else `query_str` as a file path."""
    audio = getattr(bundle, "audio", None)
    return bundle.query_str if audio is None else audio
