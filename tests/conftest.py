"""Shared fixtures: real models, real audio vendored in tests/data, temporary stores.

tests/data is a miniature data folder (the layout `--data` / $SEAL_RAG_DATA points at): real
human clips and a few SQuAD and MedQuAD articles, enough for every test but those that read a
held-out set. Those take `heldout_data`, which skips them unless $SEAL_RAG_DATA is set.
"""

from __future__ import annotations

import os
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
