"""Shared fixtures: real models, real audio from ../shared/data, temporary stores."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEAL_RAG_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = SHARED_DATA / "speech" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    assert FIXTURES.is_dir(), f"speech fixtures not found at {FIXTURES}: set SEAL_RAG_SHARED_DATA"
    return FIXTURES


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
