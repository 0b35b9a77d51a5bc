from seal_rag.chunking import chunk_section
from seal_rag.loaders import Section

PARAGRAPHS = [
    "Steam engines use heat. They were central to the Industrial Revolution! Did they change transport? Yes.",
    "Oxygen is element eight. It is the third most abundant element in the universe by mass.",
    "A " + "very " * 300 + "long sentence without a stop",
]
TEXT = "\n\n".join(PARAGRAPHS)


def test_chunks_cover_the_text_on_sentence_boundaries_within_size():
    chunks = chunk_section(Section("doc.txt", "Doc", TEXT), chunk_chars=200, overlap_chars=50)
    for chunk in chunks:
        meta = chunk.metadata
        assert TEXT[meta["start_char"] : meta["end_char"]] == chunk.text
        assert len(chunk.text) <= 200
        assert meta["source"] == "doc.txt" and meta["title"] == "Doc"
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.metadata["start_char"], chunk.metadata["end_char"]))
    assert all(i in covered for i, ch in enumerate(TEXT) if not ch.isspace())
    # Sentences are not cut, except the one longer than a chunk.
    assert not any(c.text.startswith(("ey were", "s element")) for c in chunks)


def test_overlap_repeats_short_trailing_sentences():
    chunks = chunk_section(Section("d", "t", PARAGRAPHS[0] + " " + PARAGRAPHS[0]), chunk_chars=120, overlap_chars=40)
    assert len(chunks) >= 2
    assert chunks[1].metadata["start_char"] < chunks[0].metadata["end_char"]


def test_ids_are_stable_and_depend_on_source_and_content():
    first = [c.id for c in chunk_section(Section("a.txt", "t", TEXT))]
    assert first == [c.id for c in chunk_section(Section("a.txt", "t", TEXT))]
    assert set(first).isdisjoint(c.id for c in chunk_section(Section("b.txt", "t", TEXT)))
    repeated = chunk_section(Section("a.txt", "t", "Same words here.\n\nSame words here."), chunk_chars=20, overlap_chars=0)
    assert len({c.id for c in repeated}) == len(repeated) == 2


def test_pdf_pages_are_kept_in_metadata_and_ids():
    chunks = chunk_section(Section("a.pdf", "t", "Page text.", page=3))
    assert chunks[0].metadata["page"] == 3 and "-p3-" in chunks[0].id
