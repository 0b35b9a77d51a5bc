"""Audio in: decode, downmix, resample, validate, and make Whisper log-mel features.

Features are made at the clip's real length rather than padded to 30 s: a 4 s question
then costs the encoder 200 positions instead of 1,500, which is the main latency lever
over the SEAL paper.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .errors import (
    AudioFileNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidSamplesError,
    NotAudioError,
    SilentAudioError,
)

SAMPLE_RATE = 16000  # Hz, what Whisper was trained on
N_FFT = 400  # samples in a 25 ms STFT window
HOP_LENGTH = 160  # samples between frames: 10 ms
WINDOW_SECONDS = 30  # Whisper's context
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3000 mel frames in one window
DEFAULT_MAX_SECONDS = 600.0  # 10 min: longer is almost certainly not a question
SILENCE_PEAK = 1e-4  # -80 dBFS: below this the clip is digital silence
MAX_CHANNELS = 32  # a wider array is more likely (channels, samples) by mistake

AudioSource = str | Path | bytes | bytearray | np.ndarray


def load_audio(
    source: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> np.ndarray:
    """Decode any supported source to 16 kHz mono float32 and check it is usable speech.

    Args:
        source: A path to a wav/flac/ogg/mp3 file, the encoded bytes of one, or a numpy
            array of samples shaped `(samples,)` or `(samples, channels)`.
        sample_rate: The rate of a numpy array (files and bytes carry their own).
        max_seconds: Refuse clips longer than this.

    Returns:
        `(samples,)` float32 at 16 kHz.

    Raises:
        AudioError: a subclass naming what is wrong with the input.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        samples, rate = source, sample_rate
    else:
        samples, rate = _decode(source, name, max_seconds)
    samples = _to_mono(np.asarray(samples), name)
    if samples.size == 0:
        raise EmptyAudioError(f"{name} has no samples: record or pass a non-empty clip")
    if not np.isfinite(samples).all():
        raise InvalidSamplesError(f"{name} contains NaN or infinite samples: pass finite values in [-1, 1]")
    seconds = samples.size / rate
    if seconds > max_seconds:
        raise AudioTooLongError(_too_long(name, seconds, max_seconds))
    if np.abs(samples).max() < SILENCE_PEAK:
        raise SilentAudioError(f"{name} is silent (peak below -80 dBFS): check the microphone or file")
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return f"audio file {str(source)!r}"
    if isinstance(source, (bytes, bytearray)):
        return f"audio bytes ({len(source)} bytes)"
    return "audio array"


def _too_long(name: str, seconds: float, max_seconds: float) -> str:
    return f"{name} lasts {seconds:.0f} s, over the {max_seconds:.0f} s limit: trim it or raise max_seconds"


def _decode(source: str | Path | bytes | bytearray, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise AudioFileNotFoundError(f"{name} does not exist: check the path")
        handle = path
    else:
        if len(source) == 0:
            raise EmptyAudioError(f"{name} is empty: pass the encoded bytes of a wav, flac, ogg or mp3 file")
        handle = io.BytesIO(bytes(source))
    try:
        with sf.SoundFile(handle) as f:
            # Check the length from the header before decoding an hour of audio.
            if f.frames > 0 and f.frames / f.samplerate > max_seconds:
                raise AudioTooLongError(_too_long(name, f.frames / f.samplerate, max_seconds))
            samples = f.read(dtype="float32", always_2d=True)
            return samples, f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise NotAudioError(f"{name} is not readable audio ({error}): use wav, flac, ogg or mp3") from None


def _to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.ndim == 2 and samples.shape[1] <= MAX_CHANNELS:
        return samples.astype(np.float32).mean(axis=1)
    if samples.ndim == 1:
        return samples.astype(np.float32)
    raise InvalidSamplesError(
        f"{name} has shape {samples.shape}: pass (samples,) or (samples, channels) with at most {MAX_CHANNELS} channels"
    )


def split_windows(audio: np.ndarray) -> list[np.ndarray]:
    """Cut a clip into equal windows of at most 30 s, so a long query is pooled whole, not truncated."""
    count = max(1, math.ceil(audio.size / WINDOW_SAMPLES))
    return list(np.array_split(audio, count))


@lru_cache(maxsize=4)
def _mel_filters(n_mels: int) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=SAMPLE_RATE / 2,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(filters.T.astype(np.float32))  # (n_mels, n_freq)


def log_mel(audio: np.ndarray, n_mels: int = 80, pad_to_window: bool = False) -> torch.Tensor:
    """Whisper's log-mel spectrogram of at most 30 s of 16 kHz audio.

    Args:
        audio: `(samples,)` float32 at 16 kHz, at most 30 s.
        n_mels: 80 for Whisper up to large-v2, 128 for large-v3.
        pad_to_window: Pad with silence to 30 s as Whisper and the SEAL paper do.
            Off by default: the real length is several times faster.

    Returns:
        `(n_mels, frames)` float32, frames = samples // 160 (3000 when padded).
    """
    waveform = torch.from_numpy(np.asarray(audio, dtype=np.float32))
    if pad_to_window:
        waveform = torch.nn.functional.pad(waveform, (0, max(0, WINDOW_SAMPLES - waveform.numel())))
    if waveform.numel() > WINDOW_SAMPLES:
        raise ValueError("log_mel takes at most 30 s: split longer audio with split_windows")
    window = torch.hann_window(N_FFT)
    stft = torch.stft(waveform, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2  # drop the last frame, as Whisper does
    mel = _mel_filters(n_mels) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)  # 80 dB dynamic range
    return (log_spec + 4.0) / 4.0
