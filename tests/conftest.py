"""Shared fixtures: real models, real audio vendored in tests/data, temporary stores.

tests/data is a miniature data folder (the layout `--data` / $SEAL_RAG_DATA points at): real
human clips and a few SQuAD and MedQuAD articles, enough for every test but those that read a
held-out set. Those take `heldout_data`, which skips them unless $SEAL_RAG_DATA is set.
"""

from __future__ import annotations

import os
import warnings
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


@pytest.fixture(scope="session")
def embedding():
    """The default model, loaded once per session (it may warn that it is untrained)."""
    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SpeechEmbedding.from_pretrained()


DEMOS = REPO / "demos"


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory, embedding) -> Path:
    """demos/kb ingested once into a persistent Chroma directory (do not write to it)."""
    from seal_rag.ingest import ingest_folder
    from seal_rag.store import SealIndex

    db = tmp_path_factory.mktemp("demo") / "db"
    index = SealIndex.open(embedding, db, create=True)
    ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    del index
    return db


@pytest.fixture(scope="session")
def demo_question() -> Path:
    return DEMOS / "questions" / "q5.wav"
