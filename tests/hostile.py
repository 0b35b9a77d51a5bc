"""Helpers for the hostile-input tests: the CLI in this process, real speech of any length,
and commands run without root's power to ignore file permissions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from seal_rag.cli import app
from seal_rag.errors import SealError

from .conftest import DEMOS, FIXTURES

# Root reads any file whatever its mode; without these two capabilities it obeys modes like
# any user, so a chmod 000 folder is unreadable and a chmod a-w index read-only.
NO_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def as_plain_user(command: list[str]) -> list[str]:
    return NO_DAC_OVERRIDE + command if os.geteuid() == 0 else command


def cli(*args, input: bytes | str | None = None, env: dict | None = None) -> tuple[int, str, str]:
    """`seal-rag ARGS` run in this process: exit code, stdout, stderr.

    A `SealError` that escapes the command is what `main()` prints as one `error:` line and
    exit 1; anything else escaping is a bug and is raised here.
    """
    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)
    stderr, code = result.stderr, result.exit_code
    if isinstance(result.exception, SealError):
        message = str(result.exception)
        assert "\n" not in message, message
        stderr, code = stderr + f"error: {message}\n", 1
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return code, result.stdout, stderr


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def real_speech(seconds: float) -> np.ndarray:
    """`seconds` of real human speech at 16 kHz: the vendored fixture clips, end to end, repeated as needed."""
    from seal_rag.audio import load_audio

    clips = [load_audio(path) for path in sorted(FIXTURES.glob("*.flac"))]
    return np.resize(np.concatenate(clips), int(seconds * 16000)).astype(np.float32)


def question_then_speech(seconds: float) -> np.ndarray:
    """The demo question about the first Americans in space, then other real speech up to `seconds`."""
    from seal_rag.audio import load_audio

    question = load_audio(DEMOS / "questions" / "q5.wav")
    return np.concatenate([question, real_speech(seconds - question.size / 16000)])


@pytest.fixture
def shared_model(monkeypatch, embedding):
    """CLI commands in this process answer with the session's shipped model instead of loading
    it again (seconds each time); any other model directory still loads for real."""
    from seal_rag.embedding import SpeechEmbedding

    load = SpeechEmbedding.from_pretrained

    def from_pretrained(cls, path: str | Path | None = None, name: str | None = None):
        return embedding if path is None else load(path, name=name)

    monkeypatch.setattr(SpeechEmbedding, "from_pretrained", classmethod(from_pretrained))
    return embedding


def python_command(code: str) -> list[str]:
    return [sys.executable, "-c", code]
