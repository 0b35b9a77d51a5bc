import numpy as np
import pytest
import soundfile as sf
import torch

from seal_rag import audio
from seal_rag.errors import (
    AudioFileNotFoundError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidSamplesError,
    NotAudioError,
    SilentAudioError,
)


def test_every_container_decodes_to_the_same_16k_mono_clip(jfk, tmp_path):
    reference = audio.load_audio(jfk)
    assert reference.dtype == np.float32 and reference.ndim == 1
    assert abs(reference.size / audio.SAMPLE_RATE - 11.0) < 0.05
    stereo_44k, rate = sf.read(jfk, dtype="float32")
    stereo_44k = np.stack([stereo_44k, stereo_44k], axis=1)
    for fmt, subtype in [("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")]:
        path = tmp_path / f"clip.{fmt}"
        sf.write(path, stereo_44k, rate, format=fmt.upper() if fmt != "ogg" else "OGG", subtype=subtype)
        decoded = audio.load_audio(path)
        # Lossy codecs add or drop a few ms of padding; the length and level must survive.
        assert abs(decoded.size - reference.size) < 0.1 * audio.SAMPLE_RATE, fmt
        assert 0.5 < np.abs(decoded).max() / np.abs(reference).max() < 1.5, fmt


def test_stereo_44k_file_is_downmixed_and_resampled(jfk, tmp_path):
    import soxr

    reference = audio.load_audio(jfk)
    at_44k = soxr.resample(reference, 16000, 44100)
    sf.write(tmp_path / "stereo.wav", np.stack([at_44k, at_44k], axis=1), 44100, subtype="FLOAT")
    clip = audio.load_audio(tmp_path / "stereo.wav")
    assert abs(clip.size - reference.size) <= 1
    n = min(clip.size, reference.size)
    assert np.corrcoef(clip[:n], reference[:n])[0, 1] > 0.99
    from_array = audio.load_audio(at_44k, sample_rate=44100)
    np.testing.assert_allclose(from_array, clip, atol=1e-4)


def test_features_at_real_length_match_whisper_when_padded(jfk):
    from transformers import WhisperFeatureExtractor

    clip = audio.load_audio(jfk)
    assert audio.log_mel(clip).shape == (80, clip.size // audio.HOP_LENGTH)
    padded = audio.log_mel(clip, pad_to_window=True)
    reference = WhisperFeatureExtractor()(clip, sampling_rate=16000, return_tensors="np").input_features[0]
    assert padded.shape == (80, 3000)
    np.testing.assert_allclose(padded.numpy(), reference, atol=1e-4)


def test_long_audio_is_split_into_windows_not_cut():
    clip = np.zeros(int(70 * audio.SAMPLE_RATE), dtype=np.float32)
    windows = audio.split_windows(clip)
    assert len(windows) == 3
    assert sum(w.size for w in windows) == clip.size
    assert max(w.size for w in windows) <= audio.WINDOW_SAMPLES


def _write(path, samples, rate=16000):
    sf.write(path, samples, rate)
    return path


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda tmp: tmp / "missing.wav", AudioFileNotFoundError),
        (lambda tmp: (tmp / "notes.wav").write_text("not audio at all") and tmp / "notes.wav", NotAudioError),
        (lambda tmp: b"RIFF....WAVEjunk", NotAudioError),
        (lambda tmp: b"", EmptyAudioError),
        (lambda tmp: np.zeros(0, dtype=np.float32), EmptyAudioError),
        (lambda tmp: _write(tmp / "silence.wav", np.zeros(16000, dtype=np.float32)), SilentAudioError),
        (lambda tmp: np.array([0.1, np.nan, 0.2], dtype=np.float32), InvalidSamplesError),
        (lambda tmp: np.array([0.1, np.inf, 0.2], dtype=np.float32), InvalidSamplesError),
        (lambda tmp: np.ones((3, 16000), dtype=np.float32) * 0.1, InvalidSamplesError),
    ],
)
def test_bad_input_raises_its_named_error(tmp_path, make, error):
    with pytest.raises(error) as raised:
        audio.load_audio(make(tmp_path))
    message = str(raised.value)
    assert "\n" not in message and ":" in message  # one line: problem, then the fix


