"""Shared fixtures: real models, real audio vendored in tests/data, temporary stores.

tests/data is a miniature data folder (the layout `--data` / $SEAL_RAG_DATA points at): real
human clips and a few SQuAD and MedQuAD articles, enough for every test but those that read a
held-out set. Those take `heldout_data`, which skips them unless $SEAL_RAG_DATA is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MINI_DATA = REPO / "tests" / "data"
FIXTURES = MINI_DATA / "speech" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def pytest_collection_modifyitems(items):
    """Tests that read a held-out set carry the `heldout` marker: `pytest -m heldout` runs just them."""
    for item in items:
        if "heldout_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.heldout)


@pytest.fixture(scope="session")
def heldout_data() -> Path:
    """The full data folder ($SEAL_RAG_DATA), for tests that read a held-out set."""
    from seal_rag.bench.data import ENV

    if not os.environ.get(ENV):
        pytest.skip(f"reads a held-out set: set {ENV} to the full data folder (README, Benchmark data)")
    return Path(os.environ[ENV])


@pytest.fixture(scope="session")
def jfk(fixtures_dir) -> Path:
    return fixtures_dir / "jfk.flac"


DEMOS = REPO / "demos"  # `embedding` and `demo_db` are in session_fixtures.py, shared with the integrations


@pytest.fixture(scope="session")
def demo_question() -> Path:
    return DEMOS / "questions" / "q5.wav"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(chroma_server_process):
    return chroma_server_process[1]


@pytest.fixture
def chroma_server_process(tmp_path):
    """A real `chroma run` on a free port: `(process, port)`."""
    port = free_port()
    server = subprocess.Popen(
        ["chroma", "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    yield server, port
    server.terminate()
    server.wait(timeout=30)
    from seal_rag.store import phonetic_dir

    shutil.rmtree(phonetic_dir(host="127.0.0.1", port=port).parent, ignore_errors=True)  # this machine's, in the cache
