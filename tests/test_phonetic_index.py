"""The phonetic index scores exactly (up to its 2^-16 value steps), finds the top rows in two phases,
survives deletes and merges, and a crashed writer's files are cleaned up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seal_rag.phonetic_index import MANIFEST, MERGE_FANOUT, VALUE_SCALE, PhoneticIndex

WIDTH = 512


def sparse_rows(n: int, seed: int, nonzero: int = 40) -> np.ndarray:
    """`(n, WIDTH)` unit rows with `nonzero` random buckets each, like the phonetic half (but smaller)."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, WIDTH), np.float32)
    for row in rows:
        row[rng.choice(WIDTH, nonzero, replace=False)] = rng.random(nonzero)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def scored(index: PhoneticIndex, query: np.ndarray) -> dict[str, float]:
    buckets = np.flatnonzero(query)
    scores = index.scores(buckets, query[buckets])
    live = np.flatnonzero(np.isfinite(scores))
    return dict(zip(index.ids_at(live.tolist()), scores[live].tolist()))


@pytest.mark.parametrize("threads", [1, 2])
def test_scores_equal_dense_dot_products_through_upserts_deletes_and_merges(tmp_path, monkeypatch, threads):
    import seal_rag.phonetic_index

    # Two threads each sum half of a long query's buckets; here every query counts as long.
    monkeypatch.setattr(seal_rag.phonetic_index, "PARALLEL_POSTINGS", 0 if threads == 2 else 10**12)
    index = PhoneticIndex(tmp_path, WIDTH, "space")
    rows, ids = sparse_rows(300, 0), [f"c{i}" for i in range(300)]
    with index.writing():
        for start in range(0, 300, 10):  # 30 small batches, as ingest writes them: merged as they come
            index.upsert(ids[start : start + 10], rows[start : start + 10])
        index.delete(ids[:50])
        index.upsert(ids[60:70], rows[:10])  # replaced rows: the old ones must not score
    assert len(index.segments) < 30 // MERGE_FANOUT + MERGE_FANOUT
    expected = {i: rows[k] for k, i in enumerate(ids) if k >= 50}
    expected.update({ids[60 + k]: rows[k] for k in range(10)})
    query = sparse_rows(1, 1, nonzero=12)[0]
    reopened = PhoneticIndex(tmp_path, WIDTH, "space")  # what another process reads from disk
    for view in (index, reopened):
        got = scored(view, query)
        assert set(got) == set(expected) and view.live_count == 250
        # Each stored value is rounded to a step of 2^-16: a score moves by at most half a step per query weight.
        bound = np.abs(query).sum() * 0.5 / VALUE_SCALE
        assert max(abs(got[i] - float(v @ query)) for i, v in expected.items()) <= bound


def test_a_query_with_no_bucket_scores_zero(tmp_path):
    """Noise can be heard as no phoneme at all: every live row then scores 0, deleted ones -inf."""
    index = PhoneticIndex(tmp_path, WIDTH, "space")
    with index.writing():
        index.upsert(["a", "b", "c"], sparse_rows(3, 4))
        index.delete(["b"])
    scores = index.scores(np.zeros(0, np.int64), np.zeros(0))
    assert scores.dtype == np.float64 and sorted(scores.tolist()) == [-np.inf, 0.0, 0.0]


def test_another_space_reads_as_missing_and_stray_files_are_removed(tmp_path):
    index = PhoneticIndex(tmp_path, WIDTH, "space")
    with index.writing():
        index.upsert(["a", "b"], sparse_rows(2, 2))
    assert not PhoneticIndex(tmp_path, WIDTH, "another space").exists
    (tmp_path / "s999999999.rows.npy").write_bytes(b"half written by a writer that died")
    (tmp_path / f"{MANIFEST}.tmp").write_text("{")
    with index.writing():  # the next writer finds them unnamed by the manifest and removes them
        pass
    assert not (tmp_path / "s999999999.rows.npy").exists() and not (tmp_path / f"{MANIFEST}.tmp").exists()
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["rows"] == 2 and PhoneticIndex(tmp_path, WIDTH, "space").live_ids() == {"a", "b"}
    # An index of the previous format (float32 postings by bucket alone) reads as missing too:
    # SealIndex then rebuilds it from Chroma's text (tests/test_store.py).
    (tmp_path / MANIFEST).write_text(json.dumps(manifest | {"format": 1}))
    assert not PhoneticIndex(tmp_path, WIDTH, "space").exists


