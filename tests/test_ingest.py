import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seal_rag import DocumentError
from seal_rag.ingest import EMBED_BATCH, ingest_folder, store_chunks
from seal_rag.store import SealIndex

from .conftest import DEMOS, MINI_DATA


def _index(embedding, db):
    return SealIndex.open(embedding, db, create=True)


def _ids(db, embedding):
    return set(SealIndex.open(embedding, db).all_metadata())


def _two_files_ingested(embedding, tmp_path):
    """A folder of a.txt and b.txt, one sentence each, and the index they were ingested into."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Alpha is the first letter.")
    (docs / "b.txt").write_text("Beta is the second letter.")
    index = _index(embedding, tmp_path / "db")
    ingest_folder(embedding, docs, index, show_progress=False)
    return docs, index


def test_reingesting_the_same_folder_changes_nothing(embedding, tmp_path):
    index = _index(embedding, tmp_path / "db")
    first = ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    before = index.collection.get(include=["embeddings", "documents", "metadatas"])
    second = ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    after = index.collection.get(include=["embeddings", "documents", "metadatas"])
    assert first.added == first.total >= 36 and second.added == 0 and second.deleted == 0
    assert before["ids"] == after["ids"] and before["documents"] == after["documents"]
    assert (before["embeddings"] == after["embeddings"]).all()


def test_a_changed_file_replaces_its_chunks_and_prune_removes_deleted_files(embedding, tmp_path):
    docs, index = _two_files_ingested(embedding, tmp_path)
    (docs / "a.txt").write_text("Alpha was rewritten entirely.")
    summary = ingest_folder(embedding, docs, index, show_progress=False)
    texts = sorted(index.collection.get()["documents"])
    assert summary.added == 1 and summary.deleted == 1
    assert texts == ["Alpha was rewritten entirely.", "Beta is the second letter."]
    (docs / "b.txt").unlink()
    kept = ingest_folder(embedding, docs, index, show_progress=False)
    assert kept.pruned == 0 and index.count() == 2  # without --prune nothing is deleted
    pruned = ingest_folder(embedding, docs, index, prune=True, show_progress=False)
    assert pruned.pruned == 1 and index.collection.get()["documents"] == ["Alpha was rewritten entirely."]


def test_a_file_emptied_loses_its_chunks_and_a_file_unread_keeps_them(embedding, tmp_path):
    # An emptied file kept its old chunks for good, --prune or not: ask went on quoting text it no longer holds.
    docs, index = _two_files_ingested(embedding, tmp_path)
    (docs / "b.txt").write_bytes(b"Beta \xe9crit en Latin-1.")  # cannot be read now: its chunks stay, as a read error's
    (docs / "a.txt").write_text("   \n")
    summary = ingest_folder(embedding, docs, index, show_progress=False)
    assert summary.deleted == 1 and index.collection.get()["documents"] == ["Beta is the second letter."]
    assert {Path(s.path).name: s.reason for s in summary.skipped} == {
        "a.txt": "no text found: its earlier chunks are removed", "b.txt": "not UTF-8 text: re-save it as UTF-8 (iconv -f CP1252 -t UTF-8 for Windows text)"}


def test_a_field_dropped_from_a_record_leaves_the_stored_metadata(embedding, tmp_path):
    # Chroma merges metadata on update: a field removed from a JSONL record stayed, and filters still matched it.
    docs = tmp_path / "docs"
    docs.mkdir()
    record = {"id": "r1", "text": "The moon orbits the earth.", "lang": "en", "year": 1969}
    (docs / "notes.jsonl").write_text(json.dumps(record) + "\n")
    index = _index(embedding, tmp_path / "db")
    ingest_folder(embedding, docs, index, show_progress=False)
    (docs / "notes.jsonl").write_text(json.dumps({k: v for k, v in record.items() if k != "lang"} | {"year": 1970}) + "\n")
    summary = ingest_folder(embedding, docs, index, show_progress=False)
    [stored] = index.collection.get(include=["metadatas"])["metadatas"]
    assert summary.added == 0 and "lang" not in stored and stored["year"] == 1970
    assert not index.collection.get(where={"lang": "en"})["ids"]


def test_empty_folder_and_unreadable_only_folder_are_errors(embedding, tmp_path):
    index = _index(embedding, tmp_path / "db")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DocumentError, match="holds no .txt"):
        ingest_folder(embedding, tmp_path / "empty", index, show_progress=False)
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "x.txt").write_bytes(b"\x00\x01")
    with pytest.raises(DocumentError, match="no readable document.*binary"):
        ingest_folder(embedding, tmp_path / "binary", index, show_progress=False)


def _big_corpus(folder: Path, records: int) -> Path:
    """`records` real SQuAD paragraphs as JSONL; past the vendored 270, each round again is
    numbered, so every record is a distinct chunk."""
    folder.mkdir()
    passages = [json.loads(line) for line in (MINI_DATA / "qa" / "squad-v1.1-dev" / "passages.jsonl").open()]
    with open(folder / "squad.jsonl", "w") as f:
        for i in range(records):
            p, round_ = passages[i % len(passages)], i // len(passages)
            text = p["text"] if round_ == 0 else f"{p['text']} ({round_})"
            f.write(json.dumps({"id": f"{p['passage_id']}/{round_}", "text": text, "title": p["title"]}) + "\n")
    return folder


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# As on a terminal, so that progress bars redraw while they run instead of once at the end.
TERMINAL = dict(os.environ, TTY_COMPATIBLE="1", TTY_INTERACTIVE="1")


def _interrupt_midway(process: subprocess.Popen, label: str, sig=signal.SIGINT, timeout: float = 120) -> str:
    """Sends `sig` (Ctrl-C by default) once the `label` progress bar shows some but not all
    of its items done, and returns the whole of stderr without terminal escapes. The bar
    advances only after a batch is stored, so the signal lands mid-ingest with something
    already stored, on a fast machine or a loaded one."""
    seen, deadline, sent, stream = "", time.time() + timeout, False, process.stderr.fileno()
    while time.time() < deadline + timeout:  # then the wait below fails the test
        if select.select([stream], [], [], 1.0)[0]:  # a silent, hung process still meets the deadline
            chunk = os.read(stream, 4096)
            if not chunk:
                break
            seen += chunk.decode(errors="replace")
        recent = ANSI_ESCAPE.sub("", seen[-1000:])  # the bar's latest redraws
        counts = [(int(a), int(b)) for a, b in re.findall(re.escape(label) + r"\D*?(\d+)/(\d+)", recent)]
        if not sent and (any(0 < done < total for done, total in counts) or time.time() > deadline):
            process.send_signal(sig)
            sent = True
    process.wait(timeout=timeout)
    return ANSI_ESCAPE.sub("", seen)


@pytest.mark.slow
def test_an_ingest_killed_midway_finishes_on_rerun_with_exactly_the_clean_chunks(embedding, tmp_path):
    docs = _big_corpus(tmp_path / "docs", 1000)  # four batches, so the kill lands midway even under load
    command = [sys.executable, "-m", "seal_rag.cli", "ingest", str(docs), "--db", str(tmp_path / "killed")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=TERMINAL)
    _interrupt_midway(process, "Embedding chunks", signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, "ingest finished before it could be killed"
    partial = _ids(tmp_path / "killed", embedding)  # the store opens and answers after the kill
    assert 0 < len(partial) < 1000

    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    clean = ingest_folder(embedding, docs, _index(embedding, tmp_path / "clean"), show_progress=False)
    assert _ids(tmp_path / "killed", embedding) == _ids(tmp_path / "clean", embedding)
    assert clean.total == len(partial | _ids(tmp_path / "clean", embedding))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_during_ingest_says_how_to_finish_and_keeps_what_was_stored(embedding, tmp_path, sig, code):
    docs = _big_corpus(tmp_path / "docs", 1500)
    command = [sys.executable, "-m", "seal_rag.cli", "ingest", str(docs), "--db", str(tmp_path / "db")]
    # As a terminal's foreground job: a shell without job control starts background jobs with
    # SIGINT ignored, and a child inherits that, so a CI run launched with `&` would never see Ctrl-C.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=TERMINAL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stderr = _interrupt_midway(process, "Embedding chunks", sig)
    assert process.returncode == code, stderr
    lines = [line.strip() for line in stderr.splitlines() if line.strip().startswith("error:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "run the same command again" in lines[0], stderr
    assert "Traceback" not in stderr
    total = int(re.findall(r"Embedding chunks\D*?\d+/(\d+)", stderr)[-1])
    stored = len(_ids(tmp_path / "db", embedding))
    assert 0 < stored < total and f"{stored} chunks are stored" in lines[0]  # stopped midway, and says so truly


class _RecordingIndex:
    """Records upserts in order; the `fail_at`-th upsert raises, as a full disk would."""

    def __init__(self, fail_at: int | None = None):
        self.batches, self.fail_at = [], fail_at

    def upsert(self, ids, vectors, texts, metadatas, phonemes):
        if len(self.batches) + 1 == self.fail_at:
            raise OSError("No space left on device")
        assert len(ids) == len(vectors) == len(texts) == len(metadatas) and phonemes is None  # the model has no phonetic half
        self.batches.append(list(ids))


class _CountingModel:
    """Stands in for the text tower: one 4-d vector per text, and how many texts it embedded."""

    def __init__(self):
        self.embedded = 0

    def embed_texts(self, texts):
        import numpy as np

        self.embedded += len(texts)
        return np.ones((len(texts), 4), np.float32)


def test_store_chunks_writes_every_chunk_once_shortest_first_and_stops_at_a_failed_write():
    import random

    from seal_rag.chunking import Chunk

    chunks = [Chunk(f"c{i}", "x" * (1 + i % 97), {"source": "s"}) for i in range(2 * EMBED_BATCH + 5)]
    random.Random(0).shuffle(chunks)
    index, progress = _RecordingIndex(), []
    assert store_chunks(_CountingModel(), index, chunks, progress.append) == len(chunks)
    stored = [i for batch in index.batches for i in batch]
    assert sorted(stored) == sorted(c.id for c in chunks)  # each chunk once
    length = {c.id: len(c.text) for c in chunks}
    assert [length[i] for i in stored] == sorted(length.values())  # batches of like lengths pad little
    assert progress == [EMBED_BATCH, EMBED_BATCH, 5]
    chunks.sort(key=lambda c: len(c.text))

    failing, model = _RecordingIndex(fail_at=2), _CountingModel()
    with pytest.raises(OSError, match="No space"):
        store_chunks(model, failing, chunks)
    # The first batch is stored; the failure surfaces before a third batch is written.
    assert failing.batches == [[c.id for c in chunks[:EMBED_BATCH]]]
