"""Keyword tables kept beside the phonetic index: read back equal, used while the index is unchanged,
built again when it changes or the file is damaged (real index, real model, real espeak-ng)."""

import os
from pathlib import Path

import numpy as np
import pytest

from seal_rag import keyword_tables
from seal_rag.ingest import ingest_folder
from seal_rag.kb_decoding import DecodingSettings
from seal_rag.keyword_rerank import KeywordReranker, KeywordSettings
from seal_rag.phonetic import PHONEMES
from seal_rag.store import SealIndex

DEMOS = Path(__file__).resolve().parents[1] / "demos"
TEXTS = ["The Khwarezmian empire fell to the Mongols in 1221.",
         "Priestley isolated oxygen, which he called dephlogisticated air.",
         "Nairobi is the capital and largest city of Kenya.",
         "Oxygen is a chemical element with the symbol O."]


def test_tables_read_back_from_their_arrays_rank_as_the_built_ones():
    built = KeywordReranker.from_texts(TEXTS, decoding=DecodingSettings())
    arrays = {name: np.array(array) for name, array in built.arrays().items()}  # as np.load gives them: copies
    read = KeywordReranker.from_arrays(arrays, KeywordSettings(), DecodingSettings())
    assert read._words == built._words and read._labels == built._labels and np.array_equal(read.idf, built.idf)
    assert read.passages == built.passages == 4
    for text in TEXTS:
        assert np.array_equal(read.words_of(text), built.words_of(text))
    lm, again = built.decoder.lm, read.decoder.lm
    states = np.array([lm.start] + [lm.advance(lm.advance(lm.start, k), (3 * k) % lm.size) for k in range(lm.size)])
    assert np.array_equal(lm.rows(states), again.rows(states))
    logits = np.random.default_rng(0).normal(size=(60, len(PHONEMES) + 1)).astype(np.float32)
    assert np.array_equal(read.evidence(logits, TEXTS), built.evidence(logits, TEXTS))
    assert read.decoder.speller.spellings == built.decoder.speller.spellings and "nairobi" in read.decoder.speller.spellings
    assert read.decoder.spelled(read.decoder.nbest(logits)) == built.decoder.spelled(built.decoder.nbest(logits))
    # A passage the tables never held is phonemized when met, its new words as rare as can be.
    new = "Tenochtitlan stood on an island in Lake Texcoco."
    assert np.array_equal(read.words_of(new), built.words_of(new)) and len(read.idf) == len(built.idf) > len(arrays["idf"])
    without = KeywordReranker.from_arrays(arrays, KeywordSettings(), None)
    assert without.decoder is None and len(without._words) == len(arrays["idf"])


def test_tables_built_page_by_page_equal_those_built_at_once(monkeypatch):
    # A million chunks are read a page at a time; the phoneme model's counts are merged as they
    # grow. Pages of one and three passages, and a merge after every page, change nothing.
    from seal_rag.kb_decoding import NgramCounts

    texts = TEXTS + [p.read_text() for p in sorted((DEMOS / "kb").glob("*.txt"))]
    whole = KeywordReranker.from_texts(texts, decoding=DecodingSettings())
    monkeypatch.setattr(NgramCounts, "MERGE_EVERY", 1)
    for size in (1, 3):
        pages = [(texts[i:i + size], [None] * len(texts[i:i + size])) for i in range(0, len(texts), size)]
        paged = KeywordReranker.from_pages(pages, decoding=DecodingSettings())
        built, again = whole.arrays(), paged.arrays()
        assert built.keys() == again.keys() and len(built) > 10
        for name in built:
            assert np.array_equal(built[name], again[name]), name
    assert whole.passages == len(texts) and whole.decoder.lm.floor < 1


def test_passage_words_are_found_by_the_whole_key_even_when_halves_collide():
    from seal_rag.keyword_rerank import PassageWords

    keys = [bytes(8) + bytes([9]) * 8, bytes(8) + bytes([1]) * 8, bytes([7]) * 16, bytes([2]) * 8 + bytes(8)]
    words = [np.array([5, 6], np.int32), np.array([1], np.int32), np.array([], np.int32), np.array([3, 4, 8], np.int32)]
    table = PassageWords.build(b"".join(keys), np.array([len(w) for w in words]), np.concatenate(words))
    for key, ids in zip(keys, words):
        assert np.array_equal(table.get(key), ids)
    assert table.get(bytes(8) + bytes([4]) * 8) is None and table.get(bytes([255]) * 16) is None


