"""Read a folder of documents into sections of plain text: .txt, .md, .html, .pdf, .jsonl.

A section is the unit that gets chunked: a whole text file, one page of a PDF, or one
record of a JSONL file. Files that cannot be read are reported, not fatal.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl"}
DEFAULT_MAX_FILE_MB = 64  # larger files are refused rather than read whole into memory
# Files that together make a folder seal-rag's own, never documents: an index (`store.INDEX_FILE`;
# its tuned model's card is a README.md) and a tuned model kept elsewhere (`kb_tuning.TUNING_FILE`
# beside the model's files: a user's folder may well hold a tuning.json of its own).
OWN_FOLDER_MARKS = (("chroma.sqlite3",), ("tuning.json", "config.json", "model.safetensors"))


@dataclass
class Section:
    """Text from one place in one file. `page` is 1-based for PDFs, else None."""

    source: str
    title: str
    text: str
    page: int | None = None
    extra: dict = field(default_factory=dict)
    path: str = ""  # the file it came from, when `source` names more (a JSONL record's `<file>#<id>`)

    @property
    def file(self) -> str:
        """The file this section came from: what re-ingest and `--prune` compare, never parsed out of `source`."""
        return self.path or self.source


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class FolderScan:
    """What a walk of a folder found: the documents, what it could not or would not enter, and
    the directories whose contents are unknown (so `--prune` must not take their absence as deletion)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def find_files(folder: Path) -> list[Path]:
    """Supported files below `folder`, in a stable order, hidden folders excluded."""
    return scan_folder(folder).files


def scan_folder(folder: Path, follow_links: bool = False) -> FolderScan:
    """Walk `folder` for supported files, hidden names and seal-rag's own folders excluded, without recursion (any depth).

    A symbolic link is followed when its target stays inside `folder`; one that leaves it is
    reported and skipped unless `follow_links` (a `passwd.txt` link to /etc/passwd would
    otherwise put that file's text in the index). A directory that cannot be read is reported.
    Every file is listed once, however many links lead to it.
    """
    root = os.path.realpath(folder)
    scan, seen_dirs, seen_files = FolderScan(), {root}, set()
    stack = [(Path(folder), root)]  # each folder with its real path, so only links need resolving
    while stack:
        directory, real_directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                entries = sorted(entries, key=lambda e: e.name)
        except OSError as error:
            scan.skipped.append(Skipped(str(directory), f"cannot read this folder ({error.strerror})"))
            scan.unreadable.append(real_directory)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path, link = Path(entry.path), entry.is_symlink()
            # The whole path, not only the name: a folder above it (the one given too) can hold such bytes.
            if not _utf8(entry.path):  # Chroma stores sources as UTF-8: one such file stopped the whole ingest
                scan.skipped.append(Skipped(str(path), "its path is not valid UTF-8, which the index cannot store: rename it"))
                continue
            real = os.path.realpath(path) if link else os.path.join(real_directory, entry.name)
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                is_dir = is_file = False
            if not (is_dir or (is_file and path.suffix.lower() in SUPPORTED)):
                if link and path.suffix.lower() in SUPPORTED:
                    problem = "a symbolic link to something that is not a file" if os.path.exists(real) else "a broken symbolic link"
                    scan.skipped.append(Skipped(str(path), problem))
                continue
            if link and not follow_links and not _inside(real, root):
                scan.skipped.append(Skipped(str(path), f"a symbolic link leaving the folder (to {real}): pass --follow-links to index it"))
                continue
            if is_dir and any(all(os.path.isfile(os.path.join(path, name)) for name in mark) for mark in OWN_FOLDER_MARKS):
                continue  # an index inside the documents (`ingest docs --db docs/kb`) is not read back into itself
            if is_dir and real not in seen_dirs:
                seen_dirs.add(real)
                stack.append((path, real))
            elif is_file and real not in seen_files:
                seen_files.add(real)
                scan.files.append(path)
    scan.files.sort()
    return scan


