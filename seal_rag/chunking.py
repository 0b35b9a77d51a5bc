"""Split text into chunks on sentence and paragraph boundaries, with overlap.

Chunk ids are stable: the source path plus a hash of the chunk's content, so re-ingesting
the same text yields the same ids and adds nothing.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .arguments import check_chunking
from .errors import DocumentError
from .loaders import DEFAULT_MAX_FILE_MB, Section, find_files, read_file
from .sentences import paragraph_spans, sentence_spans

# About 200 word pieces of English prose: under the 256 that the text tower's semantic half
# (MiniLM) reads, so no chunk is embedded from its start alone.
DEFAULT_CHUNK_CHARS = 1000
DEFAULT_OVERLAP_CHARS = 150
# Metadata seal-rag sets on every chunk; a document's own fields (JSONL extras) cannot
# overwrite them, or a record could claim to be /etc/shadow page 999.
PROJECT_FIELDS = frozenset({"source", "path", "title", "start_char", "end_char", "chunk_index", "page"})


@dataclass
class Chunk:
    id: str
    text: str
    metadata: dict


def _units(text: str) -> list[tuple[int, int, bool]]:
    """Sentence spans `(start, end, starts_paragraph)` covering the non-blank text."""
    return [
        (start, end, index == 0)
        for p_start, p_end in paragraph_spans(text)
        for index, (start, end) in enumerate(sentence_spans(text, p_start, p_end))
    ]


def _split_long(start: int, end: int, text: str, limit: int) -> list[tuple[int, int, bool]]:
    """Cut a sentence longer than `limit` at white space."""
    pieces = []
    while end - start > limit:
        cut = text.rfind(" ", start, start + limit)
        cut = cut if cut > start else start + limit
        pieces.append((start, cut, False))
        start = cut + 1 if text[cut : cut + 1] == " " else cut
    pieces.append((start, end, False))
    return pieces


def chunk_section(section: Section, chunk_chars: int = DEFAULT_CHUNK_CHARS, overlap_chars: int = DEFAULT_OVERLAP_CHARS) -> list[Chunk]:
    """Greedy chunks of whole sentences, closing early at a paragraph break past half size."""
    check_chunking(chunk_chars, overlap_chars)
    text = section.text
    units = []
    for start, end, new_paragraph in _units(text):
        pieces = _split_long(start, end, text, chunk_chars)
        units.extend([(pieces[0][0], pieces[0][1], new_paragraph)] + pieces[1:])
    spans, current = [], []
    for unit in units:
        size = current[-1][1] - current[0][0] if current else 0
        paragraph_end = unit[2] and size >= chunk_chars // 2
        if current and (unit[1] - current[0][0] > chunk_chars or paragraph_end):
            spans.append((current[0][0], current[-1][1]))
            # Carry trailing sentences into the next chunk, up to the overlap budget.
            carried = []
            for previous in reversed(current):
                if current[-1][1] - previous[0] > overlap_chars or unit[1] - previous[0] > chunk_chars:
                    break
                carried.insert(0, previous)
            current = carried if not paragraph_end else []
        current.append(unit)
    if current:
        spans.append((current[0][0], current[-1][1]))
    return _make_chunks(section, spans)


def _make_chunks(section: Section, spans: list[tuple[int, int]]) -> list[Chunk]:
    source_key = hashlib.sha1(section.source.encode()).hexdigest()[:12]
    page_key = f"p{section.page}-" if section.page else ""
    chunks, seen = [], {}
    for index, (start, end) in enumerate(spans):
        body = section.text[start:end]
        digest = hashlib.sha256(body.encode()).hexdigest()[:16]
        seen[digest] = seen.get(digest, 0) + 1  # the same text twice in one file stays two chunks
        suffix = f"-{seen[digest]}" if seen[digest] > 1 else ""
        metadata = {k: v for k, v in section.extra.items() if k not in PROJECT_FIELDS}
        # The project's own fields go last, so a document can never set them.
        metadata.update(source=section.source, path=section.file, title=section.title, start_char=start, end_char=end,
                        chunk_index=index, **({"page": section.page} if section.page else {}))
        chunks.append(Chunk(f"{source_key}-{page_key}{digest}{suffix}", body, metadata))
    return chunks


def chunk_paths(
    paths: str | Path | Sequence[str | Path],
    chunk_chars: int = DEFAULT_CHUNK_CHARS,
    overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    raise_on_error: bool = False,
) -> Iterator[Chunk]:
    """The chunks `seal-rag ingest` would store for these files or folders, file by file.

    The LlamaIndex reader and the LangChain loader read through this, so their documents
    carry ingest's ids, text and metadata. A file that cannot be read is skipped with a
    warning, as ingest skips it, or with `raise_on_error` stops the reading.

    Raises:
        DocumentError: a path does not exist, nothing under it could be read, or (with
            `raise_on_error`) a file could not be read.
    """
    roots = [paths] if isinstance(paths, (str, Path)) else paths
    if isinstance(roots, (bytes, bytearray)) or not isinstance(roots, Iterable):
        roots = [roots]  # reported below, by its type
    # A file given twice (itself and its folder) is read once: its chunks' ids would repeat,
    # which Chroma refuses in one batch and other stores keep twice.
    read, given = set(), set()
    for root in roots:
        if not isinstance(root, (str, Path)):
            raise DocumentError(f"cannot read documents from a {type(root).__name__}: pass a file or folder path, "
                                "or a list of them")
        root = Path(root).expanduser()
        if not root.exists():
            raise DocumentError(f"{root} does not exist: pass a document or a folder of them")
        found = 0
        for path in find_files(root) if root.is_dir() else [root]:
            if path.resolve() in read:
                found += 1
                continue
            try:
                chunks = [c for s in read_file(path, max_file_mb) for c in chunk_section(s, chunk_chars, overlap_chars)]
            except (ValueError, OSError) as error:
                if raise_on_error:
                    raise DocumentError(f"cannot read {path}: {error}") from None
                warnings.warn(f"seal-rag: skipped {path}: {error}", stacklevel=2)
                continue
            read.add(path.resolve())
            found += 1
            for chunk in chunks:
                if chunk.id not in given:
                    given.add(chunk.id)
                    yield chunk
        if not found:
            raise DocumentError(f"no readable .txt, .md, .html, .pdf or .jsonl document at {root}: add documents or point elsewhere")