def test_an_empty_knowledge_base_round_trips():
    built = KeywordReranker.from_texts([], decoding=DecodingSettings())
    read = KeywordReranker.from_arrays(built.arrays(), KeywordSettings(), DecodingSettings())
    assert read._words == {} and read.decoder.lm is None and read.words_of("Kenya").size == 1


@pytest.fixture
def index(embedding, tmp_path):
    index = SealIndex.open(embedding, tmp_path / "db", create=True)
    ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    return index


def test_ask_builds_the_tables_once_and_reads_them_while_the_index_is_unchanged(embedding, index, tmp_path, monkeypatch):
    import seal_rag.retrieve as retrieve

    kept = index.phonetic.folder / keyword_tables.FILE
    assert not kept.exists()
    first = retrieve.index_keyword_reranker(embedding, index)
    assert kept.is_file() and os.stat(kept).st_mode & 0o777 == 0o600  # private, as the rest of the index

    built = []
    real_build = KeywordReranker.from_pages
    monkeypatch.setattr(KeywordReranker, "from_pages", classmethod(lambda cls, *a, **k: built.append(1) or real_build(*a, **k)))
    again = retrieve.index_keyword_reranker(embedding, SealIndex.open(embedding, tmp_path / "db"))  # another process's view
    assert built == [] and again._words == first._words and np.array_equal(again.idf, first.idf)
    assert again.decoder.lm is not None and again.decoder.lm.floor == first.decoder.lm.floor

    # The index changes: the kept tables are of another state, so they are built again, with the new words.
    docs = tmp_path / "more"
    docs.mkdir()
    (docs / "lake.txt").write_text("Tenochtitlan stood on an island in Lake Texcoco, the Aztec capital.")
    ingest_folder(embedding, docs, index, show_progress=False)
    grown = retrieve.index_keyword_reranker(embedding, index)
    assert built == [1] and len(grown._words) > len(first._words) and grown.passages == first.passages + 1
    assert retrieve.index_keyword_reranker(embedding, index)._words == grown._words and built == [1]

    # A damaged file is not an error: the tables are built again and kept again.
    kept.write_bytes(b"PK\x03\x04 not a zip at all")
    assert retrieve.index_keyword_reranker(embedding, index)._words == grown._words and built == [1, 1]
    assert keyword_tables.load(index.phonetic.folder, keyword_tables.stamp(index))


def test_tables_are_not_kept_unless_built_from_exactly_the_chunks_of_their_stamp(embedding, index, monkeypatch):
    # Ingest writes the phonetic index before Chroma: a reader in between stamps the new state
    # but may read the old text. Its tables serve it, but are not kept under that stamp.
    import seal_rag.retrieve as retrieve

    pages = index.keyword_pages

    def one_chunk_missed(**reading):
        for number, (ids, texts, phonemes) in enumerate(pages(**reading)):
            yield (ids[1:], texts[1:], phonemes[1:]) if number == 0 else (ids, texts, phonemes)

    monkeypatch.setattr(index, "keyword_pages", one_chunk_missed)
    assert retrieve.index_keyword_reranker(embedding, index)._words
    assert not (index.phonetic.folder / keyword_tables.FILE).exists()
    monkeypatch.setattr(index, "keyword_pages", pages)
    retrieve.index_keyword_reranker(embedding, index)
    assert (index.phonetic.folder / keyword_tables.FILE).exists()


