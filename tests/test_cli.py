"""The `seal-rag` command on real models and real audio: in this process through Typer's runner,
and as a real process where exit codes and the process itself are the point."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from .conftest import DEMOS
from .hostile import cli, shared_model  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("shared_model")  # in-process commands answer with the session's model


@dataclass
class Ran:
    returncode: int
    stdout: bytes
    stderr: bytes


def seal(*args, stdin: bytes | None = None, env: dict | None = None, real_process: bool = False) -> Ran:
    """`seal-rag ARGS`: in this process (seconds saved on every call), or as a user's shell runs it."""
    if real_process:
        done = subprocess.run([sys.executable, "-m", "seal_rag.cli", *map(str, args)],
                              input=stdin, capture_output=True, env={**os.environ, **(env or {})}, timeout=600)
        return Ran(done.returncode, done.stdout, done.stderr)
    code, out, err = cli(*args, input=stdin, env=env)
    return Ran(code, out.encode(), err.encode())


def one_line_error(result) -> str:
    errors = [line for line in result.stderr.decode().splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1, result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
    return errors[0]


@pytest.mark.slow
def test_ask_prints_answer_then_sources_and_json_for_several_files(demo_db, demo_question):
    text = seal("ask", demo_question, "--db", demo_db, "-k", "3", "--timings", real_process=True)
    assert text.returncode == 0, text.stderr.decode()
    out = text.stdout.decode()
    assert out.index("Answer (extractive") < out.index("Sources:") < out.index("Timings:")
    assert out.count("score ") == 3 and "[chars " in out
    for stage in ("load", "features", "encode", "search", "keywords"):  # keyword re-ranking is on by default
        assert f"{stage} " in out.split("Timings:")[1]

    other = DEMOS / "questions" / "q1.wav"
    as_json = seal("ask", demo_question, other, "--db", demo_db, "--json", "-k", "3")
    rows = [json.loads(line) for line in as_json.stdout.decode().splitlines()]
    assert [r["audio"] for r in rows] == [str(demo_question), str(other)]
    for row in rows:
        assert row["answer_kind"] == "extractive" and row["answer"]
        assert [s["rank"] for s in row["sources"]] == [1, 2, 3]
        assert all(s["source"].endswith(".txt") and s["end_char"] > s["start_char"] for s in row["sources"])


@pytest.mark.slow
def test_cascade_mode_finds_the_gold_passage_and_stdin_works(demo_db, demo_question):
    gold = {json.loads(line)["audio"]: json.loads(line)["gold_source"] for line in (DEMOS / "questions" / "questions.jsonl").open()}
    result = seal("ask", "-", "--db", demo_db, "--json", "--mode", "cascade", stdin=demo_question.read_bytes())
    row = json.loads(result.stdout)
    assert row["audio"] == "stdin" and "first americans into space" in row["transcript"].lower()
    assert row["sources"][0]["source"].endswith(gold[demo_question.name])
    hybrid = json.loads(seal("ask", demo_question, "--db", demo_db, "--json", "--mode", "hybrid", "-k", "10").stdout)
    assert any(s["source"].endswith(gold[demo_question.name]) for s in hybrid["sources"])


@pytest.mark.slow
def test_ingest_cli_reports_counts_and_is_idempotent(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DEMOS / "kb", docs)
    first = seal("ingest", docs, "--db", tmp_path / "db")
    second = seal("ingest", docs, "--db", tmp_path / "db")
    assert first.returncode == 0 and second.returncode == 0, first.stderr.decode()
    assert "36 files" in first.stdout.decode() and " 0 chunks added" in second.stdout.decode()
    (docs / "broken.txt").write_bytes(b"\x00\x01binary")
    partial = seal("ingest", docs, "--db", tmp_path / "db")
    assert partial.returncode == 2 and "skipped" in partial.stderr.decode() and "binary" in partial.stderr.decode()
    assert "1 files skipped" in partial.stdout.decode()


def _bad_audio(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio")
    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    return {"not audio": tmp_path / "notes.wav", "silence": tmp_path / "silence.wav", "missing": tmp_path / "nope.wav"}


@pytest.mark.slow
def test_bad_input_gives_one_line_errors_and_nonzero_exit(demo_db, demo_question, tmp_path):
    bad = _bad_audio(tmp_path)
    assert "is not readable audio" in one_line_error(seal("ask", bad["not audio"], "--db", demo_db, real_process=True))
    assert "is silent" in one_line_error(seal("ask", bad["silence"], "--db", demo_db))
    assert "does not exist" in one_line_error(seal("ask", bad["missing"], "--db", demo_db))
    assert "no index at" in one_line_error(seal("ask", demo_question, "--db", tmp_path / "missing-db"))
    assert "cannot reach the Chroma server" in one_line_error(seal("ask", demo_question, "--chroma-host", "127.0.0.1", "--chroma-port", "1"))
    (tmp_path / "empty").mkdir()
    assert "holds no .txt" in one_line_error(seal("ingest", tmp_path / "empty", "--db", tmp_path / "db2"))
    assert "--mode must be one of" in one_line_error(seal("ask", demo_question, "--db", demo_db, "--mode", "x", real_process=True))
    assert "could not record from the microphone" in one_line_error(seal("ask", "--mic", "1", "--db", demo_db))
    assert "is empty" in one_line_error(seal("ask", "-", "--db", demo_db, stdin=b""))
    sf.write(tmp_path / "hour.wav", np.zeros(16000 * 3600, dtype=np.int16), 16000, subtype="PCM_16")
    assert "over the 600 s limit" in one_line_error(seal("ask", tmp_path / "hour.wav", "--db", demo_db))


@pytest.mark.slow
def test_a_damaged_mp3s_decoder_notes_are_one_warning_of_ours(demo_db, demo_question, tmp_path):
    # libmpg123 printed a raw "[src/libmpg123/layer3.c:...] error: ..." line per damaged frame.
    import soundfile as sf

    samples, rate = sf.read(demo_question)
    sf.write(tmp_path / "q.mp3", samples, rate, format="MP3")
    data = bytearray((tmp_path / "q.mp3").read_bytes())
    for i in range(2000, len(data), 997):
        data[i] = 0
    (tmp_path / "damaged.mp3").write_bytes(data)
    result = seal("ask", tmp_path / "damaged.mp3", "--db", demo_db, "-k", "1", real_process=True)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 0 and lines and all(line.startswith("warning: ") for line in lines), lines
    assert sum("the MP3 decoder skipped damaged data" in line for line in lines) == 1


@pytest.mark.slow
def test_a_bad_file_among_good_ones_is_one_error_and_the_rest_are_answered(demo_db, demo_question, tmp_path):
    bad = _bad_audio(tmp_path)["not audio"]
    result = seal("ask", bad, demo_question, "--db", demo_db, "--json", "-k", "2")
    assert "is not readable audio" in one_line_error(result)
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["audio"] for r in rows] == [str(demo_question)] and len(rows[0]["sources"]) == 2


@pytest.mark.slow
def test_a_db_made_by_another_model_is_refused_and_left_intact(embedding, demo_question, tmp_path):
    from seal_rag import SealConfig

    other = tmp_path / "other-model"
    embedding.save_pretrained(other)
    config = SealConfig.load(other / "config.json")
    config.dim = 256  # another space: a different D and scaling layer
    config.save(other / "config.json")
    from seal_rag import SpeechEmbedding

    with pytest.warns(UserWarning):
        SpeechEmbedding.untrained(config).save_pretrained(other)
    db = tmp_path / "db"
    assert seal("ingest", DEMOS / "kb", "--db", db, "--model", other).returncode == 0
    error = one_line_error(seal("ask", demo_question, "--db", db))
    assert "was built by model 'other-model'" in error and "re-ingest" in error
    again = one_line_error(seal("ingest", DEMOS / "kb", "--db", db))
    assert "was built by model" in again
    still = seal("ask", demo_question, "--db", db, "--model", other, "--json")
    assert still.returncode == 0 and len(json.loads(still.stdout)["sources"]) == 5


@pytest.mark.slow
def test_no_keywords_ranks_by_the_vector_alone(demo_db, demo_question):
    from seal_rag.retrieve import Retriever
    from seal_rag.store import SealIndex

    result = seal("ask", demo_question, "--db", demo_db, "--json", "-k", "5", "--no-keywords")
    row = json.loads(result.stdout.decode())
    assert result.returncode == 0 and "keywords" not in row["timings"]
    assert [s["score"] for s in row["sources"]] == sorted((s["score"] for s in row["sources"]), reverse=True)
    model = Retriever.open(db=str(demo_db), keywords=False).model
    plain = Retriever(model, SealIndex.open(model, demo_db)).retrieve(demo_question, k=5).hits
    assert [s["id"] for s in row["sources"]] == [h.id for h in plain]


def test_sigterm_is_not_taken_for_a_store_or_pdf_failure_and_threads_may_ingest():
    # As an Exception, the stop was caught by the handlers that call a failure a damaged index
    # ("re-ingest into a new --db") or an unreadable PDF (skipped, ingest went on).
    import threading

    from seal_rag.stopping import Terminated, terminate_as_interrupt
    from seal_rag.store import store_errors

    with pytest.raises(Terminated):
        with store_errors("/tmp/db", "write"):
            raise Terminated
    assert not issubclass(Terminated, Exception)
    failures = []

    def ingest_in_a_thread():  # signal.signal raises ValueError outside the main thread
        try:
            with terminate_as_interrupt():
                pass
        except BaseException as error:  # noqa: BLE001 - the test reports whatever it was
            failures.append(error)

    worker = threading.Thread(target=ingest_in_a_thread)
    worker.start()
    worker.join()
    assert failures == []
