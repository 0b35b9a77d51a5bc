"""Warnings for clips that decode fine but are unlikely to be a spoken question.

Pure noise, a steady tone or a badly clipped recording still embeds to some vector, and the
index always has a nearest passage, so the user gets a confident-looking answer to nothing.
These checks do not refuse the clip; they say why the answer may be unrelated.
"""

from __future__ import annotations

import warnings

import numpy as np

FRAME, HOP = 400, 160  # 25 ms frames every 10 ms at 16 kHz, as the features use
# Speech rises and falls with every syllable: 20-55 dB between its quiet and loud frames on
# every clip in tests/data and demos/; steady noise or a tone varies by under 7 dB.
MIN_SPEECH_RANGE_DB = 10.0
MIN_CHECKED_SECONDS = 0.5  # shorter clips have too few frames to judge
CLIPPED_LEVEL, MAX_CLIPPED_SHARE = 0.999, 0.01


class AudioQualityWarning(UserWarning):
    """The clip decodes, but does not sound like a usable spoken question."""


def loudness_range_db(clip: np.ndarray) -> float:
    """Spread of frame loudness, 95th minus 10th percentile, in dB."""
    frames = np.lib.stride_tricks.sliding_window_view(clip, FRAME)[::HOP]
    energy = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return float(np.percentile(energy, 95) - np.percentile(energy, 10))


def warn_about_quality(clip: np.ndarray, name: str, sample_rate: int = 16000, scaled_from: float = 1.0) -> None:
    """Issue an `AudioQualityWarning` for each problem heard in a decoded clip."""
    for problem in quality_problems(clip, name, sample_rate, scaled_from):
        warnings.warn(problem, AudioQualityWarning, stacklevel=3)


def quality_problems(clip: np.ndarray, name: str, sample_rate: int = 16000, scaled_from: float = 1.0) -> list[str]:
    """One line for each problem heard in a decoded clip (`scaled_from`: its peak before scaling to 1)."""
    problems = []
    if scaled_from > 1.0:
        problems.append(f"{name} goes beyond full scale (peak {scaled_from:.3g}, not at most 1.0): it was scaled down; "
                        "check the recording level or the array's units")
    elif np.mean(np.abs(clip) >= CLIPPED_LEVEL) > MAX_CLIPPED_SHARE:
        problems.append(f"{name} is clipped (over {MAX_CLIPPED_SHARE:.0%} of samples at full scale): lower the recording level")
    if clip.size >= MIN_CHECKED_SECONDS * sample_rate:
        spread = loudness_range_db(clip)
        if spread < MIN_SPEECH_RANGE_DB:
            problems.append(f"{name} sounds like steady noise or a tone, not speech (its loudness varies by {spread:.0f} dB): "
                            "the passages found may be unrelated; check the microphone or file")
    return problems
