"""Text -> 16 kHz speech with espeak-ng or flite, with a random speed and pitch per clip.

    >>> import random
    >>> from seal_rag.tts import synthesize
    >>> from seal_rag.voices import Voice
    >>> clip = synthesize("What is oxygen?", Voice("flite", "kal"), random.Random(0))
    >>> clip.dtype, clip.ndim
    (dtype('float32'), 1)

Both engines run as subprocesses; a clip costs about 10-20 ms of CPU.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr

from .audio import SAMPLE_RATE

from .voices import Voice

# espeak-ng speed in words per minute (its default is 175) and pitch 0-99 (default 50).
ESPEAK_WPM = (125, 215)
ESPEAK_PITCH = (25, 75)
# flite: duration stretch (>1 is slower) and a target mean F0 in Hz for its diphone voices.
FLITE_STRETCH = (0.8, 1.25)
FLITE_F0 = (85, 140)
# Shared-memory scratch space when available: flite only writes to files.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


class SynthesisError(RuntimeError):
    """A TTS engine failed on one text."""


def synthesize(text: str, voice: Voice, rng: random.Random) -> np.ndarray:
    """Speak `text` with `voice` at a random speed and pitch.

    Returns:
        `(samples,)` float32 at 16 kHz.
    """
    if voice.engine == "espeak":
        audio, rate = _espeak(text, voice, rng)
    elif voice.engine == "flite":
        audio, rate = _flite(text, voice, rng)
    else:
        raise ValueError(f"unknown TTS engine {voice.engine!r}")
    if audio.size == 0:
        raise SynthesisError(f"{voice.label} produced no audio for {text[:60]!r}")
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    return np.ascontiguousarray(audio, dtype=np.float32)


def _espeak(text: str, voice: Voice, rng: random.Random) -> tuple[np.ndarray, int]:
    name = voice.name + (f"+{voice.variant}" if voice.variant else "")
    command = ["espeak-ng", "-v", name, "-s", str(rng.randint(*ESPEAK_WPM)), "-p", str(rng.randint(*ESPEAK_PITCH)),
               "--stdout", "--stdin"]
    # The text goes through stdin, so a sentence starting with "-" is never read as an option.
    result = subprocess.run(command, input=text.encode(), capture_output=True, timeout=60)
    if result.returncode != 0 or not result.stdout:
        raise SynthesisError(f"espeak-ng {name} failed: {result.stderr.decode(errors='replace')[:200]}")
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    return audio, rate


def _flite(text: str, voice: Voice, rng: random.Random) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=SCRATCH) as out, \
         tempfile.NamedTemporaryFile("w", suffix=".txt", dir=SCRATCH) as source:
        source.write(text)
        source.flush()
        command = ["flite", "-voice", voice.name, "-f", source.name, "-o", out.name,
                   "--setf", f"duration_stretch={rng.uniform(*FLITE_STRETCH):.3f}",
                   "--setf", f"int_f0_target_mean={rng.uniform(*FLITE_F0):.1f}"]
        result = subprocess.run(command, capture_output=True, timeout=60)
        if result.returncode != 0:
            raise SynthesisError(f"flite {voice.name} failed: {result.stderr.decode(errors='replace')[:200]}")
        audio, rate = sf.read(out.name, dtype="float32")
    return audio, rate
