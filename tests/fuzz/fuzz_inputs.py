"""Coverage-guided fuzzing of everything that reads untrusted bytes, for runs longer than the test suite's.

    python3 tests/fuzz/fuzz_inputs.py -max_total_time=600 -rss_limit_mb=4096 [corpus_dir]

The first byte picks the target: the audio loader (the bytes as an encoded file), or a document
loader (the bytes as a .txt, .md, .html, .pdf or .jsonl file). The invariant is the property
tests' (tests/test_properties.py): a result, or one line of the project's own error (a
`SealError` for audio; a `ValueError` or `OSError` reason for a document, which ingest reports
and skips). Any other exception is a finding: libFuzzer stops and writes the input to
`crash-*` in the current directory. A hang shows as libFuzzer's `-timeout` (default 1200 s;
pass `-timeout=20`). Not collected by pytest (its name does not start with `test_`);
`pip install atheris` (in the dev extra) first.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports():  # the parsers too, so coverage guides the fuzzer through them
    import bs4  # noqa: F401
    import numpy as np
    import pypdf  # noqa: F401

    from seal_rag.audio import load_audio, log_mel, split_windows
    from seal_rag.chunking import chunk_section
    from seal_rag.errors import SealError
    from seal_rag.loaders import read_document

DOCUMENT_SUFFIXES = [".txt", ".md", ".html", ".pdf", ".jsonl"]
WORK = Path(tempfile.mkdtemp(prefix="seal-fuzz-"))


def fuzz_audio(data: bytes) -> None:
    try:
        clip = load_audio(data, max_seconds=5.0)
    except SealError as error:
        assert "\n" not in str(error), str(error)
        return
    assert clip.dtype == np.float32 and clip.ndim == 1 and np.isfinite(clip).all() and np.abs(clip).max() <= 1.001
    for window in split_windows(clip):
        log_mel(window)


def fuzz_document(suffix: str, data: bytes) -> None:
    path = WORK / f"doc{suffix}"
    path.write_bytes(data)
    try:
        sections, problems = read_document(path)
    except (ValueError, OSError) as error:
        assert "\n" not in str(error), str(error)
        return
    for section in sections:
        for chunk in chunk_section(section):
            chunk.text.encode("utf-8")
            assert chunk.metadata["path"] == str(path.resolve())


def one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % (1 + len(DOCUMENT_SUFFIXES)), data[1:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quality warnings are allowed; they are not errors
        if target == 0:
            fuzz_audio(body)
        else:
            fuzz_document(DOCUMENT_SUFFIXES[target - 1], body)


def main() -> None:
    import logging

    logging.disable(logging.CRITICAL)  # pypdf logs every oddity it recovers from
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
