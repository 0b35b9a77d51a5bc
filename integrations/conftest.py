"""Fixtures shared by the LlamaIndex and LangChain tests: one model, real audio, real Chroma.

Everything is real: the shipped model (loaded once per session), the demo knowledge base
ingested by seal-rag into a persistent Chroma directory, and spoken questions from
demos/questions/ (flite) and demos/audio/ (a recorded human question).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMOS = REPO / "demos"
TOP_K = 5


@pytest.fixture(scope="session")
def speech_embedding(embedding):
    """The default seal-rag model: the session's one (tests/session_fixtures.py)."""
    return embedding


@pytest.fixture(scope="session")
def demo_questions() -> list[dict]:
    """questions.jsonl rows, with `path` the absolute path of each spoken question."""
    folder = DEMOS / "questions"
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line.strip()]
    return [{**row, "path": folder / row["audio"]} for row in rows]


@pytest.fixture(scope="session")
def question_wav(demo_questions) -> Path:
    """A real .wav question about the demo knowledge base."""
    return demo_questions[0]["path"]


@pytest.fixture(scope="session")
def recorded_flac() -> Path:
    """A human recording ("how old is the Brooklyn Bridge"), flac at 16 kHz."""
    return DEMOS / "audio" / "brooklyn_bridge_audio.flac"


@pytest.fixture(scope="session")
def kb_db(demo_db) -> Path:
    """demos/kb/ ingested by seal-rag into a persistent Chroma directory: the session's one. Read-only for tests."""
    return demo_db


def _ask_ids(kb_db: Path, question_wav: Path, *options: str) -> list[str]:
    command = [shutil.which("seal-rag") or "seal-rag"]
    if not shutil.which("seal-rag"):
        command = [sys.executable, "-c", "from seal_rag.cli import main; main()"]
    done = subprocess.run(
        command + ["ask", str(question_wav), "--db", str(kb_db), "--json", "-k", str(TOP_K), *options],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    return [source["id"] for source in payload["sources"]]


@pytest.fixture(scope="session")
def cli_top_ids(kb_db, question_wav) -> list[str]:
    """The ids `seal-rag ask QUESTION.wav --db DB --json -k 5` returns, in order: seal-rag's ranking
    (knowledge-base decoding and keyword re-ranking), which both SealSpeechRetrievers give too."""
    return _ask_ids(kb_db, question_wav)


@pytest.fixture(scope="session")
def cli_vector_ids(kb_db, question_wav) -> list[str]:
    """The ids of `seal-rag ask ... --no-keywords`: the vector's ranking, which a framework's own
    vector store retriever gives (and a SealSpeechRetriever with keywords=False)."""
    return _ask_ids(kb_db, question_wav, "--no-keywords")


@pytest.fixture(scope="session")
def not_audio(tmp_path_factory) -> Path:
    """A text file with an audio name: what a mistaken upload looks like."""
    path = tmp_path_factory.mktemp("bad") / "question.wav"
    path.write_text("this is a note, not a recording\n")
    return path


@pytest.fixture(scope="session")
def other_model():
    """Stands in for a different model when stamping an index: only its identity is read."""
    return SimpleNamespace(name="some-other-model", space_fingerprint="0123456789abcdef", dim=384)


@pytest.fixture(scope="session")
def passages() -> list[tuple[str, str, dict]]:
    """A handful of (id, text, metadata) chunks for indexes a test builds itself."""
    texts = {
        "bridge": ("The Brooklyn Bridge opened in 1883. It spans the East River between Manhattan and Brooklyn.", "Bridges"),
        "tower": ("The Eiffel Tower was finished in 1889 for the World's Fair in Paris.", "Towers"),
        "oxygen": ("Oxygen is the third most abundant element in the universe by mass.", "Oxygen"),
        "apollo": ("The Apollo program landed the first humans on the Moon in 1969.", "Apollo"),
        "steam": ("Steam engines turn the heat of steam into mechanical work.", "Steam"),
    }
    return [(key, text, {"source": f"/kb/{key}.txt", "title": title}) for key, (text, title) in texts.items()]


def run_demo(script: str, *args: str) -> str:
    """Run a demo as a user would, offline, and return what it printed."""
    done = subprocess.run(
        [sys.executable, str(DEMOS / script), *args], capture_output=True, text=True, timeout=900, cwd=REPO
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def printed_sources(output: str) -> list[str]:
    """File names from the demo's `Sources:` block, in rank order."""
    lines = output.split("Sources:\n", 1)[1].splitlines()
    return [line.split()[-1] for line in lines if line.startswith("  ")]


@pytest.fixture(scope="session")
def demo_runner():
    return SimpleNamespace(run=run_demo, sources=printed_sources)


@pytest.fixture(scope="session")
def served(kb_db, speech_embedding, question_wav):
    """seal-rag's own retrieval of the demo question as `ask` ranks it (knowledge-base decoding and
    keyword re-ranking): its hits, their scores and the vector it searched."""
    from seal_rag.retrieve import Retriever, keyword_reranker
    from seal_rag.store import SealIndex

    index = SealIndex.open(speech_embedding, db=kb_db)
    return Retriever(speech_embedding, index, keywords=keyword_reranker(speech_embedding, index.all_texts())).retrieve(question_wav, TOP_K)
