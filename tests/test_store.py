import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from seal_rag import IndexMismatchError, ModelLoadError, StoreError
from seal_rag.ingest import ingest_folder
from seal_rag.phonetic_index import _matrix
from seal_rag.store import SealIndex, db_lock

from .conftest import DEMOS


class OtherModel:
    """Stands in for a different model: only its identity matters to the check."""

    name, dim, space_fingerprint = "other", 384, "0123456789abcdef"



def stored_rows(index, **reading) -> tuple[list[str], list[str | None]]:
    """Every chunk text the index holds, and its stored phonemes (`SealIndex.keyword_pages`, all pages)."""
    texts, phonemes = [], []
    for _, page_texts, page_phonemes in index.keyword_pages(**reading):
        texts += page_texts
        phonemes += page_phonemes
    return texts, phonemes

def test_collection_is_cosine_and_stamped_with_the_model(embedding, demo_db):
    index = SealIndex.open(embedding, demo_db)
    assert index.collection.configuration["hnsw"]["space"] == "cosine"
    assert index.collection.metadata["seal_space"] == embedding.space_fingerprint
    assert index.collection.metadata["seal_dim"] == embedding.dim
    hits = index.query(embedding.embed_texts("Oxygen is a chemical element")[0], k=3)
    assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score
    assert "Oxygen" in hits[0].metadata["source"] and hits[0].metadata["end_char"] > hits[0].metadata["start_char"]


def test_another_model_is_refused(demo_db):
    with pytest.raises(IndexMismatchError, match="was built by model .* not 'other'.*re-ingest"):
        SealIndex.open(OtherModel(), demo_db)


def test_missing_db_and_missing_collection_are_clear(embedding, tmp_path):
    with pytest.raises(StoreError, match="no index at .*run `seal-rag ingest"):
        SealIndex.open(embedding, tmp_path / "nowhere")
    SealIndex.open(embedding, tmp_path / "db", collection="other", create=True)
    with pytest.raises(StoreError, match="no collection 'seal_rag'"):
        SealIndex.open(embedding, tmp_path / "db")


def test_a_model_that_gives_the_semantic_half_no_weight_is_refused_clearly(embedding, tmp_path):
    """Weight 1 (a phonetic-only benchmark model) leaves every semantic half zero, which Chroma
    refuses as NaN: the user hears what to change, not that the index is damaged."""
    import copy

    phonetic_only = copy.deepcopy(embedding)
    phonetic_only.config.phonetic_weight = 1.0
    with pytest.raises(ModelLoadError, match="phonetic_weight is below 1"):
        SealIndex.open(phonetic_only, tmp_path / "db", create=True)


def test_empty_index_query_is_clear(embedding, tmp_path):
    index = SealIndex.open(embedding, tmp_path / "db", create=True)
    with pytest.raises(StoreError, match="is empty"):
        index.query(np.ones(embedding.dim, dtype=np.float32) / np.sqrt(embedding.dim))


def test_a_writer_keeps_other_processes_out(tmp_path):
    with db_lock(tmp_path, exclusive=True):
        probe = "from seal_rag.store import db_lock\nwith db_lock(%r, exclusive=False): pass" % str(tmp_path)
        result = subprocess.run(["python", "-c", probe], capture_output=True, text=True)
        assert result.returncode != 0 and "another seal-rag process is writing" in result.stderr


@pytest.mark.slow
def test_the_http_client_path_against_a_real_chroma_server(embedding, chroma_server):
    index = SealIndex.open(embedding, host="127.0.0.1", port=chroma_server, create=True)
    summary = ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    again = SealIndex.open(embedding, host="127.0.0.1", port=chroma_server)
    assert summary.total == again.count() >= 36
    hits = again.query(embedding.embed_texts("the Apollo program and the Moon")[0], k=2)
    assert "Apollo_program" in hits[0].metadata["source"]
    with pytest.raises(IndexMismatchError):
        SealIndex.open(OtherModel(), host="127.0.0.1", port=chroma_server)


def _replace_one_chunk(embedding, index: SealIndex) -> tuple[str, str]:
    """An edit on one machine: one chunk deleted, one with new text added, so Chroma's count stays.
    Returns (the deleted id, the new id)."""
    gone = index.all_ids()[0]
    text = "Zanzibar's clove plantations shipped spice across the Indian Ocean."
    index.delete([gone])
    index.upsert(["zanzibar-cloves"], embedding.embed_texts([text]), [text], [{"source": "spice.txt"}])
    return gone, "zanzibar-cloves"


def _open_on_another_machine(embedding, collection, folder: Path, count: int) -> SealIndex:
    """Machine B keeps its own phonetic index of the collection both machines use, made from Chroma's text on first open."""
    machine_b = SealIndex.for_collection(collection, embedding, folder)
    assert machine_b.phonetic.live_count == count and machine_b.sync(embedding) == 0  # in step: nothing read again
    return machine_b


