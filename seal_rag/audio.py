"""Audio in: decode, downmix, resample, validate, and make Whisper log-mel features.

Features are made at the clip's real length rather than padded to 30 s: a 4 s question
then costs the encoder 200 positions instead of 1,500, which is the main latency lever
over the SEAL paper.
"""

from __future__ import annotations

import io
import math
import stat
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .audio_quality import quality_problems, warn_about_quality
from .errors import (
    AudioError,
    AudioFileNotFoundError,
    AudioTooLongError,
    AudioTooShortError,
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
# Shorter holds no word, and Whisper's 25 ms STFT window (and the heads' convolutions) need more.
MIN_SECONDS = 0.1
MIN_RATE, MAX_RATE = 1000, 768_000  # Hz: below, no speech survives; above, no real recorder
# A file decodes to at most max_seconds of 48 kHz, counted after mixing down: a few kilobytes of
# FLAC can claim 8 channels of 600 s at 655 kHz, tens of GB decoded, and length alone would pass it.
BUDGET_RATE = 48_000

# More than any clip up to the length limit (10 min of 48 kHz stereo float is 230 MB): a pipe
# or stdin is read to this bound rather than to its end, which may be never.
MAX_ENCODED_BYTES = 256 * 2**20

AudioSource = str | Path | bytes | bytearray | np.ndarray


def load_audio(
    source: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    problems: list[str] | None = None,
) -> np.ndarray:
    """Decode any supported source to 16 kHz mono float32 and check it is usable speech.

    Args:
        source: A path to a wav/flac/ogg/mp3 file, the encoded bytes of one, or a numpy
            array of samples shaped `(samples,)` or `(samples, channels)`.
        sample_rate: The rate of a numpy array (files and bytes carry their own).
        max_seconds: Refuse clips longer than this.
        problems: Where given, a clip that decodes but sounds unlike a spoken question (noise, a
            tone, clipping) has its problems appended here instead of warned about: a service
            returns them to its client rather than printing them on its own terminal.

    Returns:
        `(samples,)` float32 at 16 kHz.

    Raises:
        AudioError: a subclass naming what is wrong with the input.
    """
    name = _describe(source)
    if isinstance(source, np.ndarray):
        samples, rate = _as_float(source, name), sample_rate
    else:
        samples, rate = _decode(source, name, max_seconds)
    rate = check_rate(rate, name)
    samples = _to_mono(samples, name)
    if samples.size == 0:
        raise EmptyAudioError(f"{name} has no samples: record or pass a non-empty clip")
    if not np.isfinite(samples).all():
        raise InvalidSamplesError(f"{name} contains NaN or infinite samples: pass finite values in [-1, 1]")
    seconds = samples.size / rate
    if seconds > max_seconds:
        raise AudioTooLongError(_too_long(name, seconds, max_seconds))
    if seconds < MIN_SECONDS:
        raise AudioTooShortError(
            f"{name} lasts {seconds * 1000:.1f} ms, under the {MIN_SECONDS * 1000:.0f} ms minimum: record the whole question "
            "(a file whose header understates its data reads short too: re-save it)"
        )
    peak = float(np.abs(samples).max())
    if peak < SILENCE_PEAK:
        raise SilentAudioError(f"{name} is silent (peak below -80 dBFS): check the microphone or file")
    if peak > 1.0:
        samples = samples / peak  # Whisper's features assume full scale is 1; the warning below says so
    if rate != SAMPLE_RATE:
        # Resampling rings past a full-scale edge (1.13 for a step): clip back to full scale.
        samples = np.clip(soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ"), -1.0, 1.0)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if problems is None:
        warn_about_quality(samples, name, SAMPLE_RATE, scaled_from=peak)
    else:
        problems += quality_problems(samples, name, SAMPLE_RATE, scaled_from=peak)
    return samples


def _as_float(samples: np.ndarray, name: str) -> np.ndarray:
    """Samples of any numeric dtype as float32 in [-1, 1]: integers are scaled from their full range."""
    kind = samples.dtype.kind
    if kind == "f":
        return samples.astype(np.float32, copy=False)
    if kind in "iu":
        info = np.iinfo(samples.dtype)
        middle = (int(info.max) + int(info.min) + 1) / 2  # 0 for signed, 128 for uint8 (PCM's unsigned form)
        return ((samples.astype(np.float64) - middle) / (int(info.max) - middle + 1)).astype(np.float32)
    raise InvalidSamplesError(f"{name} has samples of dtype {samples.dtype}: pass float or integer PCM samples")


def check_rate(rate: object, name: str) -> int:
    """`rate` as a whole number of Hz within what a clip may have, else `InvalidSamplesError` naming `name`."""
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InvalidSamplesError(f"{name} has sample rate {rate!r}: pass an integer rate in Hz")
    if not (math.isfinite(rate) and rate == int(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise InvalidSamplesError(
            f"{name} has sample rate {rate} Hz: pass its true rate, an integer from {MIN_RATE:,} to {MAX_RATE:,} Hz"
        )
    return int(rate)


def _describe(source: AudioSource) -> str:
    if isinstance(source, (str, Path)):
        return f"audio file {str(source)!r}"
    if isinstance(source, (bytes, bytearray)):
        return f"audio bytes ({len(source)} bytes)"
    return "audio array"


def _over_budget(name: str, rate: int, max_seconds: float) -> str:
    return (f"{name} holds more samples than {max_seconds:.0f} s at {BUDGET_RATE:,} Hz (it is {rate:,} Hz): "
            "resample it to 16 kHz or trim it")


def _too_long(name: str, seconds: float, max_seconds: float) -> str:
    return f"{name} lasts {seconds:.0f} s, over the {max_seconds:.0f} s limit: trim it or raise max_seconds"


def _decode(source: str | Path | bytes | bytearray, name: str, max_seconds: float) -> tuple[np.ndarray, int]:
    if isinstance(source, (str, Path)):
        handle = _open_path(Path(source), name)
    else:
        if len(source) == 0:
            raise EmptyAudioError(f"{name} is empty: pass the encoded bytes of a wav, flac, ogg or mp3 file")
        handle = io.BytesIO(bytes(source))
    try:
        with handle, sf.SoundFile(handle) as f:
            rate = check_rate(f.samplerate, name)
            if not 1 <= f.channels <= MAX_CHANNELS:
                raise InvalidSamplesError(f"{name} has {f.channels} channels: pass audio with 1 to {MAX_CHANNELS}")
            # Check the length from the header before decoding an hour of audio.
            if f.frames > 0 and f.frames / rate > max_seconds:
                raise AudioTooLongError(_too_long(name, f.frames / rate, max_seconds))
            if f.frames > max_seconds * BUDGET_RATE:
                raise AudioTooLongError(_over_budget(name, rate, max_seconds))
            return _read_blocks(f, rate, name, max_seconds), rate
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as error:
        # libsndfile names what it was given: for our handle, an object's address, not the user's name.
        detail = " ".join(str(error).replace(f"Error opening {handle!r}: ", "").split())[:160]
        raise NotAudioError(f"{name} is not readable audio ({detail}): use wav, flac, ogg or mp3") from None


def _open_path(path: Path, name: str) -> io.IOBase:
    """The file opened by Python, not by libsndfile, which cannot open a name that is not UTF-8.
    A pipe (`ask <(sox ...)`) is read whole, to a bound: libsndfile needs to seek."""
    if "\x00" in str(path):  # no file has such a name (and the OS call would raise ValueError)
        raise AudioFileNotFoundError(f"{name} is not a path (it holds a NUL byte): check the path")
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise NotAudioError(f"{name} is a folder: pass an audio file")
        if stat.S_ISREG(mode):
            return path.open("rb")
        if not stat.S_ISFIFO(mode):
            raise NotAudioError(f"{name} is a device or socket, not a file: pass an audio file, or pipe it to `-`")
        with path.open("rb") as pipe:
            data = pipe.read(MAX_ENCODED_BYTES + 1)
    except FileNotFoundError:
        raise AudioFileNotFoundError(f"{name} does not exist: check the path") from None
    except PermissionError:
        raise NotAudioError(f"{name} cannot be read (permission denied): check its permissions") from None
    except OSError as error:
        raise NotAudioError(f"{name} cannot be read ({error.strerror or error}): check the path") from None
    if len(data) > MAX_ENCODED_BYTES:
        raise AudioTooLongError(f"{name} holds more than {MAX_ENCODED_BYTES // 2**20} MB: trim the audio")
    if not data:
        raise EmptyAudioError(f"{name} is empty: pass a wav, flac, ogg or mp3 file")
    return io.BytesIO(data)


def _read_blocks(f: sf.SoundFile, rate: int, name: str, max_seconds: float) -> np.ndarray:
    """The samples actually there, a second at a time: a header may claim far more than the data
    holds (memory would follow the claim), or nothing at all (a stream), so neither is trusted."""
    blocks, frames = [], 0
    for block in f.blocks(blocksize=rate, dtype="float32", always_2d=True):
        frames += len(block)
        if frames / rate > max_seconds:
            raise AudioTooLongError(_too_long(name, frames / rate, max_seconds))
        if frames > max_seconds * BUDGET_RATE:
            raise AudioTooLongError(_over_budget(name, rate, max_seconds))
        blocks.append(block.mean(axis=1, keepdims=True) if block.shape[1] > 1 else block)  # mixed down as read
    return np.concatenate(blocks) if blocks else np.zeros((0, 1), np.float32)


def _to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.ndim == 2 and 1 <= samples.shape[1] <= MAX_CHANNELS:
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
