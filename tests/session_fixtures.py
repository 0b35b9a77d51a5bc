"""The test session's one model and one demo index, shared by tests/ and both integrations' tests.

Loading the model and ingesting demos/kb take seconds each, so every test directory uses
these (pyproject's `addopts` registers this module as a plugin, whose fixtures are global).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

DEMOS = Path(__file__).resolve().parents[1] / "demos"


@pytest.fixture(scope="session")
def embedding():
    """The default model, loaded once per session (it may warn that it is untrained)."""
    from seal_rag import SpeechEmbedding

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SpeechEmbedding.from_pretrained()


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory, embedding) -> Path:
    """demos/kb ingested once by seal-rag into a persistent Chroma directory (do not write to it)."""
    from seal_rag.ingest import ingest_folder
    from seal_rag.store import SealIndex

    db = tmp_path_factory.mktemp("demo") / "db"
    index = SealIndex.open(embedding, db, create=True)
    ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    del index
    return db
