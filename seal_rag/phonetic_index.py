"""The phonetic half's home beside Chroma: a memory-mapped inverted index of sparse vectors.

A passage's phonetic half has about 900 non-zero buckets of 8,192, a spoken query's about
124. Chroma (local) has no sparse index, and a dense 8,192-wide HNSW costs 22 times the
semantic half. Here each bucket keeps a posting list of (row, value), so a query's exact
phonetic cosine with every passage is a sum over its own ~124 posting lists.

Layout of the folder (`<db>/phonetic/<collection>/`, or under the cache for a Chroma server):

    manifest.json            which segments are live; replaced atomically (write, fsync, rename)
    <seg>.ids.json           the chunk id of each row
    <seg>.indptr.npy         (width + 1,) int64: bucket b's postings are [indptr[b], indptr[b+1])
    <seg>.rows.npy           (nnz,) uint16: row within the segment (a segment holds at most 65,536)
    <seg>.values.npy         (nnz,) float32: the unit phonetic vector's value there, exactly as the model made it
    <seg>.phonemes.json.z    each row's espeak-ng phonemes (zlib-compressed JSON, about 0.4 of the text's
                             bytes), where the writer gave them (ingest does), so a knowledge base's
                             keyword tables need no second phonemization (`phonemes_of`)
    <seg>.dead-<gen>.npy     (rows,) bool: rows deleted or replaced since the segment was written

Segments never change once written; upserts add segments, deletes write a new dead mask,
and a tiered merge keeps their number small. A writer (`seal_rag.store.SealIndex`) writes
new files first and the manifest last, so a crash leaves the old manifest and some files
it does not name, which the next writer removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

FORMAT = 1  # of manifest.json
MANIFEST, LOCK = "manifest.json", "phonetic.lock"
PHONEMES = "phonemes.json.z"  # a segment's phonemes file, after its name
SEGMENT_ROWS = 65_536  # rows of one segment, so row numbers fit in uint16 (2 bytes a posting instead of 4)
MERGE_FANOUT = 8  # this many segments of one size tier are merged into one
PARALLEL_POSTINGS = 1_000_000  # a query reading more postings than this is scored by two threads


@dataclass
class Segment:
    """One immutable block of rows; only its dead mask changes (as a new file)."""

    name: str
    ids: list[str]
    indptr: np.ndarray  # (width + 1,) int64, memory-mapped
    rows: np.ndarray  # (nnz,) uint16, memory-mapped
    values: np.ndarray  # (nnz,) float32, memory-mapped
    dead: np.ndarray  # (rows,) bool, in memory
    dead_file: str | None = None
    has_phonemes: bool = False  # `<name>.phonemes.json.z` was written with it

    @property
    def size(self) -> int:
        return len(self.ids)


class PhoneticIndexError(Exception):
    """The folder holds no readable phonetic index (missing, damaged or another layout)."""


class PhoneticIndex:
    """Sparse phonetic vectors by chunk id, with exact dot-product scoring.

    Args:
        folder: Where the index lives (created on first write).
        width: Buckets of the phonetic half (8,192 for the shipped model).
        space: The model's space fingerprint; an index made in another space reads as missing.
    """

    def __init__(self, folder: str | Path, width: int, space: str):
        self.folder, self.width, self.space = Path(folder), width, space
        self.segments: list[Segment] = []
        self.generation = 0
        self.exists = False  # a manifest of this width and space was read
        self._stamp: tuple | None = None
        self._where: dict[str, tuple[Segment, int]] | None = None  # id -> (segment, row), live rows only
        self._flat: tuple[list[str], dict[str, int]] | None = None  # ids of all rows, and where each segment starts
        # Held by a search from its scores to its ids (`fused_search`), and by a reload: a search in
        # one thread of `serve` never mixes the numbering of two manifests.
        self.lock = threading.RLock()
        self.reload()

    # ---- reading -------------------------------------------------------------------

    def reload(self) -> None:
        """Read the manifest and map its segments (files that vanish mid-read mean a writer moved on: read again)."""
        for _ in range(5):
            try:
                self._load()
                return
            except FileNotFoundError:
                continue
        self._load()

    def _load(self) -> None:
        # Built aside and swapped in at the end: a search in another thread (serve) sees the old
        # segments or the new ones, never none.
        path = self.folder / MANIFEST
        old = {s.name: s for s in self.segments}  # segments already mapped are kept, not read again
        try:
            stat = path.stat()
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            self._swap([], 0, False, None)
            return
        except (OSError, ValueError) as error:
            raise PhoneticIndexError(f"{path} is unreadable ({error})") from None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if manifest.get("format") != FORMAT or manifest.get("width") != self.width or manifest.get("space") != self.space:
            self._swap([], 0, False, stamp)  # another model's, collection's or format's index: rebuilt by the caller
            return
        segments = []
        for entry in manifest["segments"]:
            name, dead_file = entry["name"], entry.get("dead")
            if name in old and old[name].dead_file == dead_file:  # unchanged since we last read (or wrote) it
                segments.append(old[name])
                continue
            ids = json.loads((self.folder / f"{name}.ids.json").read_text())
            dead = np.load(self.folder / dead_file) if dead_file else np.zeros(len(ids), bool)
            segments.append(Segment(name, ids, *(np.load(self.folder / f"{name}.{part}.npy", mmap_mode="r")
                                                 for part in ("indptr", "rows", "values")), dead, dead_file,
                                    bool(entry.get("phonemes"))))
        self._swap(segments, manifest["generation"], True, stamp)

    def _swap(self, segments: list[Segment], generation: int, exists: bool, stamp: tuple | None) -> None:
        with self.lock:
            self.segments, self.generation, self.exists, self._stamp = segments, generation, exists, stamp
            self._where = self._flat = None

    def refresh(self) -> None:
        """Re-read the manifest if another process replaced it (cheap: one stat)."""
        try:
            stat = (self.folder / MANIFEST).stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self.reload()

    @property
    def live_count(self) -> int:
        return sum(s.size - int(s.dead.sum()) for s in self.segments)

    def live_ids(self) -> set[str]:
        return set(self._locations())

    def _locations(self) -> dict[str, tuple[Segment, int]]:
        if self._where is None:
            self._where = {}
            for segment in self.segments:
                for row in np.flatnonzero(~segment.dead).tolist():
                    self._where[segment.ids[row]] = (segment, row)
        return self._where

    def _flat_ids(self) -> tuple[list[str], dict[str, int]]:
        """Every row's id in `scores`' numbering, and where each segment's rows start in it."""
        if self._flat is None:
            ids, starts = [], {}
            for segment in self.segments:
                starts[segment.name] = len(ids)
                ids += segment.ids
            self._flat = (ids, starts)
        return self._flat

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Each id's row in `scores`' numbering, or -1 when the index does not hold it."""
        where, (_, starts) = self._locations(), self._flat_ids()
        return np.array([starts[where[i][0].name] + where[i][1] if i in where else -1 for i in ids], np.int64)

    def ids_at(self, rows: Iterable[int]) -> list[str]:
        return [self._flat_ids()[0][r] for r in rows]

    def phonemes_of(self, ids: Sequence[str]) -> list[str | None]:
        """Each id's stored phonemes; None for an id the index lacks or stored without them."""
        where, loaded = self._locations(), {}
        out: list[str | None] = []
        for i in ids:
            segment, row = where.get(i, (None, 0))
            if segment is None or not segment.has_phonemes:
                out.append(None)
                continue
            if segment.name not in loaded:
                loaded[segment.name] = json.loads(zlib.decompress((self.folder / f"{segment.name}.{PHONEMES}").read_bytes()))
            out.append(loaded[segment.name][row])
        return out

    def ids_without_phonemes(self) -> list[str]:
        """Live ids stored without phonemes (by a writer from before they were kept)."""
        return [i for i, (segment, _) in self._locations().items() if not segment.has_phonemes]

    def add_phonemes(self, ids: Sequence[str], phonemes: Sequence[str]) -> None:
        """Keep `phonemes` for rows the index holds: they are written again, vectors unchanged."""
        from scipy import sparse

        where, matrices, blocks = self._locations(), {}, []
        for i in ids:
            segment, row = where[i]
            if segment.name not in matrices:
                matrices[segment.name] = _matrix(segment, self.width)
            blocks.append(matrices[segment.name][row])
        if blocks:
            self.upsert(list(ids), sparse.vstack(blocks, format="csr"), phonemes)

    def scores(self, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Dot product of one sparse query with every row: `(rows,)` float64, -inf for dead rows.

        A query whose posting lists are long is scored by two threads, each summing half of its
        buckets (numpy's gathers and bincount run outside the GIL): a spoken question has ~800
        buckets, and at 50k chunks this takes ~60 instead of ~95 ms on 2 cores.

        Args:
            buckets: `(q,)` the query's non-zero buckets; weights: `(q,)` its values there.
        """
        buckets = np.asarray(buckets, np.int64)
        weights = np.asarray(weights, np.float64)
        postings = sum(int((s.indptr[buckets + 1] - s.indptr[buckets]).sum()) for s in self.segments)
        if postings < PARALLEL_POSTINGS or len(buckets) < 2:
            return self._scores(buckets, weights)
        halves = [slice(0, None, 2), slice(1, None, 2)]
        first, second = _pool().map(lambda half: self._scores(buckets[half], weights[half]), halves)
        return first + second  # -inf (dead rows) in both stays -inf

    def _scores(self, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        total = sum(s.size for s in self.segments)
        out = np.empty(total, np.float64)
        start = 0
        for segment in self.segments:
            first, last = segment.indptr[buckets], segment.indptr[buckets + 1]
            lengths = last - first
            # The postings of every query bucket, as one index array: each run first..last-1 in turn.
            offsets = np.repeat(first - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
            products = segment.values[offsets] * np.repeat(weights, lengths)  # (postings,) float64
            # float64 even when the query has no bucket (noise heard as no phoneme): bincount then gives ints.
            scores = np.bincount(segment.rows[offsets], weights=products, minlength=segment.size).astype(np.float64)
            scores[segment.dead] = -np.inf
            out[start : start + segment.size] = scores
            start += segment.size
        return out

    # ---- writing (callers hold `writing()`) ------------------------------------------

    @contextlib.contextmanager
    def writing(self):
        """Hold the folder's write lock, with the newest manifest read and stray files of a crashed writer removed."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self.refresh()  # another writer may have committed since; our own commits need no re-read
                self._remove_strays()
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def clear(self) -> None:
        """Forget every row (the next commit writes an empty index of this space)."""
        self.segments, self._where, self._flat = [], None, None
        self._commit()

    def upsert(self, ids: Sequence[str], vectors, phonemes: Sequence[str] | None = None) -> None:
        """Store `(n, width)` phonetic vectors (dense or scipy sparse) under `ids`, replacing earlier
        rows of the same ids; with `phonemes`, each row's phonemes too (`phonemes_of`)."""
        from scipy import sparse

        matrix = sparse.csc_matrix(vectors, dtype=np.float32)
        if matrix.shape != (len(ids), self.width):
            raise ValueError(f"phonetic vectors of shape {matrix.shape} for {len(ids)} ids; expected width {self.width}")
        if phonemes is not None and len(phonemes) != len(ids):
            raise ValueError(f"{len(phonemes)} phoneme strings for {len(ids)} ids")
        self._kill(ids)
        for start in range(0, len(ids), SEGMENT_ROWS):
            end = start + SEGMENT_ROWS
            self._add_segment(list(ids[start:end]), matrix[start:end], None if phonemes is None else list(phonemes[start:end]))
        self._commit()
        self._merge()

    def delete(self, ids: Sequence[str]) -> None:
        if self._kill(ids):
            self._commit()

    def _kill(self, ids: Sequence[str]) -> bool:
        where, killed = self._locations(), False
        for i in ids:
            if i in where:
                segment, row = where.pop(i)
                segment.dead[row] = True
                segment.dead_file = None  # a new mask file goes with the next manifest
                killed = True
        return killed

    def _add_segment(self, ids: list[str], matrix, phonemes: list[str] | None = None) -> None:
        self.generation += 1
        name = f"s{self.generation:09d}"
        matrix = matrix.tocsc()
        matrix.sort_indices()
        parts = {"indptr": matrix.indptr.astype(np.int64), "rows": matrix.indices.astype(np.uint16),
                 "values": matrix.data.astype(np.float32)}
        for part, array in parts.items():
            _write(self.folder / f"{name}.{part}.npy", lambda f, a=array: np.save(f, a))
        _write(self.folder / f"{name}.ids.json", lambda f: f.write(json.dumps(ids).encode()))
        if phonemes is not None:
            packed = zlib.compress(json.dumps(phonemes, ensure_ascii=False).encode(), 6)
            _write(self.folder / f"{name}.{PHONEMES}", lambda f: f.write(packed))
        parts = {part: np.load(self.folder / f"{name}.{part}.npy", mmap_mode="r") for part in parts}
        self.segments.append(Segment(name, ids, parts["indptr"], parts["rows"], parts["values"], np.zeros(len(ids), bool),
                                     has_phonemes=phonemes is not None))
        segment = self.segments[-1]
        where = self._locations()
        for row, i in enumerate(ids):
            where[i] = (segment, row)
        self._flat = None

    def _commit(self) -> None:
        """Write changed dead masks, then the manifest (atomically), then drop files no manifest names any more."""
        self.generation += 1
        self.segments = [s for s in self.segments if not s.dead.all()]  # nothing live: the segment goes
        for segment in self.segments:
            if segment.dead_file is None and segment.dead.any():
                segment.dead_file = f"{segment.name}.dead-{self.generation:09d}.npy"
                _write(self.folder / segment.dead_file, lambda f, d=segment.dead: np.save(f, d))
        manifest = {"format": FORMAT, "width": self.width, "space": self.space, "generation": self.generation,
                    "rows": self.live_count, "segments": [{"name": s.name, "rows": s.size, "dead": s.dead_file}
                                                         | ({"phonemes": True} if s.has_phonemes else {})
                                                         for s in self.segments]}
        temporary = self.folder / f"{MANIFEST}.tmp"
        _write(temporary, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
        os.replace(temporary, self.folder / MANIFEST)
        _sync_folder(self.folder)
        stat = (self.folder / MANIFEST).stat()
        self._stamp, self.exists = (stat.st_ino, stat.st_mtime_ns, stat.st_size), True
        self._flat = None  # row numbering moves when segments go
        self._remove_strays()

    def _remove_strays(self) -> None:
        keep = {MANIFEST, LOCK}
        for segment in self.segments:
            keep |= {f"{segment.name}.{part}" for part in ("ids.json", "indptr.npy", "rows.npy", "values.npy")}
            keep |= {f"{segment.name}.{PHONEMES}"} if segment.has_phonemes else set()
            keep |= {segment.dead_file} if segment.dead_file else set()
        for path in self.folder.iterdir():
            if path.name not in keep and path.name.startswith(("s", MANIFEST)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _merge(self) -> None:
        """Tiered merging: MERGE_FANOUT segments of one size tier (by powers of the fanout) become one.

        Each row is rewritten about log_8(65,536 / batch) times, and a million rows stay in a few
        dozen segments, so a query reads a few dozen posting lists per bucket, not thousands.
        """
        from scipy import sparse

        while True:
            tiers: dict[int, list[Segment]] = {}
            for segment in self.segments:
                live = segment.size - int(segment.dead.sum())
                if live < SEGMENT_ROWS:
                    tiers.setdefault(int(math.log(max(live, 1), MERGE_FANOUT)), []).append(segment)
            group = next((members for _, members in sorted(tiers.items()) if len(members) >= MERGE_FANOUT), None)
            if group is None:
                return
            group = group[:MERGE_FANOUT]
            ids, blocks = [], []
            for segment in group:
                keep = np.flatnonzero(~segment.dead)
                blocks.append(_matrix(segment, self.width)[keep])
                ids += [segment.ids[r] for r in keep.tolist()]
            # Phonemes survive a merge only if every merged segment had them (one file per segment).
            phonemes = self.phonemes_of(ids) if all(s.has_phonemes for s in group) else None
            merged = sparse.vstack(blocks, format="csr")
            names = {s.name for s in group}
            self.segments = [s for s in self.segments if s.name not in names]
            for start in range(0, len(ids), SEGMENT_ROWS):
                end = start + SEGMENT_ROWS
                self._add_segment(ids[start:end], merged[start:end], None if phonemes is None else phonemes[start:end])
            self._commit()


def _matrix(segment: Segment, width: int):
    """A segment's rows as a scipy CSR matrix `(rows, width)`."""
    from scipy import sparse

    return sparse.csc_matrix((segment.values, segment.rows.astype(np.int64), segment.indptr), shape=(segment.size, width)).tocsr()


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(2, thread_name_prefix="phonetic-scores")
        return _threads


def _write(path: Path, fill) -> None:
    """Write a file and force it to disk before anything names it."""
    with open(path, "wb") as handle:
        fill(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, 0o600)  # an index is for its owner only (as `store.make_private`)


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
