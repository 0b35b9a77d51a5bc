"""Index size, memory, search time and recall at 10k, 100k and 1M chunks, beside a plain 384-d Chroma collection; and ingest throughput.

    seal-rag bench scale [--sizes 10000 100000 1000000] [--real-minutes 20] [--docs FOLDER] [--plain-up-to 100000]
                         [--queries 100] [--db DIR [--resume]] [--quick]

One index, opened by `SealIndex.open` exactly as `seal-rag ingest` opens it (layout 2: the
384-d semantic half in Chroma with its default HNSW settings, the 8,192-bucket phonetic half
in the memory-mapped `PhoneticIndex` beside it), grows to each size in turn and is measured
there: the time of a k=10 `SealIndex.query` (median and p95 over `--queries` SQuAD questions
spoken by the bench voices and heard by the speech tower, after one warm-up query reported on
its own; a heard question's phonetic half has ~800 non-zero buckets, which the phonetic
index's search time follows, where a typed one has ~100), recall@10 of that
search against the exact joined cosine over every chunk (an answer tied with the exact 10th
counts: real text holds duplicate chunks), how much this process's resident
memory has grown since the index was empty (it also holds the plain collection), the memory a
fresh process gains by opening the index, building the keyword tables `seal-rag serve` builds
at start (their time and memory are also given apart) and answering the queries (serving:
anonymous memory, and pages of mapped files the kernel may drop and read again), and the disk of the index (its Chroma part and
its phonetic part) against a plain 384-d Chroma collection holding the same texts, metadata
and semantic vectors (what a MiniLM-only index costs; built up to `--plain-up-to` chunks, since
its own HNSW would double the time of a 1M build).

The index fills first with real chunks: SQuAD dev, PubMedQA, CovidQA and then MedQuAD
passages (about 42,700 chunks), then the documents under `--docs` if given, chunked as ingest
chunks them and embedded by the text tower, for up to `--real-minutes` of embedding and
upserting; that phase gives ingest throughput in chunks/s.
Past it, labelled synthetic chunks (ids `synthetic-N`) pad the index: a random unit semantic
half, and a real chunk's phonetic half with its buckets rotated by a random offset (so it keeps
the ~900 non-zero buckets and their values, but matches nothing in particular); their text
and metadata are a real chunk's, so disk and memory are those of a real index. Each row says
how many chunks are real.

Measured here (2 cores, 100k chunks): a chunk costs about 11.4 kB of disk, 6.8 kB of it vectors
and indexes (the phonetic index 4.8 kB: each of ~860 entries by row, a uint16 bucket and value,
and by bucket, a uint16 row; Chroma's 384-d half and its HNSW about 2 kB) and the rest text, metadata and Chroma's full-text
index (the phonemes ingest keeps for the keyword tables, about 0.4 of the text's bytes, count
with the text); adding 100k chunks takes about 12 minutes, 1M about 1.5 hours for Chroma's HNSW. Sizes
that would not fit in this machine's free memory or disk are skipped with a note. Full runs
are for people, not tests: `--quick` (2k and 5k chunks, 20 s of real ingest, 20 queries) is
the smoke run.

A run with `--db DIR` keeps the index there and its own files (the plain collection, the
semantic halves exact search reads, and where it stands, recorded after every batch) in
`DIR-run`; a run stopped on the way (killed, out of memory, a session's end) goes on with the
same command and `--resume`: sizes measured stay as they were, a batch written after the last
record is undone, and the rest is built and measured. A resumed process did not hold the index
while it was empty, so rows it measures give no building memory.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..atomic_file import atomic_path
from ..chunking import Chunk, chunk_section
from ..embedding import SpeechEmbedding
from ..errors import DocumentError
from ..ingest import EMBED_BATCH, documents_in, embed_chunks
from ..phonetic import phonemize
from .. import keyword_tables
from ..phonetic_index import PHONEMES
from ..loaders import Section, read_document
from ..progress import progress_bar
from ..store import SealIndex
from .data import add_data_argument, data_path, data_root
from .heldout import TEXT_SETS, load_set, set_folder
from .report import model_fields, pyplot, write_report

RANDOM_BATCH = 4096  # synthetic chunks made and upserted together (SealIndex.upsert splits further)
# Measured at D=384 (5.7 KB of disk, 2 KB of RSS a vector) and split into what scales with D and what does not:
# disk holds each float32 vector twice (SQLite and the HNSW file), memory once (the HNSW graph).
DISK_BYTES_PER_VECTOR = (2 * 4, 2700)  # (per dimension, fixed): text, metadata, links
MEMORY_BYTES_PER_VECTOR = (4, 500)
# The phonetic index: ~900 entries of 6 bytes a chunk on disk; in memory its ids (the pages of
# its memory-mapped arrays are the kernel's cache, given back under pressure).
PHONETIC_DISK_BYTES, PHONETIC_MEMORY_BYTES = 5_500, 300
QUICK_SIZES = [2000, 5000]
PLAIN_COLLECTION = "plain_384"


@dataclass
class Fill:
    """What the collection holds so far and what adding it cost."""

    real: int = 0
    random: int = 0
    real_seconds: float = 0.0  # embedding + upsert of the real chunks
    random_seconds: float = 0.0  # making + upserting the random ones
    real_exhausted: bool = False  # every real chunk went in before the budget ran out

    @property
    def total(self) -> int:
        return self.real + self.random


def real_chunks(root: Path, docs: Path | None = None) -> Iterator[Chunk]:
    """Chunks of real passages, as ingest cuts them: the held-out text sets, then MedQuAD, then the documents under `docs`."""
    for name in TEXT_SETS:
        dataset = load_set(name, root)
        for passage_id, text in zip(dataset.passage_ids, dataset.passages):
            yield from chunk_section(Section(f"{name}/{passage_id}", name, text))
    with data_path(root, "qa", "medquad", "passages.jsonl").open() as lines:
        for line in lines:
            passage = json.loads(line)
            yield from chunk_section(Section(f"medquad/{passage['passage_id']}", "medquad", passage["text"]))
    if docs is not None:
        yield from document_chunks(docs)


def document_chunks(folder: Path) -> Iterator[Chunk]:
    """The chunks `seal-rag ingest FOLDER` would make of the documents under `folder`."""
    try:
        scan = documents_in(folder)
    except DocumentError as error:
        raise SystemExit(str(error)) from None
    for path in scan.files:
        try:
            sections, _ = read_document(path)
        except (ValueError, OSError):
            continue
        for section in sections:
            yield from chunk_section(section)


def synthetic_vectors(model, pool_vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`(count, dim)` unit vectors: random semantic halves; real phonetic halves with their buckets rotated.

    A random dense phonetic half would have 8,192 non-zero buckets instead of ~900 and cost the
    phonetic index nine times a real one; rotating a real one keeps its sparsity and values.
    """
    semantic_dim = model.config.dim if getattr(model, "phonetic", None) is not None else model.dim
    semantic = rng.standard_normal((count, semantic_dim)).astype(np.float32)
    semantic /= np.linalg.norm(semantic, axis=1, keepdims=True)
    if semantic_dim == model.dim:
        return semantic
    w = model.config.phonetic_weight
    sources = pool_vectors[rng.integers(len(pool_vectors), size=count), semantic_dim:]  # (count, buckets), scaled by sqrt(w)
    shifts = rng.integers(sources.shape[1], size=count)
    phonetic = np.stack([np.roll(row, shift) for row, shift in zip(sources, shifts)])
    return np.concatenate([semantic * np.float32(np.sqrt(1 - w)), phonetic], axis=1)


