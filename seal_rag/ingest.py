"""docs -> loaders -> chunks -> text tower -> vectors -> store.upsert.

Ingest is idempotent and safe to kill: chunk ids are deterministic, new chunks are
upserted batch by batch, and a changed file's old chunks are deleted only after its new
ones are stored. Running the same command again after a crash finishes the job and
leaves exactly the chunks a clean run would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .chunking import DEFAULT_CHUNK_CHARS, DEFAULT_OVERLAP_CHARS, Chunk, chunk_section
from .errors import DocumentError
from .loaders import DEFAULT_MAX_FILE_MB, Skipped, find_files, read_file
from .progress import progress_bar
from .store import SealIndex

EMBED_BATCH = 64  # chunks embedded and stored together; also the most a kill can lose


@dataclass
class IngestSummary:
    files: int = 0
    unchanged_files: int = 0
    added: int = 0
    deleted: int = 0
    pruned: int = 0
    total: int = 0
    skipped: list[Skipped] = field(default_factory=list)


def _file_key(source: str) -> str:
    return source.split("#", 1)[0]  # JSONL records share their file


def documents_in(folder: Path) -> list[Path]:
    """The files `ingest_folder` reads; raises `DocumentError` for a missing or empty folder."""
    if not folder.is_dir():
        raise DocumentError(f"{folder} is not a folder: pass the directory holding your documents")
    files = find_files(folder)
    if not files:
        raise DocumentError(f"{folder} holds no .txt, .md, .html, .pdf or .jsonl files: add documents or point at another folder")
    return files


def ingest_folder(
    model,
    folder: str | Path,
    index: SealIndex,
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    prune: bool = False,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    show_progress: bool = True,
) -> IngestSummary:
    """Bring `index` in line with the documents under `folder`.

    Args:
        model: A `SpeechEmbedding`; its text tower embeds the chunks.
        folder: Read recursively for .txt, .md, .html, .pdf and .jsonl.
        index: The target (see `SealIndex.open(..., create=True)`).
        prune: Also delete chunks of files under `folder` that no longer exist.

    Raises:
        DocumentError: the folder is missing or holds no readable document.
    """
    folder = Path(folder)
    files = documents_in(folder)
    summary = IngestSummary(files=len(files))

    wanted: dict[str, list[Chunk]] = {}
    for path in files:
        try:
            sections = read_file(path, max_file_mb)
        except (ValueError, OSError) as error:
            summary.skipped.append(Skipped(str(path), str(error)))
            continue
        chunks = [c for s in sections for c in chunk_section(s, chunk_chars, overlap_chars)]
        wanted[str(path.resolve())] = chunks
    if not wanted:
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in summary.skipped[:3])
        raise DocumentError(f"no readable document in {folder} ({reasons}): add text, markdown, HTML, PDF or JSONL files")

    existing = index.all_metadata()
    present_ids = set(existing)
    pending = [c for chunks in wanted.values() for c in chunks if c.id not in present_ids]
    summary.unchanged_files = sum(all(c.id in present_ids for c in chunks) for chunks in wanted.values())

    with progress_bar("Embedding chunks", len(pending), show_progress) as advance:
        for start in range(0, len(pending), EMBED_BATCH):
            batch = pending[start : start + EMBED_BATCH]
            vectors = model.embed_texts([c.text for c in batch])
            index.upsert([c.id for c in batch], vectors, [c.text for c in batch], [c.metadata for c in batch])
            summary.added += len(batch)
            advance(len(batch))

    # Only now, with every new chunk stored, drop what the new versions replace.
    keep = {c.id for chunks in wanted.values() for c in chunks}
    stale = [i for i, meta in existing.items() if _file_key(meta.get("source", "")) in wanted and i not in keep]
    index.delete(stale)
    summary.deleted = len(stale)
    if prune:
        root = str(folder.resolve()) + "/"
        gone = [
            i for i, meta in existing.items()
            if meta.get("source", "").startswith(root) and not Path(_file_key(meta["source"])).exists()
        ]
        index.delete(gone)
        summary.pruned = len(gone)
    summary.total = index.count()
    return summary
