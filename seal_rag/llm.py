"""Answers from any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp server, Ollama).

A speech LLM gets the audio itself beside the retrieved context: OpenAI's `input_audio`
content part or vLLM's `audio_url`. A text-only model gets the cascade's transcript.
Every failure becomes an `LLMError` with a one-line reason, so callers can still show the
retrieved sources.
"""

from __future__ import annotations

import base64
import io
import os
from typing import Iterator

import numpy as np
import soundfile as sf

from .answer import SYSTEM_PROMPT, context_block
from .audio import SAMPLE_RATE
from .errors import LLMError
from .store import Hit

AUDIO_FORMATS = ("none", "input_audio", "audio_url")
DEFAULT_TIMEOUT = 60.0  # seconds


def wav_base64(clip: np.ndarray) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, clip, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


def build_messages(hits: list[Hit], transcript: str | None, clip: np.ndarray | None, audio_format: str) -> list[dict]:
    """Chat messages holding the context and either the audio or its transcript."""
    context = f"Context:\n{context_block(hits)}"
    if audio_format == "none":
        question = transcript or "(the question could not be transcribed)"
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{context}\n\nQuestion: {question}"},
        ]
    if audio_format == "input_audio":
        audio_part = {"type": "input_audio", "input_audio": {"data": wav_base64(clip), "format": "wav"}}
    else:
        audio_part = {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{wav_base64(clip)}"}}
    instruction = {"type": "text", "text": f"{context}\n\nAnswer the spoken question in the audio."}
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": [instruction, audio_part]}]


class ChatAnswerer:
    """Streams an answer from `OPENAI_BASE_URL` with `OPENAI_API_KEY`.

    Args:
        model: The server's model name (what follows `openai:` in `--llm`).
        audio_format: "none" sends the transcript; "input_audio" or "audio_url" send the audio.
        timeout: Seconds before the request is abandoned.
    """

    def __init__(self, model: str, audio_format: str = "none", timeout: float = DEFAULT_TIMEOUT):
        if audio_format not in AUDIO_FORMATS:
            raise LLMError(f"--llm-audio-format must be one of {AUDIO_FORMATS}, not {audio_format!r}")
        from openai import OpenAI

        self.model, self.audio_format = model, audio_format
        self.base_url = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        # Local servers ignore the key, but the client insists on one.
        api_key = os.environ.get("OPENAI_API_KEY") or "not-set"
        self.client = OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self.timeout = timeout

    @property
    def needs_transcript(self) -> bool:
        return self.audio_format == "none"

    def stream(self, hits: list[Hit], transcript: str | None, clip: np.ndarray | None) -> Iterator[str]:
        """Yield the answer's text as it arrives. Raises `LLMError`."""
        import openai

        messages = build_messages(hits, transcript, clip, self.audio_format)
        try:
            stream = self.client.chat.completions.create(model=self.model, messages=messages, stream=True)
            received = False
            for event in stream:
                received = True
                if event.choices and event.choices[0].delta and event.choices[0].delta.content:
                    yield event.choices[0].delta.content
            if not received:
                raise LLMError(f"the chat model at {self.base_url} sent an empty reply: check the server's logs")
        except openai.AuthenticationError:
            raise LLMError(f"the chat model at {self.base_url} refused the API key (401): set OPENAI_API_KEY") from None
        except openai.APITimeoutError:
            raise LLMError(f"the chat model at {self.base_url} did not answer within {self.timeout:.0f} s: raise --llm-timeout or check the server") from None
        except openai.APIConnectionError:
            raise LLMError(f"cannot reach the chat model at {self.base_url}: start the server or fix OPENAI_BASE_URL") from None
        except openai.APIStatusError as error:
            raise LLMError(f"the chat model at {self.base_url} answered HTTP {error.status_code}: check the model name and server") from None
        except (openai.APIResponseValidationError, ValueError, KeyError, AttributeError, TypeError) as error:
            raise LLMError(f"the chat model at {self.base_url} sent a malformed reply ({type(error).__name__}): is it OpenAI-compatible?") from None
