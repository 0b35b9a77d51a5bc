"""Split text into chunks on sentence and paragraph boundaries, with overlap.

Chunk ids are stable: the source path plus a hash of the chunk's content, so re-ingesting
the same text yields the same ids and adds nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .loaders import Section

DEFAULT_CHUNK_CHARS = 1000
DEFAULT_OVERLAP_CHARS = 150
# A sentence ends at . ! ? (maybe followed by a closing quote or bracket) before white space.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass
class Chunk:
    id: str
    text: str
    metadata: dict


def _units(text: str) -> list[tuple[int, int, bool]]:
    """Sentence spans `(start, end, starts_paragraph)` covering the non-blank text."""
    units = []
    paragraph_starts = [0] + [m.end() for m in _PARAGRAPH_BREAK.finditer(text)]
    paragraph_ends = [m.start() for m in _PARAGRAPH_BREAK.finditer(text)] + [len(text)]
    for p_start, p_end in zip(paragraph_starts, paragraph_ends):
        start, first = p_start, True
        for match in list(_SENTENCE_END.finditer(text, p_start, p_end)) + [None]:
            end = match.start() if match else p_end
            stripped = text[start:end].strip()
            if stripped:
                lead = start + len(text[start:end]) - len(text[start:end].lstrip())
                units.append((lead, lead + len(stripped), first))
                first = False
            start = match.end() if match else p_end
    return units


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
    if overlap_chars >= chunk_chars:
        raise ValueError("overlap must be smaller than the chunk size")
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
        metadata = {
            "source": section.source,
            "title": section.title,
            "start_char": start,
            "end_char": end,
            "chunk_index": index,
            **({"page": section.page} if section.page else {}),
            **section.extra,
        }
        chunks.append(Chunk(f"{source_key}-{page_key}{digest}{suffix}", body, metadata))
    return chunks
