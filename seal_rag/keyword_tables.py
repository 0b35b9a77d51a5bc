"""A knowledge base's keyword tables kept on disk beside its phonetic index.

`ask` and `serve` re-rank by keyword spotting (`keyword_rerank`) and decode queries with the
knowledge base's phoneme model (`kb_decoding`); both are built from every chunk's phonemes,
which takes seconds at 20,000 chunks and minutes at a million. So the first process to build
them writes them to `<phonetic index folder>/keywords.npz`, and later ones read that file
instead, for as long as the index is unchanged.

The file is plain arrays (numpy's npz, read without pickle) and a stamp: the phonetic
index's space and generation (every write to the index moves the generation on, the last
time after Chroma has the new text), its row count, Chroma's chunk count and the settings
the tables were built with. A file whose stamp differs, or which cannot be read or does not
hold consistent tables, is ignored and built again. Tables are kept only if the chunks they
were built from are exactly the ones the phonetic index holds at that stamp. The file is
written through a scratch file and a rename, so a reader sees the old file or the new one,
never part of one; a scratch file left by a process that died is removed by the index's
next writer, or by the next reader to keep tables once it is an hour old.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .kb_decoding import DecodingSettings
from .keyword_rerank import KeywordReranker, KeywordSettings
from .phonetic_index import SCRATCH
from .spelling import tables_stamp

FILE = "keywords.npz"
FORMAT = 3  # 3: the decoder's speller (`spelling`) is kept too
STALE_SCRATCH_SECONDS = 3600  # a scratch file this old belongs to no live reader: the largest take seconds to write


def stamp(index) -> dict:
    """What the tables of `index`'s (a `SealIndex` with a phonetic index) current state, built
    with `retrieve.keyword_reranker`'s settings, are stamped with."""
    phonetic = index.phonetic
    phonetic.refresh()
    return {"format": FORMAT, "space": phonetic.space, "generation": phonetic.generation, "rows": phonetic.live_count,
            "chunks": index.count(), "keywords": asdict(KeywordSettings()), "decoding": asdict(DecodingSettings()),
            "spelling": tables_stamp()}


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
    except Exception:  # noqa: BLE001 - any damage (a bad zip, a codec, a huge shape's MemoryError): build again
        return None


def save(reranker: KeywordReranker, folder: Path, stamped: dict) -> None:
    """Keep `reranker`'s tables in `folder` under `stamped`. A folder this process cannot write
    (a read-only index) keeps nothing: the tables are built again next time."""
    arrays = {"stamp": np.frombuffer(json.dumps(stamped).encode(), np.uint8), **reranker.arrays()}
    scratch = None
    try:
        for old in folder.glob(f"{SCRATCH}*"):
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > STALE_SCRATCH_SECONDS:
                    old.unlink()
        handle, scratch = tempfile.mkstemp(prefix=SCRATCH, dir=folder)
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.replace(scratch, folder / FILE)
    except OSError:
        if scratch:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