def _check_the_edit_reached(embedding, machine_b: SealIndex, gone: str, new: str) -> None:
    assert machine_b.sync(embedding) == 1  # the new chunk phonemized, the deleted one dropped
    assert machine_b.phonetic.live_ids() == set(machine_b.all_ids()) and gone not in machine_b.phonetic.live_ids()
    question = embedding.embed_texts(["clove plantations of Zanzibar"])[0]
    hits = machine_b.query(question, 3)
    exact = float(embedding.embed_texts([hits[0].text])[0] @ question)
    assert hits[0].id == new and hits[0].score == pytest.approx(exact, abs=1e-5)  # both halves, not the semantic half alone
    assert machine_b.sync(embedding) == 0


def test_an_edit_that_keeps_the_count_reaches_another_machines_phonetic_index(embedding, tmp_path):
    import chromadb

    machine_a = SealIndex.open(embedding, tmp_path / "db", create=True)
    ingest_folder(embedding, DEMOS / "kb", machine_a, show_progress=False)
    count = machine_a.count()
    common = chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("seal_rag", embedding_function=None)
    machine_b = _open_on_another_machine(embedding, common, tmp_path / "b", count)
    gone, new = _replace_one_chunk(embedding, machine_a)
    assert machine_a.count() == count and machine_a.sync(embedding) == 0  # the writer's own index is in step
    _check_the_edit_reached(embedding, machine_b, gone, new)


def test_a_writer_that_missed_another_machines_edit_does_not_claim_it_and_a_lost_token_is_recorded(embedding, tmp_path):
    import chromadb

    from seal_rag.store import CHANGE_KEY

    machine_a = SealIndex.open(embedding, tmp_path / "db", create=True)
    ingest_folder(embedding, DEMOS / "kb", machine_a, show_progress=False)
    common = chromadb.PersistentClient(path=str(tmp_path / "db")).get_collection("seal_rag", embedding_function=None)
    machine_b = _open_on_another_machine(embedding, common, tmp_path / "b", machine_a.count())
    gone, new = _replace_one_chunk(embedding, machine_b)  # A has not looked since
    text = "A later chunk written by machine A."
    machine_a.upsert(["later"], embedding.embed_texts([text]), [text], [{"source": "later.txt"}])
    assert machine_a.phonetic.chroma_change != machine_a.change_token()  # A's write does not vouch for B's edit
    assert machine_a.sync(embedding) == 1 and machine_a.phonetic.live_ids() == set(machine_a.all_ids())
    assert new in machine_a.phonetic.live_ids() and gone not in machine_a.phonetic.live_ids()

    # A collection whose token was lost (metadata reset, a restored backup): mended once, then in step.
    common.modify(metadata={k: v for k, v in common.metadata.items() if k != CHANGE_KEY})
    assert machine_a.change_token() is None and machine_a.sync(embedding) == 0
    assert machine_a.phonetic.chroma_change is None and machine_a.sync(embedding) == 0


@pytest.mark.slow
def test_an_edit_on_a_chroma_server_reaches_another_machines_phonetic_index(embedding, chroma_server, tmp_path):
    import chromadb

    machine_a = SealIndex.open(embedding, host="127.0.0.1", port=chroma_server, create=True)
    ingest_folder(embedding, DEMOS / "kb", machine_a, show_progress=False)
    count = machine_a.count()
    common = chromadb.HttpClient(host="127.0.0.1", port=chroma_server).get_collection("seal_rag", embedding_function=None)
    machine_b = _open_on_another_machine(embedding, common, tmp_path / "b", count)
    gone, new = _replace_one_chunk(embedding, machine_a)
    assert machine_a.count() == count
    _check_the_edit_reached(embedding, machine_b, gone, new)


def test_an_unreachable_server_is_clear(embedding):
    with pytest.raises(StoreError, match=f"cannot reach the Chroma server at 127.0.0.1:{1}.*chroma run"):
        SealIndex.open(embedding, host="127.0.0.1", port=1)


# ---- layout 2: the phonetic half in its own index, searched by the exact joined cosine ------------