def test_over_the_maximum_is_refused_from_the_header(tmp_path):
    path = _write(tmp_path / "long.wav", np.full(16000 * 5, 0.1, dtype=np.float32))
    with pytest.raises(AudioTooLongError, match="over the 4 s limit"):
        audio.load_audio(path, max_seconds=4)


def test_many_channels_at_a_high_rate_are_refused_by_samples_not_only_seconds(jfk, tmp_path):
    """A few kilobytes of FLAC can claim 8 channels at hundreds of kHz: decoded whole, gigabytes.
    Channels are mixed down block by block, and the samples are budgeted at 48 kHz for the length limit."""
    tone = (0.3 * np.sin(np.arange(96_000 * 3) / 7)).astype(np.float32)  # 3 s at 96 kHz
    path = tmp_path / "wide.flac"
    sf.write(path, np.stack([tone] * 8, axis=1), 96_000, format="FLAC")
    with pytest.raises(AudioTooLongError, match="more samples than 4 s at 48,000 Hz .it is 96,000 Hz.: resample"):
        audio.load_audio(path, max_seconds=4)  # 3 s, under the limit, but 288,000 samples against a budget of 192,000
    heard = []  # a tone: its quality problem is collected here rather than warned about
    mixed = audio.load_audio(path, max_seconds=8, problems=heard)  # within the budget: the mean of its channels
    decoded, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(mixed, audio.load_audio(decoded.mean(axis=1), sample_rate=96_000, problems=[]))
    assert len(heard) == 1 and "steady noise or a tone" in heard[0]


def test_an_hour_of_audio_is_refused_by_default(tmp_path):
    path = tmp_path / "hour.flac"
    with sf.SoundFile(path, "w", 8000, 1, format="FLAC") as f:
        block = np.full(8000 * 60, 0.1, dtype=np.float32)
        for _ in range(60):
            f.write(block)
    with pytest.raises(AudioTooLongError, match="3600 s"):
        audio.load_audio(path)


def test_log_mel_refuses_more_than_a_window():
    with pytest.raises(ValueError):
        audio.log_mel(np.zeros(audio.WINDOW_SAMPLES + 1, dtype=np.float32))
    assert isinstance(audio.log_mel(np.zeros(1600, dtype=np.float32) + 0.1), torch.Tensor)


def test_a_file_whose_name_is_not_utf8_is_read(jfk, tmp_path):
    # libsndfile cannot open such a name; a valid WAV was refused as "not readable audio".
    name = tmp_path / "question-\udcff.wav"
    name.write_bytes(open(jfk, "rb").read())
    np.testing.assert_array_equal(audio.load_audio(name), audio.load_audio(jfk))


def test_a_pipe_is_read_whole(jfk, tmp_path):
    # `seal-rag ask <(sox ...)` hands over /dev/fd/N, a pipe libsndfile cannot seek.
    import os
    import threading

    fifo = tmp_path / "question.fifo"
    os.mkfifo(fifo)
    data = open(jfk, "rb").read()
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    try:
        clip = audio.load_audio(fifo)
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # frees a writer nobody read from
        writer.join()
    np.testing.assert_array_equal(clip, audio.load_audio(jfk))


@pytest.mark.parametrize("make, error, words", [
    (lambda tmp: tmp, NotAudioError, "is a folder: pass an audio file"),
    (lambda tmp: "/dev/zero", NotAudioError, "is a device or socket, not a file"),
    (lambda tmp: (tmp / "link.wav").symlink_to(tmp / "gone.wav") or tmp / "link.wav", AudioFileNotFoundError,
     "does not exist"),
    (lambda tmp: str(tmp / "q\x00.wav"), AudioFileNotFoundError, "holds a NUL byte"),
])
def test_what_is_not_a_file_is_named_for_what_it_is(tmp_path, make, error, words):
    with pytest.raises(error, match=words):
        audio.load_audio(make(tmp_path))


def test_undecodable_bytes_are_described_without_an_object_address():
    with pytest.raises(NotAudioError) as raised:
        audio.load_audio(b"garbage, not audio" * 10)
    assert "object at" not in str(raised.value) and "180 bytes" in str(raised.value)
