import socket
import subprocess
import time

import numpy as np
import pytest

from seal_rag import IndexMismatchError, StoreError
from seal_rag.ingest import ingest_folder
from seal_rag.store import SealIndex, db_lock

from .conftest import DEMOS


class OtherModel:
    """Stands in for a different model: only its identity matters to the check."""

    name, dim, space_fingerprint = "other", 384, "0123456789abcdef"


def test_collection_is_cosine_and_stamped_with_the_model(embedding, demo_db):
    index = SealIndex.open(embedding, demo_db)
    assert index.collection.configuration["hnsw"]["space"] == "cosine"
    assert index.collection.metadata["seal_space"] == embedding.space_fingerprint
    assert index.collection.metadata["seal_dim"] == embedding.dim
    hits = index.query(embedding.embed_texts("Oxygen is a chemical element")[0], k=3)
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score
    assert "Oxygen" in hits[0].metadata["source"] and hits[0].metadata["end_char"] > hits[0].metadata["start_char"]


def test_another_model_is_refused(demo_db):
    with pytest.raises(IndexMismatchError, match="was built by model .* not 'other'.*re-ingest"):
        SealIndex.open(OtherModel(), demo_db)


def test_missing_db_and_missing_collection_are_clear(embedding, tmp_path):
    with pytest.raises(StoreError, match="no index at .*run `seal-rag ingest"):
        SealIndex.open(embedding, tmp_path / "nowhere")
    SealIndex.open(embedding, tmp_path / "db", collection="other", create=True)
    with pytest.raises(StoreError, match="no collection 'seal_rag'"):
        SealIndex.open(embedding, tmp_path / "db")


def test_empty_index_query_is_clear(embedding, tmp_path):
    index = SealIndex.open(embedding, tmp_path / "db", create=True)
    with pytest.raises(StoreError, match="is empty"):
        index.query(np.ones(384, dtype=np.float32) / np.sqrt(384))


def test_a_writer_keeps_other_processes_out(tmp_path):
    with db_lock(tmp_path, exclusive=True):
        probe = "from seal_rag.store import db_lock\nwith db_lock(%r, exclusive=False): pass" % str(tmp_path)
        result = subprocess.run(["python", "-c", probe], capture_output=True, text=True)
        assert result.returncode != 0 and "another seal-rag process is writing" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(chroma_server_process):
    return chroma_server_process[1]


@pytest.fixture
def chroma_server_process(tmp_path):
    """A real `chroma run` on a free port: `(process, port)`."""
    port = _free_port()
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


@pytest.mark.slow
def test_the_http_client_path_against_a_real_chroma_server(embedding, chroma_server):
    index = SealIndex.open(embedding, host="127.0.0.1", port=chroma_server, create=True)
    summary = ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    again = SealIndex.open(embedding, host="127.0.0.1", port=chroma_server)
    assert summary.total == again.count() >= 36
    hits = again.query(embedding.embed_texts("the Apollo program and the Moon")[0], k=2)
    assert "Apollo_program" in hits[0].metadata["source"]
    with pytest.raises(IndexMismatchError):
        SealIndex.open(OtherModel(), host="127.0.0.1", port=chroma_server)


def test_an_unreachable_server_is_clear(embedding):
    with pytest.raises(StoreError, match=f"cannot reach the Chroma server at 127.0.0.1:{1}.*chroma run"):
        SealIndex.open(embedding, host="127.0.0.1", port=1)
