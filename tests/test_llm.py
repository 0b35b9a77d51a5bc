"""Answers from an OpenAI-compatible server: a real local HTTP server, real requests."""

import base64
import re
import io
import json

import numpy as np
import pytest
import soundfile as sf

from seal_rag import LLMError
from seal_rag.llm import ChatAnswerer
from seal_rag.store import Hit

from .openai_stub import REPLY_TOKENS, OpenAIStub
from .test_cli import one_line_error, seal

HITS = [Hit(1, "id1", 0.9, "Project Mercury put the first Americans into space.", {"title": "Apollo program"}),
        Hit(2, "id2", 0.5, "Oxygen is element eight.", {"title": "Oxygen"})]
CLIP = (0.1 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32)


@pytest.fixture
def stub(monkeypatch):
    with OpenAIStub() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        yield server


def test_text_model_gets_context_and_transcript_and_streams(stub):
    tokens = list(ChatAnswerer("ok").stream(HITS, "who went to space first", None))
    assert tokens == REPLY_TOKENS
    (request,) = stub.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer test-key"
    body = request["body"]
    assert body["stream"] is True and body["model"] == "ok"
    user = body["messages"][-1]["content"]
    assert '<passage n="1" file="" title="Apollo program">\nProject Mercury' in user and 'n="2" file="" title="Oxygen"' in user
    assert "Question: who went to space first" in user


@pytest.mark.parametrize("audio_format", ["input_audio", "audio_url"])
def test_speech_model_gets_the_audio_itself(stub, audio_format):
    "".join(ChatAnswerer("ok", audio_format).stream(HITS, None, CLIP))
    parts = stub.requests[0]["body"]["messages"][-1]["content"]
    assert "Project Mercury" in parts[0]["text"]
    if audio_format == "input_audio":
        encoded = parts[1]["input_audio"]["data"]
        assert parts[1]["input_audio"]["format"] == "wav"
    else:
        url = parts[1]["audio_url"]["url"]
        assert url.startswith("data:audio/wav;base64,")
        encoded = url.split(",", 1)[1]
    samples, rate = sf.read(io.BytesIO(base64.b64decode(encoded)), dtype="float32")
    assert rate == 16000 and samples.size == CLIP.size and np.abs(samples - CLIP).max() < 1e-3


@pytest.mark.parametrize(
    "model, key, base_url, message",
    [
        ("ok", "bad-key", None, "refused the API key (401)"),
        ("slow", "test-key", None, "did not answer within 1 s"),
        ("malformed", "test-key", None, "malformed reply"),
        ("ok", "test-key", "http://127.0.0.1:1/v1", "cannot reach the chat model"),
    ],
)
def test_failures_are_one_clear_llm_error(stub, monkeypatch, model, key, base_url, message):
    monkeypatch.setenv("OPENAI_API_KEY", key)
    if base_url:
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    with pytest.raises(LLMError, match=re.escape(message)):
        list(ChatAnswerer(model, timeout=1).stream(HITS, "question", None))


@pytest.mark.slow
def test_cli_streams_the_answer_and_still_prints_sources_when_the_llm_fails(stub, demo_db, demo_question):
    env = {"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "test-key"}
    good = seal("ask", demo_question, "--db", demo_db, "--llm", "openai:ok", "--json", env=env)
    assert good.returncode == 0, good.stderr.decode()
    row = json.loads(good.stdout)
    assert row["answer"] == "".join(REPLY_TOKENS) and row["answer_kind"] == "llm" and row["error"] is None
    sent = stub.requests[-1]["body"]["messages"][-1]["content"]
    assert "first americans into space" in sent.lower()  # the cascade transcript went along
    assert row["sources"][0]["text"][:40] in sent  # and so did the retrieved context

    failed = seal("ask", demo_question, "--db", demo_db, "--llm", "openai:ok",
                  env={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_API_KEY": "k"})
    assert "cannot reach the chat model" in one_line_error(failed)
    assert "Sources:" in failed.stdout.decode() and "1. score" in failed.stdout.decode()
