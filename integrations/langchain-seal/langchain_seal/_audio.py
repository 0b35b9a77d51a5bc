"""What the LangChain runnables accept as a spoken question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from seal_rag.audio import AudioSource
from seal_rag.errors import NotAudioError

# A path, encoded bytes, a sample array, or {"audio": one of those, "sample_rate": 16000}.
AudioInput = str | Path | bytes | bytearray | np.ndarray | dict


def audio_source(query: Any) -> AudioSource:
    """The audio inside a runnable's input."""
    if isinstance(query, dict):
        if "audio" not in query:
            raise NotAudioError(f"a dict input needs an 'audio' key (it has {sorted(query)}): pass {{'audio': 'question.wav'}}")
        query = query["audio"]
    if isinstance(query, (str, Path, bytes, bytearray, np.ndarray)):
        return query
    raise NotAudioError(
        f"cannot take a {type(query).__name__} as a spoken question: pass an audio file path, encoded audio bytes, "
        "a sample array, or {'audio': ...}"
    )


def sample_rate_of(query: Any, default: int) -> int:
    """The rate of a sample array: the input's own `sample_rate` key, else `default`."""
    return int(query.get("sample_rate", default)) if isinstance(query, dict) else default