def test_a_reader_sees_a_writers_commit_after_refresh(tmp_path):
    writer, reader = PhoneticIndex(tmp_path, WIDTH, "space"), PhoneticIndex(tmp_path, WIDTH, "space")
    assert not reader.exists
    with writer.writing():
        writer.upsert(["a"], sparse_rows(1, 3))
    reader.refresh()
    assert reader.live_ids() == {"a"}


def test_wrong_width_is_refused(tmp_path):
    index = PhoneticIndex(tmp_path, WIDTH, "space")
    with index.writing(), pytest.raises(ValueError, match="expected width 512"):
        index.upsert(["a"], np.zeros((1, 8), np.float32))


def test_phonemes_stored_with_rows_follow_replacements_merges_and_reopening(tmp_path):
    index = PhoneticIndex(tmp_path, WIDTH, "space")
    rows, ids = sparse_rows(80, 5), [f"c{i}" for i in range(80)]
    with index.writing():
        for start in range(0, 80, 10):  # MERGE_FANOUT batches: merged into one segment
            index.upsert(ids[start : start + 10], rows[start : start + 10], [f"p{i}" for i in range(start, start + 10)])
        index.upsert(["c3"], rows[:1], ["replaced"])
        index.upsert(["bare"], rows[1:2])  # a writer that gave no phonemes (an index made before they were kept)
    assert any(s.size >= 70 for s in index.segments)  # the merge happened
    for view in (index, PhoneticIndex(tmp_path, WIDTH, "space")):
        assert view.phonemes_of(["c0", "c3", "c79", "bare", "missing"]) == ["p0", "replaced", "p79", None, None]
    with index.writing(), pytest.raises(ValueError, match="2 phoneme strings for 1 ids"):
        index.upsert(["x"], rows[:1], ["a", "b"])
    # A merge of segments with and without phonemes keeps none (they are re-made from the text).
    with index.writing():
        for k in range(MERGE_FANOUT):
            index.upsert([f"m{k}"], rows[k : k + 1], None if k else ["first"])
    assert index.phonemes_of(["m0", "m1"]) == [None, None]
    assert index.phonemes_of(["c0"]) == ["p0"]


@pytest.mark.parametrize("threads", [1, 2])
def test_two_phase_top_finds_the_exact_top_rows_and_skips_deleted_ones(tmp_path, monkeypatch, threads):
    """Forced into two phases (few candidates, a small first-phase share) over 2,000 rows in several
    segments: the top 10 are the exact top 10 for nearly every query, with exact scores, best first."""
    import seal_rag.phonetic_index as module

    monkeypatch.setattr(module, "CANDIDATES", 60)
    monkeypatch.setattr(module, "SHARE", 0.3)
    monkeypatch.setattr(module, "MIN_POSTINGS", 0)
    monkeypatch.setattr(module, "PARALLEL_POSTINGS", 0 if threads == 2 else 10**12)
    monkeypatch.setattr(module, "SEGMENT_ROWS", 700)
    index = PhoneticIndex(tmp_path, WIDTH, "space")
    rows, ids = sparse_rows(2000, 5), [f"c{i}" for i in range(2000)]
    with index.writing():
        index.upsert(ids, rows)
        index.delete(ids[:20])
    assert len(index.segments) == 3
    found = []
    for seed in range(20):
        query = rows[20 + seed * 7] * 0.8 + sparse_rows(1, 100 + seed, nonzero=30)[0] * 0.6  # near one row, plus noise
        buckets = np.flatnonzero(query)
        top_rows, top_scores = index.top(buckets, query[buckets], 10)
        exact = index.scores(buckets, query[buckets])
        truth = set(np.argsort(-exact, kind="stable")[:10].tolist())
        assert np.allclose(top_scores, exact[top_rows]) and np.all(np.diff(top_scores) <= 0)
        assert not set(index.ids_at(top_rows.tolist())) & set(ids[:20])  # deleted rows never come back
        assert index.ids_at(top_rows[:1].tolist()) == [ids[20 + seed * 7]]
        found.append(len(truth & set(top_rows.tolist())) / 10)
    assert np.mean(found) >= 0.95