def grow(index: SealIndex, model, fill: Fill, size: int, chunks: Iterator[Chunk], pool: list[Chunk],
         budget_seconds: float, rng: np.random.Generator, pool_vectors: np.ndarray | None = None,
         plain=None, semantic_file=None, written: list[str] | None = None, on_batch: Callable[[], None] | None = None) -> None:
    """Add chunks until the index holds `size`: real chunks while the budget lasts, then synthetic ones.

    `plain` (a 384-d Chroma collection) gets the same chunks' semantic halves, and `semantic_file`
    their unit semantic halves in order (for exact search); neither counts in the ingest time.
    `on_batch()` is called once each batch is in all of them (a run records its progress there).
    """
    pool_phonemes: dict[str, str] = {}
    with progress_bar(f"Adding chunks up to {size:,}", size - fill.total) as advance:
        while fill.total < size:
            room = size - fill.total
            start = time.perf_counter()
            batch = list(islice(chunks, min(EMBED_BATCH, room))) if fill.real_seconds < budget_seconds else []
            if batch:
                ids = [f"real-{fill.real + i}" for i in range(len(batch))]
                vectors, phonemes = embed_chunks(model, [c.text for c in batch])  # as ingest stores them
                index.upsert(ids, vectors, [c.text for c in batch], [c.metadata for c in batch], phonemes)
                fill.real += len(batch)
                fill.real_seconds += time.perf_counter() - start
            else:
                fill.real_exhausted = fill.real_exhausted or fill.real_seconds < budget_seconds
                count = min(RANDOM_BATCH, room)
                vectors = synthetic_vectors(model, pool_vectors if pool_vectors is not None else model.embed_texts(
                    [c.text for c in pool]), count, rng)
                batch = [pool[(fill.random + i) % len(pool)] for i in range(count)]
                ids = [f"synthetic-{fill.random + i}" for i in range(count)]
                if index.phonetic is not None and not pool_phonemes:  # a synthetic row copies a pool chunk's text
                    pool_phonemes.update((c.text, phonemize(c.text)) for c in pool)
                phonemes = [pool_phonemes[c.text] for c in batch] if pool_phonemes else None
                index.upsert(ids, vectors, [c.text for c in batch], [c.metadata for c in batch], phonemes)
                fill.random += count
                fill.random_seconds += time.perf_counter() - start
            semantic = index.split.halves(vectors)[0] if index.split else np.asarray(vectors, np.float32)
            if plain is not None:
                plain.upsert(ids=ids, embeddings=semantic, documents=[c.text for c in batch], metadatas=[c.metadata for c in batch])
            if semantic_file is not None:
                semantic_file.write(np.ascontiguousarray(semantic, np.float32).tobytes())
                written += ids
            if on_batch is not None:
                on_batch()
            advance(len(batch))


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; ru_maxrss only gives the peak)."""
    # Hand freed heap back to the OS first: otherwise torch's batches of varying length leave
    # +-100 MB of allocator slack that would read as index growth.
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        raise SystemExit("seal-rag bench scale reads memory from /proc/self/statm: run it on Linux") from None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_parts_mb() -> dict[str, float]:
    """This process's resident memory in MB: anonymous (heap, Chroma's HNSW) and file-backed (mapped files,
    libraries); the kernel can drop the latter's pages under pressure and read them again."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return {"anon": fields["RssAnon"], "file": fields["RssFile"]}


