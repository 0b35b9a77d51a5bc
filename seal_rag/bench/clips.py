"""Query clips for benchmarks, cut from the real human speech in the data folder's speech/fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..errors import DataNotFoundError
from .data import data_path


def fixture_clips(root: Path, count: int, min_seconds: float, max_seconds: float) -> list[np.ndarray]:
    """`count` clips whose lengths step evenly from min to max seconds, cut from the fixtures.

    The fixtures are joined end to end and cut in turn, so every clip is real speech.
    """
    folder = data_path(root, "speech", "fixtures")
    files = sorted(folder.glob("*.flac"))
    if not files:
        raise DataNotFoundError(f"no .flac clips in {folder}: copy the repository's tests/data/speech/fixtures there")
    speech = np.concatenate([load_audio(f) for f in files])
    clips, start = [], 0
    for seconds in np.linspace(min_seconds, max_seconds, count):
        length = int(seconds * SAMPLE_RATE)
        if start + length > speech.size:
            start = 0
        clips.append(speech[start : start + length])
        start += length
    return clips
