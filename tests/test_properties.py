"""Property tests over everything that reads untrusted bytes: the audio loader and every document loader.

The invariant, for any input hypothesis makes: a usable result, or one line of the project's
own error (a `SealError` for audio; a `ValueError` or `OSError` reason for a document, which
ingest reports and skips); never another exception, never a hang. They run in the default
test command in seconds (a few dozen examples each, no example database written); the
atheris harness in tests/fuzz/ runs the same checks for as long as you like.
"""

from __future__ import annotations

import json
import signal
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from seal_rag.audio import MIN_SECONDS, SAMPLE_RATE, load_audio, log_mel, split_windows
from seal_rag.chunking import chunk_section
from seal_rag.errors import SealError
from seal_rag.loaders import SUPPORTED, read_document

from .test_loaders import _pdf

EXAMPLES = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HANG_SECONDS = 20  # one example taking this long is a hang, whatever the machine's load
MAX_SECONDS = 2.0  # a short limit, so "past the limit" costs little


@contextmanager
def no_hang(seconds: float = HANG_SECONDS):
    def stop(*_):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- audio ------------------------------------------------------------------------------------


def check_audio(source, **kwargs) -> None:
    """Either a clip the features accept, or one line of an `AudioError`."""
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quality warnings are allowed; they are not errors
        try:
            clip = load_audio(source, max_seconds=MAX_SECONDS, **kwargs)
        except SealError as error:
            assert "\n" not in str(error) and str(error)
            return
        assert clip.dtype == np.float32 and clip.ndim == 1 and np.isfinite(clip).all()
        assert MIN_SECONDS * SAMPLE_RATE * 0.99 <= clip.size <= (MAX_SECONDS + 0.01) * SAMPLE_RATE
        assert np.abs(clip).max() <= 1.0 + 1e-3  # soxr may ring a little past a full-scale peak
        for window in split_windows(clip):
            assert np.isfinite(log_mel(window).numpy()).all()


def wav_bytes(tag: int, channels: int, rate: int, bits: int, align: int, declared: int, data: bytes, riff: int | None) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * max(align, 0) & 0xFFFFFFFF, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", declared) + data
    return b"RIFF" + struct.pack("<I", len(body) if riff is None else riff) + body


u16, u32 = st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)


@EXAMPLES
@given(st.binary(max_size=4096))
def test_any_bytes_are_a_clip_or_one_audio_error(data):
    check_audio(data)


@EXAMPLES
@given(
    tag=st.sampled_from([1, 3, 6, 7, 0xFFFE]) | u16,
    channels=st.sampled_from([0, 1, 2, 33, 65535]) | u16,
    rate=st.sampled_from([0, 1, 999, 8000, 16000, 44100, 768001, 2**32 - 1]) | u32,
    bits=st.sampled_from([0, 8, 16, 24, 32, 64]) | u16,
    align=st.sampled_from([0, 1, 2, 4, 8]) | u16,
    declared=st.sampled_from([0, 1, 3, 10, 2**31, 2**32 - 1]) | u32,
    length=st.integers(0, 80_000),
    riff=st.none() | st.sampled_from([0, 4, 2**32 - 1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_wav_headers_of_any_values_are_a_clip_or_one_audio_error(tag, channels, rate, bits, align, declared, length, riff, seed):
    data = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8).tobytes()
    check_audio(wav_bytes(tag, channels, rate, bits, align, declared, data, riff))


DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool", "complex64"]


@EXAMPLES
@given(
    dtype=st.sampled_from(DTYPES),
    seconds=st.floats(0, MAX_SECONDS * 1.5),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]) | st.integers(-10, 10**6) | st.floats(allow_nan=True),
    channels=st.sampled_from([None, 0, 1, 2, 6, 33]),
    transposed=st.booleans(),
    scale=st.sampled_from([0.0, 1e-6, 0.5, 1.0, 40.0, 1e30]),
    special=st.sampled_from([None, np.nan, np.inf]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sample_arrays_of_any_dtype_length_channels_and_rate_are_a_clip_or_one_audio_error(
    dtype, seconds, rate, channels, transposed, scale, special, seed
):
    n = int(seconds * min(max(rate, 0), 48000)) if rate == rate else 100
    shape = (n,) if channels is None else ((channels, n) if transposed else (n, channels))
    samples = np.random.default_rng(seed).normal(0, 1, shape) * scale
    if special is not None and samples.size:
        samples.flat[0] = special
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casting NaN or 1e30 to an integer dtype is the point
        array = samples.astype(dtype)
    check_audio(array, sample_rate=rate)


@pytest.mark.parametrize("seconds", [0, 0.001, MIN_SECONDS - 0.001, MIN_SECONDS, 1.0, MAX_SECONDS, MAX_SECONDS + 0.001])
def test_lengths_from_nothing_to_past_the_limit_as_real_files(tmp_path, seconds):
    import soundfile as sf

    rng = np.random.default_rng(0)
    clip = (0.3 * np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 7) * rng.uniform(0.2, 1, int(seconds * SAMPLE_RATE)))
    for subtype, suffix in [("PCM_16", "wav"), ("PCM_24", "flac"), ("VORBIS", "ogg")]:
        path = tmp_path / f"clip.{suffix}"
        sf.write(path, clip.astype(np.float32), SAMPLE_RATE, subtype=subtype)
        check_audio(path)


# ---- documents --------------------------------------------------------------------------------


def check_document(path: Path) -> None:
    """Either sections whose chunks Chroma accepts, with the project's fields intact, or one line of reason."""
    import chromadb.api.types as chroma_types

    with no_hang():
        try:
            sections, problems = read_document(path)
        except (ValueError, OSError) as error:
            assert "\n" not in str(error) and str(error)
            return
    assert sections and all("\n" not in p for p in problems)
    ids = [chunk.id for section in sections for chunk in chunk_section(section)]
    assert len(ids) == len(set(ids))  # Chroma refuses a batch that repeats an id
    for section in sections:
        assert section.text.strip() and "\n" not in section.title
        for chunk in chunk_section(section):
            chunk.text.encode("utf-8")  # no lone surrogates: Chroma and the hashes need UTF-8
            chroma_types.validate_metadata(chunk.metadata)
            assert all(key and isinstance(key, str) for key in chunk.metadata)
            for value in chunk.metadata.values():
                if isinstance(value, str):
                    value.encode("utf-8")  # raises on a lone surrogate
            assert chunk.metadata["path"] == str(path.resolve()) and chunk.metadata["source"].startswith(str(path.resolve()))
            assert 0 <= chunk.metadata["start_char"] <= chunk.metadata["end_char"] <= len(section.text)
            assert ("page" in chunk.metadata) == bool(section.page)


@EXAMPLES
@given(suffix=st.sampled_from(sorted(SUPPORTED)), data=st.binary(max_size=3000))
def test_any_bytes_in_any_document_format_are_sections_or_one_reason(tmp_path_factory, suffix, data):
    path = tmp_path_factory.mktemp("doc") / f"doc{suffix}"
    path.write_bytes(data)
    check_document(path)


@EXAMPLES
@given(suffix=st.sampled_from([".txt", ".md", ".html", ".jsonl"]), text=st.text(max_size=2000))
def test_any_text_in_any_text_format_is_sections_or_one_reason(tmp_path_factory, suffix, text):
    path = tmp_path_factory.mktemp("doc") / f"doc{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check_document(path)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["id", "title", "source", "path", "page", "start_char", "chunk_index", "", "author", "$x",
                               "chroma:document"]) | st.text(max_size=10)
