"""What the two framework demos share: where the demo knowledge base lives, their options, and each question's answer."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
KB, QUESTIONS = HERE / "kb", HERE / "questions"


def parse_args(doc: str, retrieved: str) -> argparse.Namespace:
    """The demos' options; `retrieved` names what `-k` counts ("documents", "source nodes")."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("audio", nargs="?", type=Path, default=QUESTIONS / "q1.wav", help="spoken question [q1.wav]")
    parser.add_argument("--mode", default="auto", choices=["auto", "speech", "cascade", "hybrid"],
                        help="auto: speech with a trained speech tower, else cascade")
    parser.add_argument("-k", "--top-k", dest="k", type=int, default=5, help=f"{retrieved} to retrieve")
    parser.add_argument("--llm", default=os.environ.get("SEAL_RAG_LLM", "none"), help="none, or openai:MODEL")
    return parser.parse_args()


def gold_source(audio: Path) -> str | None:
    """The passage a demo question is about, from questions.jsonl (None for other audio)."""
    for line in (QUESTIONS / "questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if (QUESTIONS / row["audio"]).resolve() == audio.resolve():
            return row["gold_source"]
    return None


def chosen_mode(requested: str, model) -> str:
    """`--mode auto`: speech with a trained speech tower, else cascade (said in one line)."""
    if requested != "auto":
        return requested
    if model.trained:
        return "speech"
    print("note: the shipped speech tower is experimental (far below the cascade on held-out questions), "
          "so this demo retrieves in cascade mode (ASR, then the text tower); --mode speech tries SEAL itself.")
    return "cascade"
