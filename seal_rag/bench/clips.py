"""Query clips for benchmarks, cut from the real human speech in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, load_audio


def shared_data_dir() -> Path:
    """`$SEAL_RAG_SHARED_DATA`, else `shared/data` beside the repository."""
    default = Path(__file__).resolve().parents[3] / "shared" / "data"
    return Path(os.environ.get("SEAL_RAG_SHARED_DATA", default))


def fixture_clips(count: int, min_seconds: float, max_seconds: float) -> list[np.ndarray]:
    """`count` clips whose lengths step evenly from min to max seconds, cut from the fixtures.

    The fixtures are joined end to end and cut in turn, so every clip is real speech.
    """
    files = sorted((shared_data_dir() / "speech" / "fixtures").glob("*.flac"))
    if not files:
        raise SystemExit(f"no fixtures under {shared_data_dir()}: set SEAL_RAG_SHARED_DATA")
    speech = np.concatenate([load_audio(f) for f in files])
    clips, start = [], 0
    for seconds in np.linspace(min_seconds, max_seconds, count):
        length = int(seconds * SAMPLE_RATE)
        if start + length > speech.size:
            start = 0
        clips.append(speech[start : start + length])
        start += length
    return clips
