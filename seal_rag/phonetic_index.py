"""The phonetic half's home beside Chroma: memory-mapped sparse vectors, searched in two phases.

A passage's phonetic half has about 900 non-zero buckets of 8,192, a spoken query's about
800. Chroma (local) has no sparse index, and a dense 8,192-wide HNSW costs 22 times the
semantic half. Each segment here holds its rows twice, compactly:

- by row (the forward index): each row's buckets and values, so a row's exact score is one
  short loop;
- by bucket (the inverted index): the rows holding each bucket, grouped into `CLASSES`
  classes of value, highest first.

`top` finds a query's best rows in two phases. It sums, for every row, the query's weight
times the class value of its highest-impact postings (the query's `SHARE` of postings by
that impact, which the class counts let it choose in advance), and keeps each segment's
`CANDIDATES` best sums. It then scores the `CANDIDATES` best of those exactly from the
forward index. Scoring every posting of an
800-bucket query takes about 90 million postings at a million rows; the first phase reads
an eighth of them. `scores` is the exact score of every row, for tests and recall checks.

Layout of the folder (`<db>/phonetic/<collection>/`, or under the cache for a Chroma server):

    manifest.json            which segments are live; replaced atomically (write, fsync, rename)
    <seg>.ids.json           the chunk id of each row
    <seg>.row_ptr.npy        (rows + 1,) int64: row r's entries are [row_ptr[r], row_ptr[r+1])
    <seg>.buckets.npy        (nnz,) uint16: each entry's bucket
    <seg>.codes.npy          (nnz,) uint16: each entry's value in steps of 2^-16 (`VALUE_SCALE`)
    <seg>.postings.npy       (nnz,) uint16: rows (a segment holds at most 65,536), by bucket, then class, then row
    <seg>.class_ptr.npy      (width * CLASSES + 1,) uint32: postings of bucket b, class c start at [b * CLASSES + c]
    <seg>.phonemes.json.z    each row's espeak-ng phonemes (zlib-compressed JSON, about 0.4 of the text's
                             bytes), where the writer gave them (ingest does), so a knowledge base's
                             keyword tables need no second phonemization (`phonemes_of`)
    <seg>.dead-<gen>.npy     (rows,) bool: rows deleted or replaced since the segment was written
    keywords.npz             the knowledge base's keyword tables, of one state of the index, kept by
                             the first reader that built them (`keyword_tables`; not this module's)

Segments never change once written; upserts add segments, deletes write a new dead mask,
and a tiered merge keeps their number small. A writer (`seal_rag.store.SealIndex`) writes
new files first and the manifest last, so a crash leaves the old manifest and some files
it does not name, which the next writer removes. An index of an older format reads as
missing, and `SealIndex` rebuilds it from Chroma's text.
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

MADV_POPULATE_READ = 22  # Linux 5.14+: fault a mapping's pages in at once (Python 3.11's mmap lacks the name)
FORMAT = 2  # of manifest.json (1: float32 postings by bucket alone)
MANIFEST, LOCK = "manifest.json", "phonetic.lock"
PHONEMES = "phonemes.json.z"  # a segment's phonemes file, after its name
SCRATCH = ".scratch-"  # files being written by a reader beside the index (`keyword_tables`): a stray one is removed
PARTS = ("row_ptr", "buckets", "codes", "postings", "class_ptr")  # a segment's arrays, each `<seg>.<part>.npy`
# Stored values are unsigned 16-bit multiples of 2^-16: a unit vector's entries are at most 1,
# and 2^-16 is finer than float16 for every value a phonetic vector holds (0.004 to 0.5).
VALUE_SCALE = 65536.0
SEGMENT_ROWS = 65_536  # rows of one segment, so row numbers fit in uint16 (2 bytes a posting instead of 4)
MERGE_FANOUT = 8  # this many segments of one size tier are merged into one
# Value classes of the inverted index: class c < CLASSES - 1 holds values of at least
# CLASS_EDGES[c] (geometric, 0.2 down to 0.006: a passage's values lie between 0.01 and 0.1
# for 98% of its entries); the last class holds the rest. A class counts as its lower edge.
CLASSES = 16
CLASS_EDGES = 0.2 / 1.28 ** np.arange(CLASSES - 1)
CLASS_VALUES = np.append(CLASS_EDGES, CLASS_EDGES[-1] / 1.28)
# The first phase reads this share of a query's postings (by impact), at least MIN_POSTINGS;
# the second scores CANDIDATES rows (or 4 times the depth asked for) exactly. Chosen on SQuAD
# passages and questions heard from flite, 100,000 rows: recall@10 0.99 against exact
# scoring (`seal-rag bench scale` reports it at each size).
SHARE = 0.125
MIN_POSTINGS = 200_000
CANDIDATES = 1_000
PARALLEL_POSTINGS = 1_000_000  # a first phase reading more postings than this is split over two threads


@dataclass
class Segment:
    """One immutable block of rows; only its dead mask changes (as a new file)."""

    name: str
    ids: list[str]
    row_ptr: np.ndarray  # (rows + 1,) int64; this and the four below are memory-mapped
    buckets: np.ndarray  # (nnz,) uint16
    codes: np.ndarray  # (nnz,) uint16
    postings: np.ndarray  # (nnz,) uint16
    class_ptr: np.ndarray  # (width * CLASSES + 1,) uint32
    dead: np.ndarray  # (rows,) bool, in memory
    dead_file: str | None = None
    has_phonemes: bool = False  # `<name>.phonemes.json.z` was written with it

    @property
    def size(self) -> int:
        return len(self.ids)


KEEP = object()  # `touch`: leave the recorded Chroma change token as it is


class PhoneticIndexError(Exception):
    """The folder holds no readable phonetic index (missing, damaged or another layout)."""


class PhoneticIndex:
    """Sparse phonetic vectors by chunk id: a fast top-k search (`top`) and exact scores.

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
        # The Chroma collection's change token (`store.CHANGE_KEY`) when this index last matched it.
        self.chroma_change: str | None = None
        self._stamp: tuple | None = None
        self._where: dict[str, tuple[Segment, int]] | None = None  # id -> (segment, row), live rows only
        self._flat: tuple[list[str], dict[str, int]] | None = None  # ids of all rows, and where each segment starts
        self._class_counts: np.ndarray | None = None  # (width * CLASSES,) postings per bucket and class, all segments
        # Held by a search from its scores to its ids (`fused_search`), and by a reload: a search in
        # one thread of `serve` never mixes the numbering of two manifests.
        self.lock = threading.RLock()
        self.reload()

    # ---- reading -------------------------------------------------------------------

    def reload(self) -> None:
        """Read the manifest and map its segments (files that vanish mid-read mean a writer moved on: read again)."""
        for attempt in range(6):
            try:
                self._load()
                return
            except FileNotFoundError as error:
                if attempt == 5:  # not a writer moving on: the file is gone
                    raise PhoneticIndexError(f"its file {Path(error.filename or '?').name} is missing") from None
            except (OSError, ValueError) as error:  # a segment's file cut short or overwritten
                raise PhoneticIndexError(f"a file of it is unreadable ({' '.join(str(error).split())[:160]})") from None

    def _load(self) -> None:
        # Built aside and swapped in at the end: a search in another thread (serve) sees the old
        # segments or the new ones, never none.
        path = self.folder / MANIFEST
        old = {s.name: s for s in self.segments}  # segments already mapped are kept, not read again
        try:
            stat = path.stat()
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            self._swap([], 0, False, None, None)
            return
        except (OSError, ValueError) as error:
            raise PhoneticIndexError(f"{path} is unreadable ({error})") from None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if manifest.get("format") != FORMAT or manifest.get("width") != self.width or manifest.get("space") != self.space:
            self._swap([], 0, False, stamp, None)  # another model's, collection's or format's index: rebuilt by the caller
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
                                                 for part in PARTS), dead, dead_file, bool(entry.get("phonemes"))))
        self._swap(segments, manifest["generation"], True, stamp, manifest.get("chroma_change"))

    def _swap(self, segments: list[Segment], generation: int, exists: bool, stamp: tuple | None,
              chroma_change: str | None) -> None:
        with self.lock:
            self.segments, self.generation, self.exists, self._stamp = segments, generation, exists, stamp
            self.chroma_change = chroma_change
            self._where = self._flat = self._class_counts = None

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

    def warm(self) -> None:
        """Map the inverted index's pages into this process now: a long-running server's first
        queries then do not wait on page faults (about 15 ms a query at a million rows). The
        forward index, read only for each query's candidates, is left to fault in as it is read."""
        for segment in self.segments:
            for array in (segment.postings, segment.class_ptr):
                mapped = getattr(array, "_mmap", None)
                try:
                    mapped.madvise(MADV_POPULATE_READ)
                except (AttributeError, OSError, ValueError):  # not mapped, or a kernel older than 5.14
                    int(np.asarray(array[:: 4096 // array.itemsize], np.int64).sum())  # touch each page

    def live_ids(self) -> set[str]:
        return set(self._locations())

    def _locations(self) -> dict[str, tuple[Segment, int]]:
        where = self._where
        if where is None:  # built whole before it is shared: another thread may read it meanwhile (serve)
            where = {}
            for segment in self.segments:
                for row in np.flatnonzero(~segment.dead).tolist():
                    where[segment.ids[row]] = (segment, row)
            self._where = where
        return where

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

    def phonemes_of(self, ids: Sequence[str], kept: dict | None = None) -> list[str | None]:
        """Each id's stored phonemes; None for an id the index lacks or stored without them.

        `kept`: a dict the caller passes again with each page of ids, so that a segment's phonemes
        are decompressed once, not once a page; it keeps only the segments the last page read."""
        where, loaded, used = self._locations(), kept if kept is not None else {}, set()
        out: list[str | None] = []
        for i in ids:
            segment, row = where.get(i, (None, 0))
            if segment is None or not segment.has_phonemes:
                out.append(None)
                continue
            if segment.name not in loaded:
                loaded[segment.name] = json.loads(zlib.decompress((self.folder / f"{segment.name}.{PHONEMES}").read_bytes()))
            used.add(segment.name)
            out.append(loaded[segment.name][row])
        for name in loaded.keys() - used:
            del loaded[name]
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

    def top(self, buckets: np.ndarray, weights: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """About the `depth` live rows scoring highest against a sparse query, best first:
        `(rows, exact scores)` in `scores`' numbering (ties by row).

        Every live row is scored exactly when there are few; otherwise the two phases of the
        module's docstring pick the rows, whose scores are then exact.

        Args:
            buckets: `(q,)` the query's non-zero buckets; weights: `(q,)` its values there.
        """
        buckets, weights = np.asarray(buckets, np.int64), np.asarray(weights, np.float64)
        candidates = max(CANDIDATES, 4 * depth)
        starts = self._starts()
        if depth <= 0 or not self.segments:
            return np.zeros(0, np.int64), np.zeros(0)
        if self.live_count <= candidates:
            rows = np.concatenate([start + np.flatnonzero(~s.dead) for start, s in zip(starts, self.segments)])
        else:
            rows = self._first_phase(buckets, weights, starts, candidates)
        scores = self.score_rows(rows, buckets, weights)
        order = np.lexsort((rows, -scores))[:depth]
        return rows[order], scores[order]

    def score_rows(self, rows: np.ndarray, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Exact scores of `rows` (in `scores`' numbering) against a sparse query: `(len(rows),)` float64."""
        from .sparse_kernels import dot_rows

        rows = np.asarray(rows, np.int64)
        query = self._dense(buckets, weights)
        out = np.zeros(len(rows))
        starts = self._starts()
        which = np.searchsorted(starts, rows, side="right") - 1
        for k in np.unique(which).tolist():
            mask = which == k
            segment, got = self.segments[k], np.zeros(int(mask.sum()))
            dot_rows(segment.row_ptr, segment.buckets, segment.codes, rows[mask] - starts[k], query, got)
            out[mask] = got
        return out / VALUE_SCALE

    def scores(self, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Exact dot product of one sparse query with every row: `(rows,)` float64, -inf for dead rows.
        Reads every entry of the index (about a second per query at a million rows): for checks, not search."""
        from .sparse_kernels import dot_rows

        query = self._dense(buckets, weights)
        parts = []
        for segment in self.segments:
            got = np.zeros(segment.size)
            dot_rows(segment.row_ptr, segment.buckets, segment.codes, np.arange(segment.size), query, got)
            got /= VALUE_SCALE
            got[segment.dead] = -np.inf
            parts.append(got)
        return np.concatenate(parts) if parts else np.zeros(0)

    def _dense(self, buckets: np.ndarray, weights: np.ndarray) -> np.ndarray:
        query = np.zeros(self.width)
        query[np.asarray(buckets, np.int64)] = np.asarray(weights, np.float64)
        return query

    def _starts(self) -> np.ndarray:
        """Where each segment's rows start in `scores`' numbering."""
        return np.cumsum([0] + [s.size for s in self.segments[:-1]]).astype(np.int64)

    def _counts(self) -> np.ndarray:
        if self._class_counts is None:
            self._class_counts = sum((np.diff(s.class_ptr.astype(np.int64)) for s in self.segments),
                                     np.zeros(self.width * CLASSES, np.int64))
        return self._class_counts

    def _first_phase(self, buckets: np.ndarray, weights: np.ndarray, starts: np.ndarray, candidates: int) -> np.ndarray:
        """The `candidates` live rows (in `scores`' numbering) with the highest sums of the query's
        `SHARE` of postings with the highest impact (weight times class value)."""
        from .sparse_kernels import accumulate, at_least

        slots = (buckets[:, None] * CLASSES + np.arange(CLASSES)).reshape(-1)  # (q * CLASSES,) bucket-class slots
        impacts = (weights[:, None] * CLASS_VALUES).reshape(-1)
        order = np.argsort(-impacts, kind="stable")
        read = np.cumsum(self._counts()[slots][order])
        budget = max(MIN_POSTINGS, SHARE * read[-1]) if len(read) else 0
        chosen = order[: int(np.searchsorted(read, budget)) + 1]
        slots, impacts = slots[chosen], impacts[chosen]
        found: list[tuple[np.ndarray, np.ndarray]] = [None] * len(self.segments)  # (rows, partial sums) by segment

        def run(group: list[int]) -> None:
            # Each segment's sums fit in a core's cache (65,536 floats at most), and so does its selection.
            for k in group:
                segment = self.segments[k]
                partial = np.zeros(segment.size)
                accumulate(segment.postings, segment.class_ptr[slots].astype(np.int64),
                           segment.class_ptr[slots + 1].astype(np.int64), impacts, partial, 0)
                partial[segment.dead] = -np.inf
                best = at_least(partial, candidates, 1024)
                found[k] = (starts[k] + best, partial[best])

        every = list(range(len(self.segments)))
        if len(every) > 1 and len(chosen) and int(read[len(chosen) - 1]) > PARALLEL_POSTINGS:
            list(_pool().map(run, [every[0::2], every[1::2]]))  # two threads, alternate segments
        else:
            run(every)
        rows = np.concatenate([rows for rows, _ in found])
        partial = np.concatenate([sums for _, sums in found])
        if len(rows) > candidates:
            rows = rows[np.argpartition(-partial, candidates - 1)[:candidates]]
        return rows

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

        matrix = sparse.csr_matrix(vectors, dtype=np.float32)
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

    def touch(self, chroma_change: str | None | object = KEEP) -> None:
        """Move the generation on, rows unchanged: a writer calls it once the chunks' text has
        changed in Chroma, so what was stamped with an earlier generation (`keyword_tables`)
        reads as older than that text. `chroma_change`: Chroma's change token (None: it has none)
        that the rows now match; by default the one recorded stays."""
        kept = self.chroma_change
        if chroma_change is not KEEP:
            self.chroma_change = chroma_change
        try:
            self._commit()
        except BaseException:
            self.chroma_change = kept
            raise

    def touch_after_write(self, before: str | None, after: str) -> None:
        """`touch` after a write of ours moved Chroma's change token from `before` to `after`:
        the rows match `after` only if they matched `before` (read under this lock, so another
        process's commit since is seen)."""
        self.touch(after if before == self.chroma_change else KEEP)

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
        for part, array in segment_arrays(matrix, self.width).items():
            _write(self.folder / f"{name}.{part}.npy", lambda f, a=array: np.save(f, a))
        _write(self.folder / f"{name}.ids.json", lambda f: f.write(json.dumps(ids).encode()))
        if phonemes is not None:
            packed = zlib.compress(json.dumps(phonemes, ensure_ascii=False).encode(), 6)
            _write(self.folder / f"{name}.{PHONEMES}", lambda f: f.write(packed))
        arrays = (np.load(self.folder / f"{name}.{part}.npy", mmap_mode="r") for part in PARTS)
        self.segments.append(Segment(name, ids, *arrays, np.zeros(len(ids), bool), has_phonemes=phonemes is not None))
        segment = self.segments[-1]
        where = self._locations()
        for row, i in enumerate(ids):
            where[i] = (segment, row)
        self._flat = self._class_counts = None

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
        if self.chroma_change is not None:
            manifest["chroma_change"] = self.chroma_change
        temporary = self.folder / f"{MANIFEST}.tmp"
        _write(temporary, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
        os.replace(temporary, self.folder / MANIFEST)
        _sync_folder(self.folder)
        stat = (self.folder / MANIFEST).stat()
        self._stamp, self.exists = (stat.st_ino, stat.st_mtime_ns, stat.st_size), True
        self._flat = self._class_counts = None  # row numbering moves when segments go
        self._remove_strays()

    def _remove_strays(self) -> None:
        keep = {MANIFEST, LOCK}
        for segment in self.segments:
            keep |= {f"{segment.name}.{part}" for part in ("ids.json", *(f"{p}.npy" for p in PARTS))}
            keep |= {f"{segment.name}.{PHONEMES}"} if segment.has_phonemes else set()
            keep |= {segment.dead_file} if segment.dead_file else set()
        for path in self.folder.iterdir():
            if path.name not in keep and path.name.startswith(("s", MANIFEST, SCRATCH)):
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


def segment_arrays(matrix, width: int) -> dict[str, np.ndarray]:
    """A segment's arrays (`PARTS`) for `(rows, width)` vectors (scipy sparse or dense)."""
    from scipy import sparse

    from .sparse_kernels import invert

    if width > 65_536:
        raise ValueError(f"width {width}: buckets are stored as uint16")
    csr = sparse.csr_matrix(matrix, dtype=np.float32)
    csr.sort_indices()
    codes = quantise(csr.data)
    buckets = csr.indices.astype(np.uint16)
    row_ptr = csr.indptr.astype(np.int64)
    postings, class_ptr = invert(row_ptr, buckets, _CODE_CLASS[codes], CLASSES, width)
    return {"row_ptr": row_ptr, "buckets": buckets, "codes": codes, "postings": postings,
            "class_ptr": class_ptr.astype(np.uint32)}


def quantise(values: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] -> their uint16 codes (`VALUE_SCALE`)."""
    values = np.asarray(values, np.float32)
    return np.minimum(np.rint(values * np.float32(VALUE_SCALE)), 65535).astype(np.uint16)


# Each code's value class (class 0 holds the highest values; CLASS_EDGES descend).
_CODE_CLASS = np.searchsorted(-CLASS_EDGES, -np.arange(65536) / VALUE_SCALE, side="right").astype(np.uint8)


def _matrix(segment: Segment, width: int):
    """A segment's rows as a scipy CSR matrix `(rows, width)` (its stored values, so a rewrite keeps them)."""
    from scipy import sparse

    return sparse.csr_matrix((segment.codes.astype(np.float32) / np.float32(VALUE_SCALE), segment.buckets.astype(np.int64),
                              segment.row_ptr), shape=(segment.size, width))


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
