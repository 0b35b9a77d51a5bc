import codecs
import json

import pytest

from seal_rag.loaders import find_files, read_document, read_file


def _pdf(path, text: str | None):
    """A real one-page PDF, with or without a text layer."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    if text:
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
        page[NameObject("/Contents")] = writer._add_object(stream)
    with open(path, "wb") as f:
        writer.write(f)
    return path


def test_each_format_reads_to_text_with_a_title(tmp_path):
    (tmp_path / "a.txt").write_text("Plain text about steam.")
    (tmp_path / "b.md").write_text("# Oxygen\n\nOxygen is element eight.")
    (tmp_path / "c.html").write_text("<html><head><title>Apollo</title><script>x()</script></head><body><p>Moon landing.</p></body></html>")
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "r1", "text": "Record one.", "author": "me", "tags": ["x"]}) + "\n")
    _pdf(tmp_path / "e.pdf", "Hello from a PDF")
    (tmp_path / "ignored.csv").write_text("a,b")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("hidden")
    files = find_files(tmp_path)
    assert [f.name for f in files] == ["a.txt", "b.md", "c.html", "d.jsonl", "e.pdf"]
    sections = {f.suffix: read_file(f) for f in files}
    assert sections[".md"][0].title == "Oxygen"
    assert sections[".html"][0].title == "Apollo" and "x()" not in sections[".html"][0].text
    record = sections[".jsonl"][0]
    assert record.source.endswith("d.jsonl#r1") and record.extra == {"author": "me"}
    pdf = sections[".pdf"][0]
    assert pdf.page == 1 and "Hello from a PDF" in pdf.text


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("bin.txt", b"\x00\x01\x02binary", "binary"),
        ("latin.txt", "caf\xe9".encode("latin-1"), "UTF-8"),
        ("bad.jsonl", b'{"no_text": 1}\n', "'text' field"),
    ],
)
def test_unreadable_files_give_a_reason(tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=reason):
        read_file(tmp_path / name)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_text_with_a_byte_order_mark_is_read_as_text_without_the_mark(tmp_path, encoding):
    text = "Caf\u00e9 au lait.\n\nOxygen is a chemical element."
    raw = text.encode(encoding)
    if encoding == "utf-16-be":
        raw = codecs.BOM_UTF16_BE + raw  # Python's utf-16-be writes no mark of its own
    (tmp_path / "notes.txt").write_bytes(raw)
    sections = read_file(tmp_path / "notes.txt")
    assert " ".join(" ".join(s.text for s in sections).split()) == "Caf\u00e9 au lait. Oxygen is a chemical element."


def test_a_record_with_blank_text_is_reported_not_dropped_silently(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"id": "a", "text": "Volcanoes build islands."}\n{"id": "w", "text": "   "}\n')
    sections, problems = read_document(tmp_path / "r.jsonl")
    assert [s.text for s in sections] == ["Volcanoes build islands."]
    assert problems == ["line 2 has a blank 'text': give it the record's text"]


def test_text_that_is_not_utf8_names_the_fix(tmp_path):
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("cp1252"))
    with pytest.raises(ValueError, match="not UTF-8 text: re-save it as UTF-8"):
        read_file(tmp_path / "latin.txt")


def test_pdf_without_text_and_huge_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no text found.*OCR"):
        read_file(_pdf(tmp_path / "scan.pdf", None))
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:  # a sparse 1 GB file: refused from its size, never read
        f.truncate(2**30)
    with pytest.raises(ValueError, match="1024 MB is over the 64 MB limit"):
        read_file(huge)


def test_a_pdf_pypdf_repairs_is_read_without_its_raw_notes(tmp_path, caplog):
    # pypdf logged each repair ("incorrect startxref pointer(3)"), printed raw among ingest's lines.
    path = _pdf(tmp_path / "damaged.pdf", "Hello from a PDF")
    data = path.read_bytes()
    path.write_bytes(data[:data.rfind(b"startxref")] + b"startxref\n9\n%%EOF\n")  # a wrong offset
    assert "Hello from a PDF" in read_file(path)[0].text
    # Python prints pypdf's records raw when nothing handles them (pytest's own handler catches them here).
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pypdf")] == []


def test_overlapping_pdf_reads_put_back_the_pypdf_level_that_was_set():
    # Two threads reading PDFs: the first out restored its saved level while the second read,
    # and the second then "restored" CRITICAL for good.
    import logging

    from seal_rag import loaders

    logger = logging.getLogger("pypdf")
    logger.setLevel(logging.INFO)
    try:
        first, second = loaders._quiet_pypdf(), loaders._quiet_pypdf()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert logger.level == logging.CRITICAL  # the second is still reading
        second.__exit__(None, None, None)
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(logging.NOTSET)


def test_a_seal_rag_index_or_tuned_model_inside_the_documents_is_not_read_as_documents(tmp_path):
    # `seal-rag ingest proj --db proj/kb` after an adapt ingested the tuned model's card, kb/tuned/seal_rag/README.md.
    from seal_rag.embedding import CONFIG_FILE, WEIGHTS_FILE
    from seal_rag.kb_tuning import TUNING_FILE
    from seal_rag.loaders import scan_folder
    from seal_rag.store import INDEX_FILE

    (tmp_path / "notes.md").write_text("# Notes\n\nReal text.")
    card = tmp_path / "kb" / "tuned" / "seal_rag"
    card.mkdir(parents=True)
    (tmp_path / "kb" / INDEX_FILE).write_bytes(b"")
    (card / "README.md").write_text("# Tuned model")
    (card / TUNING_FILE).write_text("{}")
    moved = tmp_path / "models" / "kb-tuned"  # a tuned model copied out of its index
    moved.mkdir(parents=True)
    (moved / "README.md").write_text("# Tuned model")
    for name in (TUNING_FILE, CONFIG_FILE, WEIGHTS_FILE):
        (moved / name).write_text("{}")
    experiments = tmp_path / "experiments"  # a user's own tuning.json is no tuned model
    experiments.mkdir()
    (experiments / TUNING_FILE).write_text("{}")
    (experiments / "results.md").write_text("# Results")
    assert scan_folder(tmp_path).files == [experiments / "results.md", tmp_path / "notes.md"]
    from seal_rag.loaders import OWN_FOLDER_MARKS  # spelled there without importing the store and the models

    assert set(OWN_FOLDER_MARKS) == {(INDEX_FILE,), (TUNING_FILE, CONFIG_FILE, WEIGHTS_FILE)}