# Mostly objects with a `text` of any JSON type (a string most of all), the odd line anything else.
records = st.builds(
    lambda text, rest: {**rest, "text": text} if text is not None else rest,
    st.none() | json_values | st.text(max_size=200),
    st.dictionaries(field_names, json_values | st.text(max_size=200), max_size=6),
) | json_values


@EXAMPLES
@given(lines=st.lists(records, max_size=12))
@example(lines=[{"id": "n", "text": 5}])  # each of these once stopped an ingest
@example(lines=[{"id": "a", "text": "Same."}, {"id": "a", "text": "Same."}])
@example(lines=[{"": "empty key", "text": "Volcanoes."}, {"text": "\ud800"}])
def test_jsonl_records_of_any_values_are_sections_or_one_reason(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("doc") / "records.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8", errors="surrogatepass")
    check_document(path)


SEED_TEXT = "Deserts receive little rain each year"
CONTENT = f"BT /F1 12 Tf 72 720 Td ({SEED_TEXT}) Tj ET".encode()  # the page's text operators, as _pdf writes them


@pytest.fixture(scope="module")
def real_pdf(tmp_path_factory) -> bytes:
    """A real one-page PDF made by pypdf, the seed every mutated PDF starts from."""
    return _pdf(tmp_path_factory.mktemp("pdf") / "seed.pdf", SEED_TEXT).read_bytes()


# Anywhere in the file, or inside the page's content stream, where text extraction reads.
mutation = st.tuples(st.sampled_from(["set", "delete", "insert", "truncate", "in_content"]), st.floats(0, 1), st.integers(1, 40),
                     st.sampled_from([b"[", b"<<", b">>", b"0 R", b"/Kids", b"-1", b"99999999", b"(", b"/Length 999999",
                                      b"obj", b"endstream", b"\x00", b"/Encrypt 1 0 R", b"/Filter /FlateDecode"])
                     | st.binary(min_size=1, max_size=8))


@EXAMPLES
@given(mutations=st.lists(mutation, min_size=1, max_size=5))
@example(mutations=[("in_content", CONTENT.index(b"720") / len(CONTENT), 1, b"0 R")])  # once an AssertionError in pypdf
def test_pdfs_mutated_from_a_real_one_are_sections_or_one_reason(tmp_path_factory, real_pdf, mutations):
    data = bytearray(real_pdf)
    for op, where, size, chunk in mutations:
        at = int(where * len(data))
        if op == "in_content":
            if CONTENT in data:
                at = data.index(CONTENT) + round(where * len(CONTENT))
                data[at:at] = chunk
        elif op == "set":
            data[at : at + len(chunk)] = chunk
        elif op == "delete":
            del data[at : at + size]
        elif op == "insert":
            data[at:at] = chunk
        else:
            del data[at:]
    path = tmp_path_factory.mktemp("pdf") / "mutated.pdf"
    path.write_bytes(bytes(data))
    check_document(path)
