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
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import soundfile as sf

from .answer import SYSTEM_PROMPT, context_block, quoted
from .arguments import AUDIO_FORMATS
from .audio import SAMPLE_RATE
from .errors import LLMError
from .store import Hit

DEFAULT_TIMEOUT = 60.0  # seconds


def wav_base64(clip: np.ndarray) -> str:
    buffer = io.BytesIO()
    sf.write(buffer, clip, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


def build_messages(hits: list[Hit], transcript: str | None, clip: np.ndarray | None, audio_format: str) -> list[dict]:
    """Chat messages holding the context and either the audio or its transcript."""
    context = f"Context:\n{context_block(hits)}"
    if audio_format == "none":
        question = quoted(transcript or "(the question could not be transcribed)")
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
        base_url = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        self.base_url = redacted(base_url)  # what errors name: never a key someone put in the URL
        # Local servers ignore the key, but the client insists on one.
        api_key = os.environ.get("OPENAI_API_KEY") or "not-set"
        try:
            self.client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        except Exception as error:  # noqa: BLE001 - httpx refuses a malformed URL with several types
            raise LLMError(f"OPENAI_BASE_URL {self.base_url!r} is not a usable URL ({type(error).__name__}): fix it") from None
        self.timeout = timeout

    @property
    def needs_transcript(self) -> bool:
        return self.audio_format == "none"

    def stream(self, hits: list[Hit], transcript: str | None, clip: np.ndarray | None) -> Iterator[str]:
        """Yield the answer's text as it arrives. Raises `LLMError`."""
        import httpx
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
        except openai.APIError as error:  # e.g. an SSE `error` event in the middle of the stream
            detail = " ".join(str(getattr(error, "message", "") or error).split())[:160]
            raise LLMError(f"the chat model at {self.base_url} stopped with an error ({detail}): check the server's logs") from None
        except httpx.TimeoutException:  # the stream itself stalled: openai does not wrap errors raised mid-stream
            raise LLMError(f"the chat model at {self.base_url} stopped sending for {self.timeout:.0f} s mid-answer: raise --llm-timeout or check the server") from None
        except httpx.HTTPError as error:
            raise LLMError(f"the connection to the chat model at {self.base_url} broke mid-answer ({type(error).__name__}): check the server") from None


def redacted(url: str) -> str:
    """`url` without what may hold a secret: user:password@ and the query string."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a malformed OPENAI_BASE_URL)"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))