def _dense_joined(embedding, index: SealIndex, folder) -> tuple[object, np.ndarray]:
    """The same chunks as the layout before it (whole joined vectors in one cosine Chroma collection)."""
    import chromadb

    stored = index.collection.get(include=["documents", "metadatas"])
    joined = embedding.embed_texts(stored["documents"])  # (chunks, 8576)
    dense = chromadb.PersistentClient(path=str(folder)).create_collection(
        "dense_joined", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    dense.add(ids=stored["ids"], embeddings=joined, documents=stored["documents"], metadatas=stored["metadatas"])
    return dense, joined


def test_search_ranks_exactly_as_the_dense_joined_vectors_did(embedding, demo_db, tmp_path):
    index = SealIndex.open(embedding, demo_db)
    assert index.collection.metadata["seal_layout"] == 2 and index.phonetic.live_count == index.count()
    dense, _ = _dense_joined(embedding, index, tmp_path / "dense")
    spoken = sorted((DEMOS / "questions").glob("*.wav"))
    queries = np.concatenate([embedding.embed_audio(spoken), embedding.embed_texts(
        ["What is the Rankine cycle?", "Who was president when Apollo began?", "Priestley discovered oxygen"])])
    oxygen = {"title": {"$in": [f"Oxygen_{i}" for i in range(12)]}}
    for where in (None, oxygen, {"title": "no such file"}):
        for vector in queries:
            hits = index.query(vector, 10, where)
            before = dense.query(query_embeddings=vector[None], n_results=10, where=where, include=["distances"])
            assert [h.id for h in hits] == before["ids"][0]
            assert np.allclose([h.score for h in hits], 1 - np.array(before["distances"][0]), atol=1e-5)
            assert where is None or all(h.metadata["title"].startswith("Oxygen") for h in hits)


def test_an_old_layout_index_is_refused_with_the_fix(embedding, tmp_path):
    import chromadb

    old = chromadb.PersistentClient(path=str(tmp_path)).create_collection(
        "seal_rag", metadata={"seal_model": embedding.name, "seal_space": embedding.space_fingerprint, "seal_dim": embedding.dim},
        configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    old.add(ids=["a"], embeddings=embedding.embed_texts(["An old chunk."]), documents=["An old chunk."])
    for create in (False, True):  # ask, and ingest into the same --db
        with pytest.raises(IndexMismatchError, match=r"old layout .*re-ingest your documents into a new --db"):
            SealIndex.open(embedding, tmp_path, create=create)


def test_phonetic_index_is_rebuilt_and_repaired_from_chroma(embedding, tmp_path):
    import shutil

    from seal_rag.phonetic_index import MANIFEST

    db = tmp_path / "db"
    index = SealIndex.open(embedding, db, create=True)
    ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    manifest = (index.phonetic.folder / MANIFEST).read_text()
    query = embedding.embed_texts(["Who discovered oxygen?"])[0]
    expected = [(h.id, round(h.score, 5)) for h in index.query(query, 10)]

    again = ingest_folder(embedding, DEMOS / "kb", SealIndex.open(embedding, db, create=True), show_progress=False)
    assert again.added == 0 and (index.phonetic.folder / MANIFEST).read_text() == manifest  # idempotent: nothing written

    # A writer killed between the phonetic write and Chroma's: the phonetic index holds an id Chroma lacks.
    with index.phonetic.writing() as phonetic:
        phonetic.upsert(["killed-before-chroma"], embedding.phonetic.embed_texts(["A chunk Chroma never got."]))
    reopened = SealIndex.open(embedding, db)
    assert reopened.phonetic.live_ids() == set(reopened.all_ids())

    stored = stored_rows(index)
    shutil.rmtree(index.phonetic.folder)  # lost, or copied without it: made again from Chroma's text
    reopened = SealIndex.open(embedding, db)
    assert reopened.phonetic.live_count == reopened.count() == 39
    assert [(h.id, round(h.score, 5)) for h in reopened.query(query, 10)] == expected
    assert stored_rows(reopened) == stored  # the rebuild keeps each chunk's phonemes too

    # An index written in the phonetic index's previous format is made again the same way.
    folder = reopened.phonetic.folder
    (folder / MANIFEST).write_text(json.dumps(json.loads((folder / MANIFEST).read_text()) | {"format": 1}))
    upgraded = SealIndex.open(embedding, db)
    assert json.loads((folder / MANIFEST).read_text())["format"] == 2 and upgraded.phonetic.live_count == 39
    assert [(h.id, round(h.score, 5)) for h in upgraded.query(query, 10)] == expected


def test_ingest_keeps_each_chunks_phonemes_so_keyword_tables_need_no_espeak(embedding, tmp_path, monkeypatch, capsys):
    import seal_rag.keyword_rerank
    import seal_rag.retrieve
    from seal_rag.phonetic import phonemize
    from seal_rag.retrieve import index_keyword_reranker, keyword_reranker

    index = SealIndex.open(embedding, tmp_path / "db", create=True)
    ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    pages = []
    texts, phonemes = stored_rows(index, page=16, advance=pages.append)
    assert len(texts) == index.count() == 39 and phonemes == [phonemize(t) for t in texts]
    assert pages == [16, 16, 7]  # progress, page by page
    # Another process's merge removes a segment between the manifest and its phonemes: read again.
    real, calls = index.phonetic.phonemes_of, []

    def merged_away_once(ids, kept):
        calls.append(len(ids))
        if len(calls) == 2:
            kept["s-gone"] = []
            raise FileNotFoundError("s-gone.phonemes.json.z")
        return real(ids, kept)

    monkeypatch.setattr(index.phonetic, "phonemes_of", merged_away_once)
    assert stored_rows(index, page=16) == (texts, phonemes) and calls == [16, 16, 16, 7]
    monkeypatch.undo()
    from_texts = keyword_reranker(embedding, texts)

    def no_espeak(text):
        raise AssertionError(f"phonemized a stored chunk again: {text[:40]!r}")

    monkeypatch.setattr(seal_rag.keyword_rerank, "phonemize", no_espeak)
    monkeypatch.setattr(seal_rag.retrieve, "PROGRESS_FROM", 39)  # a big index's bar, on stderr
    from_store = index_keyword_reranker(embedding, index, show_progress=True)
    assert "Reading the index's words" in capsys.readouterr().err
    assert from_store._words == from_texts._words and (from_store.idf == from_texts.idf).all()
    lm, again = from_store.decoder.lm, from_texts.decoder.lm
    states = np.array([lm.start] + [lm.advance(lm.start, k) for k in range(lm.size)])
    assert np.array_equal(lm.rows(states), again.rows(states))  # the same phoneme model of the knowledge base


def test_ingest_keeps_the_phonemes_of_an_index_made_before_it_kept_them(embedding, tmp_path):
    from scipy import sparse

    db = tmp_path / "db"
    index = SealIndex.open(embedding, db, create=True)
    ingest_folder(embedding, DEMOS / "kb", index, show_progress=False)
    query = embedding.embed_texts(["Who discovered oxygen?"])[0]
    expected, stored = [(h.id, h.score) for h in index.query(query, 10)], stored_rows(index)
    with index.phonetic.writing() as phonetic:  # rows as an older ingest wrote them: no phonemes
        ids = sorted(phonetic.live_ids())
        rows = sparse.vstack([_matrix(s, phonetic.width) for s in phonetic.segments])[phonetic.rows_of(ids)]
        phonetic.upsert(ids, rows)
    old = SealIndex.open(embedding, db)
    assert set(stored_rows(old)[1]) == {None} and len(old.phonetic.ids_without_phonemes()) == 39
    summary = ingest_folder(embedding, DEMOS / "kb", old, show_progress=False)
    assert summary.added == 0 and stored_rows(old) == stored and not old.phonetic.ids_without_phonemes()
    assert [(h.id, h.score) for h in SealIndex.open(embedding, db).query(query, 10)] == expected  # vectors untouched


@pytest.mark.slow
def test_search_ranks_exactly_as_dense_joined_on_real_squad_passages(embedding, tmp_path):
    """Every SQuAD dev paragraph of the data folder ($SEAL_RAG_DATA: 2,067; else the 10% in tests/data),
    100 typed questions and 40 weighed otherwise, top 10: the same ids and scores (1e-5) as exact
    dense joined search (cosines; dot products for the others)."""
    import os

    from seal_rag.bench.data import ENV
    from seal_rag.bench.heldout import load_set

    from .conftest import MINI_DATA

    squad = load_set("squad-holdout", Path(os.environ.get(ENV) or MINI_DATA))
    index = SealIndex.open(embedding, tmp_path / "db", create=True)
    vectors = embedding.embed_texts(squad.passages)  # (passages, 8576): the joined vectors, searched exactly below
    metadatas = [{"title": pid.rsplit("_", 1)[0], "n": i % 7} for i, pid in enumerate(squad.passage_ids)]
    index.upsert(squad.passage_ids, vectors, squad.passages, metadatas)
    questions = embedding.embed_texts([q.text for q in squad.queries[:100]])
    # Queries weighed otherwise (as a spelled spoken query is: `SpeechEmbedding.weighted`) rank by their dot product.
    reweighed = [embedding.weighted(*embedding.split(q[None]), weight)[0] for q, weight in zip(questions[:40], [0.3, 0.7, 0.99] * 14)]
    for where in (None, {"n": {"$in": [0, 3]}}):
        allowed = np.array([where is None or m["n"] in (0, 3) for m in metadatas])
        for query in [*questions, *reweighed]:
            exact = np.where(allowed, vectors @ query, -np.inf)
            order = np.argsort(-exact, kind="stable")[:10]
            hits = index.query(query, 10, where)
            assert [h.id for h in hits] == [squad.passage_ids[i] for i in order]
            assert np.allclose([h.score for h in hits], exact[order], atol=1e-5)