def serve_probe(db: str, queries_path: str, stamp_path: str, k: int) -> None:
    """Run in a fresh process by `serving_memory`: open the index, build its keyword tables, answer
    the queries, print memory growth as JSON.

    No model is loaded (the queries come embedded), so the growth is the index's alone, with the
    keyword tables `seal-rag serve` builds from it at start (timed, and their memory given apart).
    """
    from types import SimpleNamespace

    from ..retrieve import index_keyword_reranker

    stamp = json.loads(Path(stamp_path).read_text())
    model = SimpleNamespace(name=stamp["name"], space_fingerprint=stamp["space"], dim=stamp["dim"], phonetic=True,
                            config=SimpleNamespace(**stamp["config"]))
    queries = np.load(queries_path)
    before = rss_parts_mb()
    index = SealIndex.open(model, db)
    index.phonetic.warm()  # as `seal-rag serve` opens it
    kept = index.phonetic.folder / keyword_tables.FILE
    kept.unlink(missing_ok=True)  # an earlier size's: built here
    opened, start = rss_parts_mb(), time.perf_counter()
    keywords = index_keyword_reranker(model, index)  # built and written beside the index; held, as serve holds it
    seconds, built = time.perf_counter() - start, rss_parts_mb()
    for vector in queries:
        index.query(vector, k)
    after = rss_parts_mb()
    del keywords
    # What a later `ask` or `serve` start spends on them: read back from disk, not from the page cache.
    handle = os.open(kept, os.O_RDONLY)
    os.fsync(handle)  # written pages cannot be dropped until they are on disk
    os.posix_fadvise(handle, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(handle)
    start = time.perf_counter()
    if keyword_tables.load(index.phonetic.folder, keyword_tables.stamp(index)) is None:
        raise SystemExit(f"the keyword tables just kept in {kept} could not be read back")
    load_seconds = time.perf_counter() - start
    print(json.dumps({**{f"serving_rss_{part}_mb": after[part] - before[part] for part in after},
                      "keyword_tables_seconds": seconds, "keyword_tables_load_seconds": load_seconds,
                      "keyword_tables_anon_mb": built["anon"] - opened["anon"]}))


def serving_memory(db: Path, model, queries: np.ndarray, k: int, scratch: Path) -> dict:
    """Resident memory a fresh process gains by opening the index and answering `queries`, anonymous and file-backed."""
    import subprocess

    np.save(scratch / "queries.npy", queries)
    config = {"dim": model.config.dim, "phonetic_dim": model.config.phonetic_dim, "phonetic_weight": model.config.phonetic_weight}
    (scratch / "stamp.json").write_text(json.dumps({"name": model.name, "space": model.space_fingerprint, "dim": model.dim,
                                                    "config": config}))
    code = (f"from seal_rag.bench.scale import serve_probe; serve_probe({str(db)!r}, {str(scratch / 'queries.npy')!r}, "
            f"{str(scratch / 'stamp.json')!r}, {k})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the serving probe failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Chroma's SQLite tables (and their indexes) that hold chunk text, metadata and the full-text
# index over the text: what the scale issue counts apart from "vectors and indexes".
TEXT_TABLES = ("embedding_metadata", "embedding_fulltext_search", "sqlite_autoindex_embedding_metadata")


def text_and_metadata_mb(db: Path) -> float:
    """MB of Chroma's SQLite file in the tables of text, metadata and full-text search (SQLite's
    dbstat); the rest of the index (HNSW files, vectors and Chroma's write-ahead log in SQLite,
    the phonetic index, free pages) counts as vectors and indexes. NaN without dbstat."""
    import sqlite3

    connection = sqlite3.connect(f"file:{db / 'chroma.sqlite3'}?mode=ro", uri=True)
    try:
        sizes = connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.OperationalError:  # an SQLite built without the dbstat table
        return float("nan")
    finally:
        connection.close()
    return sum(size for name, size in sizes if name.startswith(TEXT_TABLES)) / 2**20


def disk_mb(folder: Path, leave_out: Path | None = None) -> float:
    files = (f for f in folder.rglob("*") if f.is_file() and not (leave_out and f.is_relative_to(leave_out)))
    return sum(f.stat().st_size for f in files) / 2**20


def recall_at_k(index: SealIndex, queries: np.ndarray, k: int, semantic_path: Path, written: list[str]) -> float:
    """Mean share of `SealIndex.query`'s top k that belong in the exact joined top k (every chunk scored).

    The exact scores: the semantic halves written in order as the index grew (`written` names
    them), times the query's, plus the phonetic index's exact scores of every row (`PhoneticIndex.scores`,
    checked against dense products in tests/test_phonetic_index.py). Scored as `found_share` does.
    """
    semantic = np.memmap(semantic_path, np.float32, "r", shape=(len(written), index.split.semantic_dim))
    halves = [index.split.halves(vector[None]) for vector in queries]
    semantic_queries = np.stack([h[0][0] for h in halves])  # (queries, 384)
    semantic_scores = np.concatenate([semantic[start : start + 65_536] @ semantic_queries.T
                                      for start in range(0, len(written), 65_536)])  # (chunks, queries)
    rows = index.phonetic.rows_of(written)
    position = {chunk: j for j, chunk in enumerate(written)}
    w, found = index.split.weight, []
    for column, (vector, (_, phonetic_query)) in enumerate(zip(queries, halves)):
        buckets = np.flatnonzero(phonetic_query[0])
        phonetic = index.phonetic.scores(buckets, phonetic_query[0][buckets])[rows]
        exact = (1 - w) * semantic_scores[:, column] + w * phonetic  # (chunks,) in write order
        found.append(found_share(exact, [position[h.id] for h in index.query(vector, k)], k))
    return float(np.mean(found))


RECALL_TOLERANCE = 1e-6  # float32 scoring of the same vectors differs by less


def found_share(exact: np.ndarray, returned: list[int], k: int) -> float:
    """Share of the k answers a search should give that `returned` (positions in `exact`) gives: an
    answer counts if its exact score reaches the k-th best exact score, as ann-benchmarks counts
    it. Real text holds duplicate chunks (a licence, a man page's boilerplate), whose scores tie,
    and exact search's own top k picks among ties arbitrarily; any of them is a right answer."""
    kth = np.partition(exact, len(exact) - k)[len(exact) - k] if len(exact) >= k else -np.inf
    return sum(bool(exact[j] >= kth - RECALL_TOLERANCE) for j in returned[:k]) / min(k, len(exact))


def query_times(index: SealIndex, queries: np.ndarray, k: int) -> dict:
    """Milliseconds per k-NN query: the first after the writes on its own, then median and p95 of the rest,
    with the phonetic postings mapped in first as `seal-rag serve` maps them (`PhoneticIndex.warm`)."""
    index.phonetic.warm()
    times = []
    for vector in queries:
        start = time.perf_counter()
        index.query(vector, k)
        times.append((time.perf_counter() - start) * 1000)
    return {"first_query_ms": times[0], "median_ms": float(np.median(times[1:])), "p95_ms": float(np.percentile(times[1:], 95))}


def measure_sizes(model, root: Path, db: Path, sizes: list[int], budget_seconds: float, queries: np.ndarray, k: int,
                  seed: int, measured: Callable[[Fill, list[dict]], None], run: Path,
                  docs: Path | None = None, plain_up_to: int | None = None, resume: bool = False) -> None:
    """Grow one index in `db` through `sizes` (ascending), measure it at each, and pass the rows so far to `measured`.

    The run's own files go to `run`: the plain 384-d collection (it follows the index only up to
    `plain_up_to` chunks; default: every size), the semantic halves for exact search, and its
    progress after every batch (`PROGRESS`). `resume` continues the run those files describe.
    """
    import chromadb

    pool = list(islice(real_chunks(root, docs), EMBED_BATCH))  # texts and metadata that synthetic rows copy
    pool_vectors = model.embed_texts([c.text for c in pool])  # also the warm-up at chunk length, so its buffers sit in the baseline
    index = SealIndex.open(model, db, create=True)
    if index.phonetic is None:
        raise SystemExit("seal-rag bench scale measures the two-part index of a model with a phonetic half: use the shipped model")
    plain_dir, semantic_path, progress = run / "plain-384", run / "semantic.f32", run / PROGRESS
    if not resume:
        if index.count():
            raise SystemExit(f"{db} already holds {index.count()} chunks: pass an empty or new --db, or --resume the run that made it")
        for leftover in (progress, semantic_path):  # of an earlier run whose index is gone
            leftover.unlink(missing_ok=True)
        shutil.rmtree(plain_dir, ignore_errors=True)
    plain = chromadb.PersistentClient(path=str(plain_dir)).get_or_create_collection(
        PLAIN_COLLECTION, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    settings = {"seed": seed, "docs": str(docs.resolve()) if docs else None, "budget_seconds": budget_seconds,
                "plain_up_to": plain_up_to, "queries": len(queries), "k": k}
    fill, results = resumed(progress, index, plain, semantic_path, settings) if resume else (Fill(), [])
    chunks = islice(real_chunks(root, docs), fill.real, None)
    # Real chunks come first and synthetic ones after: once the budget is spent or the real text runs
    # out, no real chunk follows (a resumed run keeps the budget and the documents), so this is the order.
    written = [f"real-{i}" for i in range(fill.real)] + [f"synthetic-{i}" for i in range(fill.random)]
    # A resumed run draws its synthetic rows from another stream: they are random either way.
    rng = np.random.default_rng([seed, fill.total] if resume else seed)
    baseline_mb = None if resume else rss_mb()  # a resumed process never held the index empty

    def record() -> None:
        semantic_file.flush()
        save_progress(progress, fill, results, settings)

    reported = False
    with semantic_path.open("ab") as semantic_file:
        for size in sizes:
            if any(r["size"] == size for r in results):
                continue  # measured before the run was resumed
            if size < fill.total:
                print(f"skipping {size:,} chunks: the resumed run's index already holds {fill.total:,}", file=sys.stderr)
                continue
            with_plain = plain_up_to is None or size <= plain_up_to
            grow(index, model, fill, size, chunks, pool, budget_seconds, rng, pool_vectors, plain if with_plain else None,
                 semantic_file, written, record)
            record()
            rate = fill.real / fill.real_seconds if fill.real_seconds else None  # embed + upsert, real chunks so far
            row = {"size": size, "real": fill.real, "random": fill.random, "ingest_chunks_per_second": rate,
                   "add_seconds": fill.real_seconds + fill.random_seconds, **query_times(index, queries, k),
                   "rss_growth_mb": rss_mb() - baseline_mb if baseline_mb is not None else None}
            row.update(serving_memory(db, model, queries, k, run))  # first: it keeps the keyword tables on disk
            phonetic_dir = index.phonetic.folder.parent
            # The phonemes kept for the keyword tables are the text in espeak-ng's alphabet: counted with the text.
            # The keyword tables are an index over the words: counted with vectors and indexes, apart from the phonetic half.
            phonemes_mb = sum(f.stat().st_size for f in phonetic_dir.rglob(f"*.{PHONEMES}")) / 2**20
            keywords_mb = sum(f.stat().st_size for f in phonetic_dir.rglob(keyword_tables.FILE)) / 2**20
            row.update({"disk_mb": disk_mb(db), "chroma_disk_mb": disk_mb(db, leave_out=phonetic_dir),
                        "phonetic_disk_mb": disk_mb(phonetic_dir) - phonemes_mb - keywords_mb, "phonemes_disk_mb": phonemes_mb,
                        "keyword_tables_disk_mb": keywords_mb, "plain_disk_mb": disk_mb(plain_dir) if with_plain else None})
            row["disk_ratio_to_plain"] = row["disk_mb"] / row["plain_disk_mb"] if with_plain else None
            row["text_metadata_disk_mb"] = text_and_metadata_mb(db) + phonemes_mb
            row["vectors_indexes_disk_mb"] = row["disk_mb"] - row["text_metadata_disk_mb"]
            row["recall_at_k"] = recall_at_k(index, queries, k, semantic_path, written)
            results.append(row)
            record()
            per_chunk = 2**20 / size / 1000
            print(f"{size:>9,} chunks ({fill.real:,} real): search median {row['median_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms, "
                  f"recall@{k} {row['recall_at_k']:.3f}; RSS {building(row)} building, serving +{row['serving_rss_anon_mb']:.0f} MB "
                  f"anonymous + {row['serving_rss_file_mb']:.0f} MB mapped (keyword tables {row['keyword_tables_anon_mb']:.0f} MB, "
                  f"built in {row['keyword_tables_seconds']:.1f} s, read back in {row['keyword_tables_load_seconds']:.1f} s); disk {row['disk_mb'] * per_chunk:.1f} kB "
                  f"a chunk (vectors and indexes {row['vectors_indexes_disk_mb'] * per_chunk:.1f}, of which phonetic "
                  f"{row['phonetic_disk_mb'] * per_chunk:.1f})"
                  + (f", {row['disk_ratio_to_plain']:.2f} x plain 384-d" if with_plain else ""),
                  flush=True)
            measured(fill, results)  # a report per size: a run stopped on the way to 1M keeps the smaller sizes
            reported = True
    if results and not reported:  # resumed with every size measured: its report may not have been written
        measured(fill, results)


PROGRESS = "progress.json"  # in a run's folder: where it stands, rewritten after every batch


def building(row: dict) -> str:
    """A row's memory growth while building, or why it has none (a resumed process never held the index empty)."""
    return f"+{row['rss_growth_mb']:.0f} MB" if row["rss_growth_mb"] is not None else "(resumed: not measured)"


def save_progress(path: Path, fill: Fill, results: list[dict], settings: dict) -> None:
    with atomic_path(path) as partial:  # a run killed while writing leaves the last whole record
        partial.write_text(json.dumps({"fill": asdict(fill), "results": results, "settings": settings}))


def resumed(progress: Path, index: SealIndex, plain, semantic_path: Path, settings: dict) -> tuple[Fill, list[dict]]:
    """Where a stopped run stands (its `PROGRESS`), with what it wrote after its last record undone:
    the chunks of an unrecorded batch leave the index and the plain collection, and their semantic halves the file."""
    try:
        state = json.loads(progress.read_text())
        fill, results = Fill(**state["fill"]), list(state["results"])
    except (OSError, ValueError, TypeError, KeyError):
        raise SystemExit(f"no run to resume in {progress.parent}: start one with the same --db and without --resume") from None
    if state.get("settings") != settings:
        was = ", ".join(f"{name} {value}" for name, value in state.get("settings", {}).items())
        raise SystemExit(f"the run in {progress.parent} was made with {was}: resume it with the same options")
    # Chunks of a batch written after the last record (the phonetic index first, then Chroma, in pieces).
    extra = [f"real-{i}" for i in range(fill.real, fill.real + EMBED_BATCH)] + [
        f"synthetic-{i}" for i in range(fill.random, fill.random + RANDOM_BATCH)]
    index.delete(extra)
    plain.delete(ids=extra)
    if index.count() != fill.total:
        raise SystemExit(f"{index.count():,} chunks in the index but {fill.total:,} in the run's record: start a new run")
    recorded = fill.total * index.split.semantic_dim * 4
    if not semantic_path.is_file() or semantic_path.stat().st_size < recorded:
        raise SystemExit(f"{semantic_path} holds fewer semantic halves than the run recorded: start a new run")
    with semantic_path.open("ab") as semantic_file:
        semantic_file.truncate(recorded)
    return fill, results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--real-minutes", type=float, default=20.0, help="budget for embedding real chunks")
    parser.add_argument("--docs", type=Path, default=None,
                        help="more real text: after the data's passages, the documents under this folder, read and cut as `seal-rag ingest` does")
    parser.add_argument("--plain-up-to", type=int, default=100_000, metavar="N",
                        help="build the plain 384-d collection only up to N chunks (its HNSW would double a 1M build)")
    parser.add_argument("--queries", type=int, default=100, help="queries per size; the first, a warm-up, is reported apart")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--db", type=Path, default=None,
                        help="build the index here and keep it, and the run's own files in DB-run (default: a temp dir)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the stopped run kept in --db and DB-run: its sizes measured so far stay, the rest are built and measured")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2k and 5k vectors, 20 s of real ingest, 20 queries: a smoke run")
    add_data_argument(parser)
    args = parser.parse_args(argv)
    pyplot()  # before hours of work, not after
    if args.quick:
        args.sizes, args.real_minutes, args.queries = QUICK_SIZES, 20 / 60, 20
    sizes = sorted(set(args.sizes))
    if sizes[0] <= 0 or args.queries < 2 or args.k <= 0:
        raise SystemExit("--sizes, -k and --queries must be positive, with at least 2 queries")
    root = data_root(args.data)
    for name in TEXT_SETS:  # read after the model loads: check first
        set_folder(name, root)
    data_path(root, "qa", "medquad")

    if args.resume and args.db is None:
        raise SystemExit("--resume continues the run kept with --db: pass the same --db")
    with tempfile.TemporaryDirectory(prefix="seal-scale-") as scratch:
        db = args.db or Path(scratch) / "db"
        run = db.with_name(db.name + "-run") if args.db else Path(scratch)
        if args.resume and not (run / PROGRESS).is_file():
            raise SystemExit(f"no run to resume in {run}: start one with the same --db and without --resume")
        db.mkdir(parents=True, exist_ok=True)
        run.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SpeechEmbedding.from_pretrained()
        free_disk = shutil.disk_usage(db).free
        if args.resume:  # the run's index and files already hold part of what its sizes need
            free_disk += int((disk_mb(db) + disk_mb(run)) * 2**20)
        fitting, skipped = fitting_sizes(sizes, model.config.dim, free_disk, available_memory_bytes(), db,
                                         sparse=(PHONETIC_DISK_BYTES, PHONETIC_MEMORY_BYTES))
        queries = spoken_query_vectors(model, root, args.queries, args.seed)
        measure_sizes(model, root, db, fitting, args.real_minutes * 60, queries, args.k, args.seed,
                      lambda fill, results: report(args, sizes, skipped, model, len(queries), fill, results), run,
                      args.docs, args.plain_up_to, args.resume)


def spoken_query_vectors(model, root: Path, count: int, seed: int) -> np.ndarray:
    """`(count, dim)` vectors of SQuAD holdout questions spoken by the bench voices (as `bench accuracy`
    speaks them) and heard as `ask --no-keywords` hears them (the speech tower's vector). Spoken, not
    typed: a heard question's soft phonetic half has about 800 non-zero buckets, a typed one's about
    100, and search time follows them."""
    from .accuracy import spoken_queries

    dataset = load_set("squad-holdout", root)
    picked = np.random.default_rng(seed).choice(len(dataset.queries), min(count, len(dataset.queries)), replace=False)
    dataset.queries = [dataset.queries[i] for i in picked]
    clips, _ = spoken_queries(dataset, seed)
    return np.concatenate([model.embed_clips([clip]) for clip in clips])


def available_memory_bytes() -> int:
    """What the kernel says new allocations can still get (MemAvailable), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    raise SystemExit("seal-rag bench scale reads free memory from /proc/meminfo: run it on Linux")


def fitting_sizes(sizes: list[int], dim: int, free_disk: int, free_memory: int, db: Path,
                  sparse: tuple[int, int] = (0, 0)) -> tuple[list[int], list[dict]]:
    """The sizes whose estimated disk and memory fit, and a note for each one that does not.

    `dim` is the width Chroma holds; `sparse` the (disk, memory) bytes a chunk's phonetic index entry adds.
    """
    def need(per_vector: tuple[int, int], size: int) -> int:
        return size * (per_vector[0] * dim + per_vector[1])

    kept, skipped = [], []
    for size in sizes:
        disk, memory = need(DISK_BYTES_PER_VECTOR, size), need(MEMORY_BYTES_PER_VECTOR, size) + size * sparse[1]
        if any(sparse):  # the phonetic index, and the plain 384-d collection measured beside it
            disk += size * sparse[0] + need(DISK_BYTES_PER_VECTOR, size)
        if disk > free_disk or memory > free_memory:
            skipped.append({"size": size, "disk_gb": disk / 1e9, "memory_gb": memory / 1e9})
            print(f"skipping {size:,} vectors of D={dim:,}: they need about {disk / 1e9:.1f} GB of disk ({free_disk / 1e9:.1f} free "
                  f"in {db}) and {memory / 1e9:.1f} GB of memory ({free_memory / 1e9:.1f} available)", file=sys.stderr)
        else:
            kept.append(size)
    if not kept:
        raise SystemExit(f"none of --sizes fits this machine at D={dim:,} (see above): pass smaller --sizes, or --db on a bigger disk")
    return kept, skipped


def report(args, sizes: list[int], skipped: list[dict], model, queries: int, fill: Fill, results: list[dict]) -> None:
    """The JSON, the Markdown table and the plot for the sizes measured so far."""
    ingest = {**asdict(fill), "chunks_per_second": results[-1]["ingest_chunks_per_second"], "budget_seconds": args.real_minutes * 60}
    payload = {"benchmark": "scale", "dim": model.dim, "k": args.k, "queries": queries, "timed_queries": queries - 1,
               "query_kind": "spoken (bench voices)",
               **model_fields(model), "quick": args.quick, "sizes_planned": sizes, "sizes_skipped": skipped, "ingest": ingest,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "results": results}
    def per_chunk(r: dict, key: str) -> str:
        return f"{r[key] * 2**20 / r['size'] / 1000:.1f}"

    rows = [[f"{r['size']:,}", f"{r['real']:,}", f"{r['random']:,}", f"{r['median_ms']:.2f}", f"{r['p95_ms']:.2f}",
             f"{r['first_query_ms']:.1f}", f"{r['recall_at_k']:.3f}",
             f"{r['rss_growth_mb']:.0f}" if r["rss_growth_mb"] is not None else "- (resumed)",
             f"{r['serving_rss_anon_mb']:.0f} + {r['serving_rss_file_mb']:.0f}",
             f"{r['keyword_tables_anon_mb']:.0f} MB; built {r['keyword_tables_seconds']:.1f} s, read {r['keyword_tables_load_seconds']:.1f} s"
             if "keyword_tables_load_seconds" in r else "-",
             f"{r['disk_mb']:.0f}",
             per_chunk(r, "disk_mb"), per_chunk(r, "vectors_indexes_disk_mb") if "vectors_indexes_disk_mb" in r else "-",
             per_chunk(r, "phonetic_disk_mb"), per_chunk(r, "plain_disk_mb") if r["plain_disk_mb"] else "-",
             f"{r['disk_ratio_to_plain']:.2f}" if r["disk_ratio_to_plain"] else "-",
             f"{r['add_seconds']:.0f}", f"{r['ingest_chunks_per_second']:.1f}" if r["ingest_chunks_per_second"] else "-"]
            for r in results]
    name = "scale" + ("-quick" if args.quick else "")
    write_report(args.out, name, payload, ["chunks", "real", "synthetic", "search median ms", "p95 ms", "first search ms",
                                           f"recall@{args.k} vs exact", "RSS growth MB (builder, with the plain collection)",
                                           "serving RSS MB (anonymous + mapped)", "of which keyword tables (built and written at the first start, read from disk at the next)", "disk MB", "disk kB/chunk",
                                           "vectors + indexes kB/chunk (text, metadata apart)", "of which phonetic kB/chunk", "plain 384-d kB/chunk", "disk / plain",
                                           "add time s (cumulative)", "ingest chunks/s (real)"], rows)
    print(f"ingest: {fill.real:,} real chunks in {fill.real_seconds:.0f} s = {ingest['chunks_per_second'] or 0:.1f} chunks/s (embed + upsert)")
    plot(results, args.out / f"{name}.png")


def plot(results: list[dict], path: Path) -> None:
    """Query median and p95 against collection size (log scale)."""
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(7, 4))
    sizes = [r["size"] for r in results]
    for key, label in (("median_ms", "median"), ("p95_ms", "p95")):
        axis.plot(sizes, [r[key] for r in results], marker="o", label=label)
    for r in results:
        axis.annotate(f"{r['real']:,} real", (r["size"], r["median_ms"]), textcoords="offset points", xytext=(4, -12), fontsize="small")
    axis.set(xscale="log", ylim=(0, None), xlabel="chunks in the index", ylabel="top-10 search time (ms)",
             title="Joined search time (Chroma semantic + phonetic index) against index size")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
