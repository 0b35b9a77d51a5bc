"""Read a folder of documents into sections of plain text: .txt, .md, .html, .pdf, .jsonl.

A section is the unit that gets chunked: a whole text file, one page of a PDF, or one
record of a JSONL file. Files that cannot be read are reported, not fatal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl"}
DEFAULT_MAX_FILE_MB = 64  # larger files are refused rather than read whole into memory


@dataclass
class Section:
    """Text from one place in one file. `page` is 1-based for PDFs, else None."""

    source: str
    title: str
    text: str
    page: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Skipped:
    path: str
    reason: str


def find_files(folder: Path) -> list[Path]:
    """Supported files below `folder`, in a stable order, hidden folders excluded."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUPPORTED and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_file(path: Path, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> list[Section]:
    """All sections of one file.

    Raises:
        ValueError: with a one-line reason when the file is too big, binary, or has no text.
    """
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_file_mb:
        raise ValueError(f"{size_mb:.0f} MB is over the {max_file_mb:.0f} MB limit (raise --max-file-mb or split it)")
    suffix = path.suffix.lower()
    source = str(path.resolve())
    if suffix == ".pdf":
        sections = list(_read_pdf(path, source))
    elif suffix == ".jsonl":
        sections = list(_read_jsonl(path, source))
    else:
        text = _read_text(path)
        if suffix in (".html", ".htm"):
            title, text = _html_to_text(text)
        else:
            title = _first_heading(text) or path.stem
        sections = [Section(source, title, text)]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ValueError("no text found" + (" (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""))
    return sections


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise ValueError("binary content, not text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.lstrip("#").strip()[:120] if line.startswith("#") else None
    return None


def _html_to_text(html: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    # Block elements end paragraphs, so the chunker can still split on them.
    text = soup.get_text("\n\n", strip=True)
    return title or (text.splitlines()[0][:120] if text else ""), text


def _read_pdf(path: Path, source: str) -> Iterator[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        title = (reader.metadata.title if reader.metadata and reader.metadata.title else None) or path.stem
        for number, page in enumerate(reader.pages, 1):
            yield Section(source, title, page.extract_text() or "", page=number)
    except (PdfReadError, ValueError, KeyError) as error:
        raise ValueError(f"unreadable PDF ({error})") from None


def _read_jsonl(path: Path, source: str) -> Iterator[Section]:
    for line_number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            text = record["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"line {line_number} is not a JSON object with a 'text' field") from None
        record_id = str(record.get("id", line_number))
        # Chroma metadata holds scalars only; other fields are dropped.
        extra = {k: v for k, v in record.items() if k not in ("id", "text") and isinstance(v, (str, int, float, bool))}
        yield Section(f"{source}#{record_id}", str(record.get("title") or record_id), text, extra=extra)