def _utf8(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (Python holds them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def read_file(path: Path, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> list[Section]:
    """All sections of one file (bad JSONL records left out: `read_document` reports them).

    Raises:
        ValueError: with a one-line reason when the file is too big or binary; `NoTextError` when it has no text.
    """
    return read_document(path, max_file_mb)[0]


def read_document(path: Path, max_file_mb: float = DEFAULT_MAX_FILE_MB) -> tuple[list[Section], list[str]]:
    """All sections of one file, and a one-line reason for each record left out of it.

    One bad record of a JSONL file (not an object, no text, a repeated id) costs that record,
    not the file; a file with nothing usable raises.

    Raises:
        ValueError: with a one-line reason when the file is too big, binary, or has no text.
        OSError: when the file cannot be read.
    """
    size_mb = path.stat().st_size / 2**20
    if size_mb > max_file_mb:
        raise ValueError(f"{size_mb:.0f} MB is over the {max_file_mb:.0f} MB limit (raise --max-file-mb or split it)")
    suffix = path.suffix.lower()
    source = str(path.resolve())
    problems: list[str] = []
    if suffix == ".pdf":
        sections = _read_pdf(path, source)
    elif suffix == ".jsonl":
        sections = _read_jsonl(path, source, problems)
    else:
        text = _read_text(path)
        if suffix in (".html", ".htm"):
            title, text = _html_to_text(text)
        else:
            title = _first_heading(text) or path.stem
        sections = [Section(source, title, text)]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        if problems:  # unusable records (a file half written, a JSON array) are not an emptied file
            raise ValueError(problems[0])
        raise NoTextError("no text found" + (" (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""))
    return sections, problems


class NoTextError(ValueError):
    """The file was read and holds no text now (empty, whitespace, no usable record): unlike a file
    that could not be read, what an earlier version of it put in the index is out of date."""


def _clean(text: str) -> str:
    """Text Chroma and the hashes can store: no lone surrogates (JSON may escape them), no NUL."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(_clean(text).split())[:limit]


# Byte-order marks, UTF-32's before UTF-16's (FF FE 00 00 starts with FF FE). Windows editors
# save "Unicode" text as UTF-16 with one, and UTF-8 often with one: read as text, not as binary,
# and without the mark in the first chunk.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    encoding = next((name for mark, name in BYTE_ORDER_MARKS if raw.startswith(mark)), "utf-8")
    if encoding == "utf-8" and b"\x00" in raw[:8192]:
        raise ValueError("binary content, not text")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        if encoding == "utf-8":
            raise ValueError("not UTF-8 text: re-save it as UTF-8 (iconv -f CP1252 -t UTF-8 for Windows text)") from None
        name = encoding.upper().removesuffix("-SIG")
        raise ValueError(f"not valid {name} text, though its byte-order mark says so: re-save it as UTF-8") from None
    if "\x00" in text[:8192]:  # UTF-16/32 spell every ASCII character with NUL bytes: look after decoding
        raise ValueError("binary content, not text")
    return text


def _first_heading(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.lstrip("#").strip()[:120] if line.startswith("#") else None
    return None


# Elements a reader never sees. Their text would still be indexed and sent to a chat model,
# which is how hidden instructions get into a page: none of it is indexed.
_INVISIBLE_TAGS = ["script", "style", "nav", "header", "footer", "noscript", "textarea", "template", "iframe",
                   "object", "embed", "svg", "canvas", "select", "datalist", "dialog", "head"]
_HIDDEN_STYLE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*(?:hidden|collapse)|font-size\s*:\s*0(?:\.0*)?(?:[a-z%]+)?\s*(?:!important)?\s*(?:;|$)"
    r"|opacity\s*:\s*0(?:\.0*)?\s*(?:!important)?\s*(?:;|$))",
    re.IGNORECASE,
)


def _is_hidden(tag) -> bool:
    attrs = getattr(tag, "attrs", None) or {}
    return (
        "hidden" in attrs
        or str(attrs.get("aria-hidden", "")).lower() == "true"
        or bool(_HIDDEN_STYLE.search(str(attrs.get("style", ""))))
        or (tag.name == "input" and str(attrs.get("type", "")).lower() == "hidden")
    )


def _html_to_text(html: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_INVISIBLE_TAGS):
        tag.decompose()
    for tag in [t for t in soup.find_all(True) if _is_hidden(t)]:
        tag.decompose()  # a hidden parent already took its hidden children with it
    # Block elements end paragraphs, so the chunker can still split on them.
    text = soup.get_text("\n\n", strip=True)
    return _one_line(title) or (text.splitlines()[0][:120] if text else ""), text


_PYPDF_QUIET = {"readers": 0, "level": logging.NOTSET}
_PYPDF_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_pypdf():
    """pypdf logs each repair it makes to a damaged file ("Ignoring wrong pointing object 6 0"),
    which Python prints raw, without our prefix, among ingest's own lines. The text it then reads
    is what counts: a file it cannot read raises, and is reported as skipped.

    pypdf names its loggers per module as it first logs, so only the parent's level reaches
    them all. Readers in several threads share one quiet spell: the first in sets it, the last
    out puts back the level that was set before."""
    logger = logging.getLogger("pypdf")
    with _PYPDF_LOCK:
        if _PYPDF_QUIET["readers"] == 0:
            _PYPDF_QUIET["level"] = logger.level
            logger.setLevel(logging.CRITICAL)
        _PYPDF_QUIET["readers"] += 1
    try:
        yield
    finally:
        with _PYPDF_LOCK:
            _PYPDF_QUIET["readers"] -= 1
            if _PYPDF_QUIET["readers"] == 0:
                logger.setLevel(_PYPDF_QUIET["level"])


def _read_pdf(path: Path, source: str) -> list[Section]:
    from pypdf import PdfReader

    # pypdf parses untrusted bytes and fails in many ways (its own errors, but also
    # IndexError, AssertionError, RecursionError, a missing `cryptography` for AES): any of
    # them means this one file is unreadable, never that the ingest should stop.
    try:
        with _quiet_pypdf():
            reader = PdfReader(path)
            if reader.is_encrypted and not reader.decrypt(""):
                raise ValueError("encrypted with a password: decrypt it first (qpdf --decrypt)")
            title = (reader.metadata.title if reader.metadata and reader.metadata.title else None) or path.stem
            return [Section(source, _one_line(str(title)), _clean(page.extract_text() or ""), page=number)
                    for number, page in enumerate(reader.pages, 1)]
    except ValueError as error:
        if "encrypted" in str(error):
            raise
        raise ValueError(f"unreadable PDF ({_one_line(str(error), 120)})") from None
    except Exception as error:  # noqa: BLE001 (see above)
        kind = type(error).__name__
        hint = ": decrypt it first (qpdf --decrypt)" if "crypt" in f"{kind}{error}".lower() else ""
        raise ValueError(f"unreadable PDF ({kind}: {_one_line(str(error), 120)}){hint}") from None


def _read_jsonl(path: Path, source: str, problems: list[str]) -> list[Section]:
    sections, first_line = [], {}
    for line_number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            problems.append(f"line {line_number} is not a JSON object with a 'text' field")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            got = type(record.get("text")).__name__ if isinstance(record, dict) and "text" in record else None
            problems.append(f"line {line_number} is not a JSON object with a 'text' field"
                            + (f" (its 'text' is {got}, not a string)" if got else ""))
            continue
        if not _clean(record["text"]).strip():
            problems.append(f"line {line_number} has a blank 'text': give it the record's text")
            continue
        record_id = _one_line(str(record.get("id", line_number)), 500)
        if record_id in first_line:
            problems.append(f"line {line_number} repeats the id {record_id!r} of line {first_line[record_id]}: "
                            "give each record its own id")
            continue
        first_line[record_id] = line_number
        title = _one_line(str(record.get("title") or record_id))
        extra = {k: _scalar(v) for k, v in record.items() if _usable_field(k, v)}
        sections.append(Section(f"{source}#{record_id}", title, _clean(record["text"]), extra=extra, path=source))
    return sections


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _usable_field(key: object, value: object) -> bool:
    """An extra JSONL field Chroma can store and filter on: a plain name and a scalar value."""
    if not isinstance(key, str) or not _FIELD_NAME.match(key) or key in ("id", "text"):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, bool)) or (isinstance(value, int) and -(2**63) <= value < 2**63)


def _scalar(value: object) -> object:
    return _clean(value)[:4096] if isinstance(value, str) else value
