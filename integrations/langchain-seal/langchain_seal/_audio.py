"""What the LangChain runnables accept as a question, and how they pass it on."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
from seal_rag.audio import SAMPLE_RATE, AudioSource
from seal_rag.errors import InvalidSamplesError, NotAudioError
from seal_rag.query_input import AUDIO_TYPES, audio_reference, describe_audio, is_audio_path, reject_encoded_audio

# A path, encoded bytes, a sample array, a typed question, or {"audio": ..., "sample_rate": 16000}.
AudioInput = str | Path | bytes | bytearray | np.ndarray | dict


class SpokenQuestion(str):
    """A question as the runnables hand it on: callbacks and tracers log its string value.

    That value is a short description of the audio (`<audio q.wav 3.2 s>`), never its bytes,
    or the typed question itself. The audio rides along as `audio` (None when typed), with
    its `sample_rate` and `reference` (the file's path, else the description).
    """

    audio: AudioSource | None
    sample_rate: int
    reference: str | None

    def __new__(cls, text: str, audio: AudioSource | None = None, sample_rate: int = SAMPLE_RATE,
                reference: str | None = None) -> SpokenQuestion:
        question = super().__new__(cls, text)
        question.audio, question.sample_rate, question.reference = audio, sample_rate, reference
        return question


def spoken_question(query: Any, default_rate: int = SAMPLE_RATE) -> SpokenQuestion:
    """A runnable's input as a `SpokenQuestion`: audio, or a typed question (a string that names no audio file)."""
    if isinstance(query, SpokenQuestion):
        return query
    rate = sample_rate_of(query, default_rate)
    if isinstance(query, dict):
        if "audio" not in query:
            raise NotAudioError(f"a dict input needs an 'audio' key (it has {sorted(query)}): pass {{'audio': 'question.wav'}}")
        query = query["audio"]
    if isinstance(query, str) and not is_audio_path(query):
        reject_encoded_audio(query)
        return SpokenQuestion(query)
    if isinstance(query, AUDIO_TYPES):
        return SpokenQuestion(describe_audio(query, rate), query, rate, audio_reference(query, rate))
    raise NotAudioError(
        f"cannot take a {type(query).__name__} as a question: pass an audio file path, encoded audio bytes, "
        "a sample array, {'audio': ...}, or a typed question"
    )


def audio_source(query: Any) -> AudioSource:
    """The audio inside a runnable's input (refusing a typed question)."""
    question = spoken_question(query)
    if question.audio is None:
        raise NotAudioError(f"{str(question)[:60]!r} is neither audio nor an audio file's path")
    return question.audio


def sample_rate_of(query: Any, default: int) -> int:
    """The rate of a sample array: the input's own `sample_rate`, else `default`."""
    if isinstance(query, SpokenQuestion):
        return query.sample_rate
    if not isinstance(query, dict) or "sample_rate" not in query:
        return default
    rate = query["sample_rate"]
    # numbers.Real takes numpy's scalars too (np.int64(16000) from an array's metadata).
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) \
            or rate != int(rate) or rate <= 0:
        raise InvalidSamplesError(f"'sample_rate' {rate!r} is not a rate: give the samples' rate in Hz, e.g. 16000")
    return int(rate)
