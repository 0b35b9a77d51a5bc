"""Make clean TTS audio sound like a room, a phone or a cheap microphone.

Each effect fires with its own probability, in the order a real signal meets them:
speaker (vocal tract warp) -> room (reverberation) -> channel (telephone band, speech codec)
-> noise -> gain. The speaker and codec effects are off by default: a config that leaves them
at 0 draws the same random numbers, so the clips it made before stay the same.
"""

from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass

import numpy as np
import soxr
from scipy.signal import fftconvolve, sosfilt, butter

from .audio import SAMPLE_RATE

TELEPHONE_RATE = 8000  # Hz: narrow-band telephony
TELEPHONE_BAND = (300.0, 3400.0)  # Hz passed by a telephone line
# sox output options of each codec: GSM full rate and AMR narrow band (phones, 8 kHz),
# Vorbis at its lowest quality (streaming, 16 kHz).
CODECS = {"gsm": ["-t", "gsm", "-r", "8000"], "amr-nb": ["-t", "amr-nb", "-r", "8000"],
          "vorbis": ["-t", "ogg", "-C", "-1"]}


@dataclass
class AugmentConfig:
    """Probabilities and ranges. The defaults leave about a quarter of clips clean."""

    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.8)  # seconds for the tail to fall 60 dB
    p_telephone: float = 0.15
    p_noise: float = 0.4
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_gain: float = 0.5
    gain_db: tuple[float, float] = (-18.0, 6.0)
    max_silence: float = 0.3  # seconds of silence added at each end, at most
    p_warp: float = 0.0  # another speaker's vocal tract: pitch, formants and tempo scaled together
    warp: tuple[float, float] = (0.88, 1.12)  # the scale (>1 is higher and faster)
    p_codec: float = 0.0  # a lossy speech codec's round trip (one of CODECS)


def synthetic_rir(rng: random.Random, rt60: float) -> np.ndarray:
    """A room impulse response: a direct path, then exponentially decaying noise (late reverb)."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    np_rng = np.random.default_rng(rng.getrandbits(32))
    tail = np_rng.standard_normal(length) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    delay = int(rng.uniform(0.002, 0.02) * SAMPLE_RATE)  # first reflections arrive after the direct sound
    rir = np.zeros(length + delay)
    rir[0] = 1.0
    rir[delay:] += tail * rng.uniform(0.2, 0.6)
    return (rir / np.linalg.norm(rir)).astype(np.float32)


def coloured_noise(rng: random.Random, n: int, beta: float | None = None) -> np.ndarray:
    """Unit-power noise, 1/f^beta in the spectrum: white (0), pink (1) or brown (2), random if None."""
    np_rng = np.random.default_rng(rng.getrandbits(32))
    if beta is None:
        beta = rng.choice([0.0, 1.0, 2.0])
    spectrum = np.fft.rfft(np_rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum / freqs ** (beta / 2), n)
    return (noise / (np.std(noise) + 1e-9)).astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with a room impulse response, keeping the clip's length (the tail is cut)."""
    return fftconvolve(audio, rir)[: audio.size].astype(np.float32)


def add_noise(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix `noise` (same length) in at `snr_db` dB below the clip's mean power."""
    signal_power = float(np.mean(audio**2)) + 1e-12
    noise_power = float(np.mean(noise**2)) + 1e-12
    return (audio + noise * np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))).astype(np.float32)


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (pitch moves with it), as a tape or a resampler does."""
    return soxr.resample(audio.astype(np.float32), SAMPLE_RATE * factor, SAMPLE_RATE)


def telephone(audio: np.ndarray) -> np.ndarray:
    """Band-limit to 300-3400 Hz and pass through an 8 kHz channel, as a phone call does."""
    sos = butter(4, TELEPHONE_BAND, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    narrow = soxr.resample(sosfilt(sos, audio).astype(np.float32), SAMPLE_RATE, TELEPHONE_RATE)
    return soxr.resample(narrow, TELEPHONE_RATE, SAMPLE_RATE)[: audio.size]


def codec(audio: np.ndarray, name: str) -> np.ndarray:
    """Encode with a lossy codec through sox and decode back to 16 kHz, keeping the clip's length."""
    raw = ["-t", "f32", "-r", str(SAMPLE_RATE), "-c", "1"]
    encoded = subprocess.run(["sox", *raw, "-", *CODECS[name], "-"], input=audio.astype(np.float32).tobytes(),
                             capture_output=True, check=True).stdout
    decoded = subprocess.run(["sox", CODECS[name][0], CODECS[name][1], "-", *raw, "-"], input=encoded,
                             capture_output=True, check=True).stdout
    out = np.frombuffer(decoded, np.float32)[: audio.size]
    return np.pad(out, (0, audio.size - out.size)).astype(np.float32)


def augment(audio: np.ndarray, rng: random.Random, config: AugmentConfig | None = None) -> np.ndarray:
    """One random corruption of a 16 kHz clip; returns float32 in [-1, 1]."""
    config = config or AugmentConfig()
    x = audio.astype(np.float32)
    if config.p_warp and rng.random() < config.p_warp:
        x = change_speed(x, rng.uniform(*config.warp))
    pad = lambda: np.zeros(int(rng.uniform(0, config.max_silence) * SAMPLE_RATE), np.float32)  # noqa: E731
    x = np.concatenate([pad(), x, pad()])
    if rng.random() < config.p_reverb:
        x = reverberate(x, synthetic_rir(rng, rng.uniform(*config.rt60)))
    if rng.random() < config.p_telephone:
        x = telephone(x)
    if config.p_codec and rng.random() < config.p_codec:
        x = codec(x, rng.choice(sorted(CODECS)))
    if rng.random() < config.p_noise:
        snr = rng.uniform(*config.snr_db)
        x = add_noise(x, coloured_noise(rng, x.size), snr)
    # Normalise the peak, then apply a random gain: levels vary from whisper-quiet to hot.
    x = x / (np.abs(x).max() + 1e-9) * 0.9
    if rng.random() < config.p_gain:
        x = x * 10 ** (rng.uniform(*config.gain_db) / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
