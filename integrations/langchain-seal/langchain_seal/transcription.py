"""`SealTranscriber`: speech to text as a LangChain runnable, for prompts of text-only chat models."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, PrivateAttr
from seal_rag.audio import SAMPLE_RATE, load_audio

from ._audio import AudioInput, SpokenQuestion, spoken_question

MEMO_SIZE = 8  # recent clips remembered: one chain call asks for the same clip twice


class SealTranscriber(RunnableSerializable[AudioInput, str]):
    """Transcribes a spoken question with seal-rag's faster-whisper cascade (CPU, int8).

    The same instance can serve a `SealSpeechRetriever` in cascade or hybrid mode and the
    chain's `question` branch: a clip transcribed once is remembered, so the chain runs ASR
    once per question even though both branches need the words.

    Args:
        beam_size: Beam width; 1 is greedy and fastest.
        sample_rate: Rate of raw sample arrays.
        max_seconds: Longest clip accepted.

    Example:
        >>> from langchain_seal import SealTranscriber
        >>> SealTranscriber().invoke("brooklyn_bridge.wav")
        'How old is the Brooklyn Bridge?'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    beam_size: int = Field(default=5, gt=0)
    sample_rate: int = Field(default=SAMPLE_RATE, gt=0)
    max_seconds: float = Field(default=600.0, gt=0)

    _asr: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _memo: OrderedDict = PrivateAttr(default_factory=OrderedDict)

    def invoke(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        # Callbacks see `<audio q.wav 3.2 s>`, not the audio itself.
        return self._call_with_config(self._transcribe_input, spoken_question(input, self.sample_rate), config)

    def _transcribe_input(self, question: SpokenQuestion) -> str:
        if question.audio is None:
            return str(question)  # a typed question is its own transcript
        return self.transcribe(load_audio(question.audio, question.sample_rate, self.max_seconds))

    def transcribe(self, clip: np.ndarray) -> str:
        """16 kHz mono samples to English text (the `seal_rag.cascade.Transcriber` interface)."""
        key = hashlib.sha1(np.ascontiguousarray(clip, dtype=np.float32).tobytes()).hexdigest()
        # One lock for loading, transcribing and the memo: a second caller of the same
        # clip waits and then reads the memo instead of running ASR again.
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
            if self._asr is None:
                from seal_rag.cascade import Transcriber

                self._asr = Transcriber(beam_size=self.beam_size)
            text = self._asr.transcribe(clip)
            self._memo[key] = text
            if len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
            return text
