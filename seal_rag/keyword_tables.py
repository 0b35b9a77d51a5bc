"""A knowledge base's keyword tables kept on disk beside its phonetic index.

`ask` and `serve` re-rank by keyword spotting (`keyword_rerank`) and decode queries with the
knowledge base's phoneme model (`kb_decoding`); both are built from every chunk's phonemes,
which takes seconds at 20,000 chunks and minutes at a million. So the first process to build
them writes them to `<phonetic index folder>/keywords.npz`, and later ones read that file
instead, for as long as the index is unchanged.

The file is plain arrays (numpy's npz, read without pickle) and a stamp: the phonetic
index's space and generation (every write to the index moves the generation on), its row
count and the settings the tables were built with. A file whose stamp differs, or which
cannot be read, is ignored and built again. It is written through a scratch file and a
rename, so a reader sees the old file or the new one, never part of one; a writer that died
mid-write leaves a scratch file the index's next writer removes (`phonetic_index.SCRATCH`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .kb_decoding import DecodingSettings
from .keyword_rerank import KeywordReranker, KeywordSettings
from .phonetic_index import SCRATCH, PhoneticIndex

FILE = "keywords.npz"
FORMAT = 1


def stamp(phonetic: PhoneticIndex, settings: KeywordSettings, decoding: DecodingSettings | None) -> dict:
    """What the tables of `phonetic`'s current state, built with these settings, are stamped with."""
    return {"format": FORMAT, "space": phonetic.space, "generation": phonetic.generation, "rows": phonetic.live_count,
            "keywords": asdict(settings), "decoding": asdict(decoding) if decoding is not None else None}


def load(folder: Path, expected: dict) -> KeywordReranker | None:
    """The tables kept in `folder` if their stamp is `expected`; else (none kept, another state, unreadable) None."""
    try:
        with np.load(folder / FILE, allow_pickle=False) as kept:
            if json.loads(bytes(kept["stamp"]).decode()) != expected:
                return None
            arrays = {name: kept[name] for name in kept.files}
        decoding = expected["decoding"]
        return KeywordReranker.from_arrays(arrays, KeywordSettings(**expected["keywords"]),
                                           DecodingSettings(**decoding) if decoding is not None else None)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None


def save(reranker: KeywordReranker, folder: Path, stamped: dict) -> None:
    """Keep `reranker`'s tables in `folder` under `stamped`. A folder this process cannot write
    (a read-only index) keeps nothing: the tables are built again next time."""
    arrays = {"stamp": np.frombuffer(json.dumps(stamped).encode(), np.uint8), **reranker.arrays()}
    scratch = None
    try:
        handle, scratch = tempfile.mkstemp(prefix=SCRATCH, dir=folder)
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.replace(scratch, folder / FILE)
    except OSError:
        if scratch:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
