"""docs -> loaders -> chunks -> text tower -> vectors -> store.upsert.

Ingest is idempotent and safe to kill: chunk ids are deterministic, new chunks are
upserted batch by batch, and a changed file's old chunks are deleted only after its new
ones are stored. Running the same command again after a crash finishes the job and
leaves exactly the chunks a clean run would, in Chroma and in the phonetic index beside it
(`SealIndex.upsert` writes the phonetic half first, so a crash between the two leaves an id
only there, which the next open or ingest drops before it adds the chunk again).
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .arguments import check_chunking
from .chunking import DEFAULT_CHUNK_CHARS, DEFAULT_OVERLAP_CHARS, Chunk, chunk_section
from .errors import DocumentError
from .loaders import DEFAULT_MAX_FILE_MB, FolderScan, NoTextError, Skipped, read_document, scan_folder
from .phonetic import phonemize
from .progress import progress_bar
from .store import SealIndex

# Chunks embedded and stored together. The sentence model sorts a batch by length, so 256 pad
# less than 64 (about 1.5x faster); a kill loses at most two batches of work, which a re-run redoes.
EMBED_BATCH = 256


@dataclass
class IngestSummary:
    files: int = 0
    unchanged_files: int = 0
    added: int = 0
    deleted: int = 0
    pruned: int = 0
    total: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # files, folders and links not read
    records_skipped: list[Skipped] = field(default_factory=list)  # bad records of files otherwise read


def stored_file(metadata: dict) -> str:
    """The file a stored chunk came from (its `path`); the one identity re-ingest and `--prune` use."""
    if "path" in metadata:
        return metadata["path"]
    # A chunk stored before chunks carried `path`: only a JSONL record's source named more
    # than its file, as `<file>.jsonl#<id>`.
    source = str(metadata.get("source", ""))
    cut = source.lower().find(".jsonl#")
    return source[: cut + len(".jsonl")] if cut >= 0 else source


def documents_in(folder: Path, follow_links: bool = False) -> FolderScan:
    """What `ingest_folder` reads; raises `DocumentError` for a missing or empty folder."""
    if not folder.is_dir():
        raise DocumentError(f"{folder} is not a folder: pass the directory holding your documents")
    scan = scan_folder(folder, follow_links)
    if not scan.files:
        raise DocumentError(
            f"{folder} holds no .txt, .md, .html, .pdf or .jsonl files"
            + (f" it can read ({scan.skipped[0].reason})" if scan.skipped else "")
            + ": add documents or point at another folder"
        )
    return scan


def ingest_folder(
    model,
    folder: str | Path,
    index: SealIndex,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    prune: bool = False,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    show_progress: bool = True,
    follow_links: bool = False,
) -> IngestSummary:
    """Bring `index` in line with the documents under `folder`.

    Args:
        model: A `SpeechEmbedding`; its text tower embeds the chunks.
        folder: Read recursively for .txt, .md, .html, .pdf and .jsonl.
        index: The target (see `SealIndex.open(..., create=True)`).
        prune: Also delete chunks of files under `folder` that no longer exist. Chunks under a
            folder that could not be read are kept: their files may well still be there.
        follow_links: Also follow symbolic links that lead out of `folder`.

    Raises:
        DocumentError: the folder is missing or holds no readable document.
    """
    check_chunking(chunk_chars, overlap_chars)
    folder = Path(folder)
    scan = documents_in(folder, follow_links)
    summary = IngestSummary(files=len(scan.files), skipped=list(scan.skipped))

    wanted: dict[str, list[Chunk]] = {}
    emptied: set[str] = set()  # files read that hold no text now: their stored chunks are out of date
    for path in scan.files:
        try:
            sections, problems = read_document(path, max_file_mb)
        except NoTextError as error:
            summary.skipped.append(Skipped(str(path), str(error)))
            emptied.add(str(path.resolve()))
            continue
        except (ValueError, OSError) as error:  # unread: what it put in the index is kept
            summary.skipped.append(Skipped(str(path), str(error)))
            continue
        summary.records_skipped += [Skipped(str(path), problem) for problem in problems]
        chunks = [c for s in sections for c in chunk_section(s, chunk_chars, overlap_chars)]
        wanted[str(path.resolve())] = chunks
    existing = index.all_metadata()
    emptied &= {stored_file(meta) for meta in existing.values()}  # only files whose earlier chunks are stored
    if not wanted and not emptied:
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in summary.skipped[:3])
        raise DocumentError(f"no readable document in {folder} ({reasons}): "
                            "add text, markdown, HTML, PDF or JSONL files")
    summary.skipped = [Skipped(s.path, f"{s.reason}: its earlier chunks are removed") if str(Path(s.path).resolve()) in emptied
                       else s for s in summary.skipped]
    present_ids = set(existing)
    if index.phonetic is not None and index.phonetic.live_ids() != present_ids:
        index.reconcile(model, present_ids)  # a crash, or another writer, left the two homes apart: mend first
    index.keep_phonemes()  # an index made before ingest kept them: once, so `ask` need not phonemize it each run
    # One chunk per id, even if two files ever made the same one: Chroma refuses a batch with a repeated id.
    pending = list({c.id: c for chunks in wanted.values() for c in chunks if c.id not in present_ids}.values())
    summary.unchanged_files = sum(all(c.id in present_ids for c in chunks) for chunks in wanted.values())

    with progress_bar("Embedding chunks", len(pending), show_progress) as advance:
        summary.added = store_chunks(model, index, pending, advance)

    # A chunk whose text an edit left alone keeps its id, but text added above it moves its place
    # (characters, chunk number), and a JSONL record's fields may change: its stored metadata is
    # brought up to date. Chroma merges an update into what is stored, so a field no longer there is
    # sent as None, which removes it (a filter on it would still match otherwise).
    moved = {c.id: c.metadata | dict.fromkeys((existing[c.id] or {}).keys() - c.metadata.keys())
             for chunks in wanted.values() for c in chunks
             if c.id in present_ids and (existing[c.id] or {}) != c.metadata}
    index.update_metadata(list(moved), list(moved.values()))

    # Only now, with every new chunk stored, drop what the new versions replace.
    keep = {c.id for chunks in wanted.values() for c in chunks}
    stale = [i for i, meta in existing.items()
             if (stored_file(meta) in wanted and i not in keep) or stored_file(meta) in emptied]
    index.delete(stale)
    summary.deleted = len(stale)
    if prune:
        summary.pruned = _prune(index, existing, folder, scan)
    summary.total = index.count()
    return summary


def store_chunks(model, index: SealIndex, chunks: list[Chunk], advance: Callable[[int], object] = lambda n: None) -> int:
    """Embed and upsert `chunks` in batches of `EMBED_BATCH`; returns how many were stored.

    Chunks go shortest first, so each batch holds texts of about one length and the sentence
    model pads little. One batch is written while the next is embedded (Chroma and the
    phonetic index work outside the GIL too), and at most one write is in flight, so a failure
    stops the run with every earlier batch stored. `advance(n)` is called as each batch is stored.
    """
    chunks = sorted(chunks, key=lambda c: len(c.text))  # stable: equal lengths keep their order
    stored = 0
    with ThreadPoolExecutor(1) as writer:
        writing: Future | None = None
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start : start + EMBED_BATCH]
            vectors, phonemes = embed_chunks(model, [c.text for c in batch])
            if writing is not None:
                advance(writing.result())
            writing = writer.submit(_upsert, index, batch, vectors, phonemes)
            stored += len(batch)
        if writing is not None:
            advance(writing.result())
    return stored


def embed_chunks(model, texts: list[str]) -> tuple:
    """Chunks' joined vectors, and the phonemes the index keeps beside them for the keyword tables
    (made once, for both; None for a model without a phonetic half)."""
    if getattr(model, "phonetic", None) is None:
        return model.embed_texts(texts), None
    phonemes = [phonemize(t) for t in texts]
    return model.embed_texts(texts, phonemes=phonemes), phonemes


def _upsert(index: SealIndex, batch: list[Chunk], vectors, phonemes: list[str] | None) -> int:
    index.upsert([c.id for c in batch], vectors, [c.text for c in batch], [c.metadata for c in batch], phonemes)
    return len(batch)


def _prune(index: SealIndex, existing: dict[str, dict], folder: Path, scan: FolderScan) -> int:
    """Delete the chunks of files under `folder` that the scan no longer found; returns how many."""
    root = str(folder.resolve()).rstrip(os.sep) + os.sep
    found = {str(path.resolve()) for path in scan.files}
    unknown = tuple(directory.rstrip(os.sep) + os.sep for directory in scan.unreadable)
    gone = [
        i for i, meta in existing.items()
        if (file := stored_file(meta)).startswith(root) and file not in found and not (unknown and file.startswith(unknown))
    ]
    index.delete(gone)
    return len(gone)
