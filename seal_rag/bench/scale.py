"""Chroma query time, memory and disk at 10k, 100k and 1M vectors of the shipped model's width, and ingest throughput.

    seal-rag bench scale [--sizes 10000 100000 1000000] [--real-minutes 20] [--queries 100] [--quick]

One persistent collection, opened by `SealIndex.open` exactly as `seal-rag ingest` opens it
(cosine space, Chroma's default HNSW settings), grows to each size in turn and is measured
there: the time of a k=10 `SealIndex.query` (median and p95 over `--queries` SQuAD questions
embedded by the text tower, after one warm-up query that is reported on its own), how much
this process's resident memory has grown since the collection was empty, and the size of the
directory on disk.

The collection fills first with real text vectors: SQuAD dev, PubMedQA, CovidQA and then
MedQuAD passages, chunked as ingest chunks them and embedded by the text tower, for up to
`--real-minutes` of embedding and upserting (the issue asks for "real text vectors up to what
ingest can produce in 20 minutes"); that phase gives ingest throughput in chunks/s. Past it,
random unit vectors pad the collection; each row says how many of its vectors are real and how
many random. Random rows carry a copy of a real chunk's text and metadata, so the disk and
memory they cost are those of a real index.

Cost grows with the vectors' width D. Measured at D=384 (the semantic half alone): 5.7 KB of
disk a vector (Chroma keeps each vector twice, in SQLite and in the HNSW file, plus text and
links) and 2 KB of memory (the HNSW graph is held in RAM); adding 100k random vectors took 3.8
minutes on this 2-core machine and 1M about 1.5 hours. The shipped model's vectors are 8,576
wide (semantic and phonetic halves), so a vector costs about 71 KB of disk and 35 KB of memory:
1M would need about 35 GB of RAM. Sizes that would not fit in this machine's free memory or
disk are skipped with a note, and the report lists them. Full runs are for people, not tests:
`--quick` (2k and 5k vectors, 20 s of real ingest, 20 queries) is the smoke run.
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
from itertools import chain, islice
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..chunking import Chunk, chunk_section
from ..embedding import SpeechEmbedding
from ..ingest import EMBED_BATCH
from ..loaders import Section
from ..progress import progress_bar
from ..store import SealIndex
from .data import add_data_argument, data_path, data_root
from .heldout import TEXT_SETS, load_set, set_folder
from .report import model_fields, pyplot, write_report

RANDOM_BATCH = 4096  # random vectors made and upserted together (SealIndex.upsert splits further)
# Measured at D=384 (5.7 KB of disk, 2 KB of RSS a vector) and split into what scales with D and what does not:
# disk holds each float32 vector twice (SQLite and the HNSW file), memory once (the HNSW graph).
DISK_BYTES_PER_VECTOR = (2 * 4, 2700)  # (per dimension, fixed): text, metadata, links
MEMORY_BYTES_PER_VECTOR = (4, 500)
QUICK_SIZES = [2000, 5000]


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


def real_chunks(root: Path) -> Iterator[Chunk]:
    """Chunks of real passages, as ingest cuts them: the held-out text sets, then MedQuAD."""
    for name in TEXT_SETS:
        dataset = load_set(name, root)
        for passage_id, text in zip(dataset.passage_ids, dataset.passages):
            yield from chunk_section(Section(f"{name}/{passage_id}", name, text))
    with data_path(root, "qa", "medquad", "passages.jsonl").open() as lines:
        for line in lines:
            passage = json.loads(line)
            yield from chunk_section(Section(f"medquad/{passage['passage_id']}", "medquad", passage["text"]))


def grow(index: SealIndex, model, fill: Fill, size: int, chunks: Iterator[Chunk], pool: list[Chunk],
         budget_seconds: float, rng: np.random.Generator) -> None:
    """Add vectors until the collection holds `size`: real chunks while the budget lasts, then random."""
    with progress_bar(f"Adding vectors up to {size:,}", size - fill.total) as advance:
        while fill.total < size:
            room = size - fill.total
            start = time.perf_counter()
            batch = list(islice(chunks, min(EMBED_BATCH, room))) if fill.real_seconds < budget_seconds else []
            if batch:
                ids = [f"real-{fill.real + i}" for i in range(len(batch))]
                index.upsert(ids, model.embed_texts([c.text for c in batch]), [c.text for c in batch], [c.metadata for c in batch])
                fill.real += len(batch)
                fill.real_seconds += time.perf_counter() - start
                advance(len(batch))
            else:
                fill.real_exhausted = fill.real_exhausted or fill.real_seconds < budget_seconds
                count = min(RANDOM_BATCH, room)
                vectors = rng.standard_normal((count, model.dim)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # (count, dim), unit norm like the towers'
                copies = [pool[(fill.random + i) % len(pool)] for i in range(count)]
                index.upsert([f"random-{fill.random + i}" for i in range(count)], vectors,
                             [c.text for c in copies], [c.metadata for c in copies])
                fill.random += count
                fill.random_seconds += time.perf_counter() - start
                advance(count)


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


def disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def query_times(index: SealIndex, queries: np.ndarray, k: int) -> dict:
    """Milliseconds per k-NN query: the first after the writes on its own, then median and p95 of the rest."""
    times = []
    for vector in queries:
        start = time.perf_counter()
        index.query(vector, k)
        times.append((time.perf_counter() - start) * 1000)
    return {"first_query_ms": times[0], "median_ms": float(np.median(times[1:])), "p95_ms": float(np.percentile(times[1:], 95))}


def measure_sizes(model, root: Path, db: Path, sizes: list[int], budget_seconds: float, queries: np.ndarray, k: int,
                  seed: int, measured: Callable[[Fill, list[dict]], None]) -> None:
    """Grow one collection in `db` through `sizes` (ascending), measure it at each, and pass the rows so far to `measured`."""
    chunks = real_chunks(root)
    pool = list(islice(chunks, EMBED_BATCH))  # texts and metadata that random rows copy
    model.embed_texts([c.text for c in pool])  # warm-up at chunk length, so its buffers sit in the baseline
    chunks = chain(pool, chunks)
    index = SealIndex.open(model, db, create=True)
    if index.count():
        raise SystemExit(f"{db} already holds {index.count()} vectors: pass an empty or new --db")
    baseline_mb, fill, rng, results = rss_mb(), Fill(), np.random.default_rng(seed), []
    for size in sizes:
        grow(index, model, fill, size, chunks, pool, budget_seconds, rng)
        rate = fill.real / fill.real_seconds if fill.real_seconds else None  # embed + upsert, real chunks so far
        row = {"size": size, "real": fill.real, "random": fill.random, "ingest_chunks_per_second": rate,
               "add_seconds": fill.real_seconds + fill.random_seconds, **query_times(index, queries, k),
               "rss_growth_mb": rss_mb() - baseline_mb, "disk_mb": disk_mb(db)}
        results.append(row)
        print(f"{size:>9,} vectors ({fill.real:,} real): query median {row['median_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms; "
              f"RSS +{row['rss_growth_mb']:.0f} MB, disk {row['disk_mb']:.0f} MB", flush=True)
        measured(fill, results)  # a report per size: a run stopped on the way to 1M keeps the smaller sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seal-rag bench scale", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--real-minutes", type=float, default=20.0, help="budget for embedding real chunks")
    parser.add_argument("--queries", type=int, default=100, help="queries per size; the first, a warm-up, is reported apart")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--db", type=Path, default=None, help="build the index here and keep it (default: a temp dir)")
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

    with tempfile.TemporaryDirectory(prefix="seal-scale-") as scratch:
        db = args.db or Path(scratch) / "db"
        db.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SpeechEmbedding.from_pretrained()
        fitting, skipped = fitting_sizes(sizes, model.dim, shutil.disk_usage(db).free, available_memory_bytes(), db)
        questions = load_set("squad-holdout", root).queries
        picked = np.random.default_rng(args.seed).choice(len(questions), min(args.queries, len(questions)), replace=False)
        queries = model.embed_texts([questions[i].text for i in picked])  # (queries, dim)
        measure_sizes(model, root, db, fitting, args.real_minutes * 60, queries, args.k, args.seed,
                      lambda fill, results: report(args, sizes, skipped, model, len(queries), fill, results))


def available_memory_bytes() -> int:
    """What the kernel says new allocations can still get (MemAvailable), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    raise SystemExit("seal-rag bench scale reads free memory from /proc/meminfo: run it on Linux")