def test_an_upsert_moves_the_generation_on_after_chroma_has_the_text(embedding, index, monkeypatch):
    from seal_rag.phonetic_index import PhoneticIndex

    calls = []
    real_upsert, real_touch = PhoneticIndex.upsert, PhoneticIndex.touch
    monkeypatch.setattr(PhoneticIndex, "upsert", lambda self, *a, **k: calls.append("phonetic") or real_upsert(self, *a, **k))
    monkeypatch.setattr(PhoneticIndex, "touch", lambda self, *a: calls.append("touch") or real_touch(self, *a))
    chroma = index.collection.upsert
    monkeypatch.setattr(index.collection, "upsert", lambda **k: calls.append("chroma") or chroma(**k))
    before = index.phonetic.generation
    vector = embedding.embed_texts(["Lake Texcoco lay in the Valley of Mexico."])
    index.upsert(["lake-1"], vector, ["Lake Texcoco lay in the Valley of Mexico."], [{"source": "lake"}])
    assert calls == ["phonetic", "chroma", "touch"] and index.phonetic.generation >= before + 2
    assert index.phonetic.chroma_change == index.change_token() is not None  # the token other machines compare


def test_inconsistent_tables_on_disk_are_built_again(embedding, index):
    import seal_rag.retrieve as retrieve

    first = retrieve.index_keyword_reranker(embedding, index)
    path = index.phonetic.folder / keyword_tables.FILE
    with np.load(path) as kept:
        good = {name: kept[name] for name in kept.files}
    stamped = keyword_tables.stamp(index)
    assert keyword_tables.load(index.phonetic.folder, stamped) is not None
    for name, bad in [("passage_ids", good["passage_ids"] + 10**6), ("passage_starts", good["passage_starts"][:-1]),
                      ("passage_high", good["passage_high"][::-1].copy()), ("decoder.lm.4.first", good["decoder.lm.4.first"] + 10**7),
                      ("decoder.speller.spellings", good["decoder.speller.spellings"][:-40]),
                      ("idf", good["idf"][:-1]), ("passage_ids", good["passage_ids"].astype(np.float32))]:
        np.savez(path, **(good | {name: bad}))
        assert keyword_tables.load(index.phonetic.folder, stamped) is None, name
    assert retrieve.index_keyword_reranker(embedding, index)._words == first._words
    assert keyword_tables.load(index.phonetic.folder, stamped) is not None  # kept again


def test_a_scratch_file_left_by_a_dead_reader_is_removed_by_the_next_writer(embedding, index, tmp_path):
    stray = index.phonetic.folder / f"{keyword_tables.SCRATCH}abc123"
    stray.write_bytes(b"half of a file")
    docs = tmp_path / "more"
    docs.mkdir()
    (docs / "lake.txt").write_text("Lake Texcoco lay in the Valley of Mexico.")
    ingest_folder(embedding, docs, index, show_progress=False)
    assert not stray.exists()


def test_an_index_this_process_cannot_write_to_is_answered_without_keeping_tables(embedding, index, monkeypatch):
    import seal_rag.retrieve as retrieve

    def refused(*args, **kwargs):  # as mkstemp fails in a read-only folder (root writes to those, so it is faked)
        raise PermissionError(13, "Permission denied", str(index.phonetic.folder))

    monkeypatch.setattr(keyword_tables.tempfile, "mkstemp", refused)
    assert retrieve.index_keyword_reranker(embedding, index)._words
    assert sorted(p.name for p in index.phonetic.folder.iterdir() if not p.name.startswith("s")) == ["manifest.json", "phonetic.lock"]


def test_the_integrations_cache_reads_a_seal_index_tables_and_follows_its_changes(embedding, index, tmp_path, monkeypatch):
    import seal_rag.retrieve as retrieve

    retrieve.index_keyword_reranker(embedding, index)  # as an earlier `ask` left them
    built = []
    real_build = KeywordReranker.from_pages
    monkeypatch.setattr(KeywordReranker, "from_pages", classmethod(lambda cls, *a, **k: built.append(1) or real_build(*a, **k)))
    cache = retrieve.KeywordCache(embedding)
    first = cache.for_index(index)
    assert cache.for_index(index) is first and built == []  # read from disk once, then held
    docs = tmp_path / "more"
    docs.mkdir()
    (docs / "lake.txt").write_text("Tenochtitlan stood on an island in Lake Texcoco, the Aztec capital.")
    ingest_folder(embedding, docs, index, show_progress=False)
    grown = cache.for_index(index)
    assert grown is not first and built == [1] and grown.passages == first.passages + 1