def fitting_sizes(sizes: list[int], dim: int, free_disk: int, free_memory: int, db: Path) -> tuple[list[int], list[dict]]:
    """The sizes whose estimated disk and memory fit, and a note for each one that does not."""
    def need(per_vector: tuple[int, int], size: int) -> int:
        return size * (per_vector[0] * dim + per_vector[1])

    kept, skipped = [], []
    for size in sizes:
        disk, memory = need(DISK_BYTES_PER_VECTOR, size), need(MEMORY_BYTES_PER_VECTOR, size)
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
               **model_fields(model), "quick": args.quick, "sizes_planned": sizes, "sizes_skipped": skipped, "ingest": ingest,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "results": results}
    rows = [[f"{r['size']:,}", f"{r['real']:,}", f"{r['random']:,}", f"{r['median_ms']:.2f}", f"{r['p95_ms']:.2f}",
             f"{r['first_query_ms']:.1f}", f"{r['rss_growth_mb']:.0f}", f"{r['disk_mb']:.0f}", f"{r['add_seconds']:.0f}",
             f"{r['ingest_chunks_per_second']:.1f}" if r["ingest_chunks_per_second"] else "-"] for r in results]
    name = "scale" + ("-quick" if args.quick else "")
    write_report(args.out, name, payload, ["vectors", "real", "random", "query median ms", "p95 ms", "first query ms",
                                           "RSS growth MB", "disk MB", "add time s (cumulative)", "ingest chunks/s (real)"], rows)
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
    axis.set(xscale="log", ylim=(0, None), xlabel="vectors in the collection (cosine)", ylabel="k-NN query time (ms)",
             title="Chroma query time against collection size")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
