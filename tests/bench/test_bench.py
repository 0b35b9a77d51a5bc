"""Benchmark smoke runs: the files are written and well-formed (figures are for humans)."""

import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from seal_rag.bench import latency
from seal_rag.bench.accuracy import kept_from_earlier_run, shrink_knowledge_base
from seal_rag.bench.heldout import HeldOutSet, Query
from seal_rag.embedding import shipped_fingerprint

from ..conftest import MINI_DATA


@pytest.mark.slow
def test_latency_quick_writes_json_markdown_and_plot(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    latency.main(["--quick", "--data", str(MINI_DATA), "--out", str(tmp_path)])
    assert not list(scratch.glob("seal-latency-*"))  # its scratch index is removed, not left in /tmp
    payload = json.loads((tmp_path / "latency-quick.json").read_text())
    systems = {r["system"] for r in payload["results"]}
    assert systems == set(latency.SYSTEMS)
    for row in payload["results"]:
        assert row["stages"]["total"]["median_ms"] > 0 and row["queries"] == 3
    assert set(payload["ratio_of_medians_vs_seal"]["2"]) == set(latency.SYSTEMS[1:])
    assert payload["model_fingerprint"] == shipped_fingerprint()  # which weights (and architecture) were timed
    table = (tmp_path / "latency-quick.md").read_text()
    assert table.count("\n| 2 s |") == len(latency.SYSTEMS)
    assert (tmp_path / "latency-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _md_rows(path) -> list[list[str]]:
    """The table's body rows, cell by cell."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.slow
def test_accuracy_quick_with_adapt_scores_every_system_and_records_the_adaptation(tmp_path, heldout_data):
    """Run as a user runs it: `seal-rag bench accuracy` in a real process."""
    run = _seal_rag("bench", "accuracy", "--quick", "--adapt", "--sets", "commonvoice-100", "--data", heldout_data, "--out", tmp_path)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    payload = json.loads((tmp_path / "accuracy-adapt-quick.json").read_text())
    assert not (tmp_path / "accuracy-quick.json").exists()  # an --adapt run leaves the plain run's files alone
    [entry] = payload["results"]
    assert entry["set"] == "commonvoice-100" and entry["queries"] == 20 and entry["voices"] == ["human recordings"]
    assert entry["passages"] == 300  # --quick searches part of the knowledge base, gold passages included
    assert entry["command"] == payload["command"] and entry["command"].startswith("seal-rag bench accuracy --quick")
    whole = ["text-oracle", "seal", "seal-adapted", "cascade-greedy"]
    # The shipped model has a phonetic half: each system is also scored by its semantic half alone,
    # and SEAL by its phonetic half alone.
    halves = ["text-oracle/semantic", "seal/semantic", "seal/phonetic", "seal-adapted/semantic", "seal-adapted/phonetic",
              "cascade-greedy/semantic"]
    # ... and as `ask` ranks: decoded with the set's knowledge base, then keyword re-ranking.
    assert list(entry["systems"]) == whole + ["seal (as served)"] + halves
    for figures in entry["systems"].values():
        top = [figures[k]["mean"] for k in ("top1", "top3", "top10")]
        assert top == sorted(top) and 0.0 <= top[0] and top[-1] <= 1.0
    # Real recordings of short sentences: the true transcript and ASR both find their passage.
    assert entry["systems"]["text-oracle"]["top1"]["mean"] >= 0.9
    assert entry["systems"]["cascade-greedy"]["top1"]["mean"] >= 0.8
    adaptation = entry["adaptation"]
    assert adaptation["steps"] == 8 and 2 <= adaptation["sentences"] <= 64 and adaptation["train_seconds"] > 0
    rows = _md_rows(tmp_path / "accuracy-adapt-quick.md")
    assert [row[2] for row in rows] == whole + ["seal (as served)"] + halves
    _assert_png(tmp_path / "accuracy-adapt-quick.png")


def test_shrink_knowledge_base_keeps_every_gold_passage_and_the_order():
    dataset = HeldOutSet("toy", [f"p{i}" for i in range(50)], [f"text {i}" for i in range(50)],
                         [Query("q1", "?", frozenset({"p40"})), Query("q2", "?", frozenset({"p3", "p47"}))])
    shrink_knowledge_base(dataset, 10, seed=0)
    assert len(dataset.passage_ids) == 10 and {"p3", "p40", "p47"} <= set(dataset.passage_ids)
    assert dataset.passage_ids == sorted(dataset.passage_ids, key=lambda p: int(p[1:]))  # ids still match their texts
    assert dataset.passages == [f"text {p[1:]}" for p in dataset.passage_ids]


def test_accuracy_refuses_adapt_settings_that_seal_rag_adapt_refuses(tmp_path):
    run = _seal_rag("bench", "accuracy", "--adapt", "--adapt-steps", "0", "--out", tmp_path)
    stderr = run.stderr.decode()
    assert run.returncode == 2 and "--adapt-steps and --adapt-takes must be at least 1" in stderr and "Traceback" not in stderr
    assert not list(tmp_path.iterdir())  # refused before any work


def _seal_rag(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seal_rag.cli", *map(str, args)], capture_output=True, timeout=900)


def test_a_benchmark_without_its_data_is_a_one_line_error_that_says_how_to_get_it(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SEAL_RAG_DATA"}
    for args in (["latency", "--quick"], ["accuracy", "--quick", "--data", str(tmp_path / "nowhere")],
                 ["scale", "--quick", "--data", str(MINI_DATA)]):  # the mini folder holds no held-out set
        run = subprocess.run([sys.executable, "-m", "seal_rag.cli", "bench", *args, "--out", str(tmp_path)],
                             capture_output=True, text=True, timeout=300, env=env)
        assert run.returncode == 1, (args, run.stderr)
        [line] = run.stderr.strip().splitlines()
        assert line.startswith("error: ") and "build-data" in line and "Traceback" not in run.stderr, (args, line)
    assert not list(tmp_path.glob("*.json"))


def test_a_data_setting_naming_a_file_says_so(tmp_path):
    import pytest

    from seal_rag.bench.data import data_root
    from seal_rag.errors import DataNotFoundError

    (tmp_path / "data.tar").write_text("an archive, not unpacked")
    with pytest.raises(DataNotFoundError, match="data.tar is not a folder: pass --data DIR"):
        data_root(tmp_path / "data.tar")
    with pytest.raises(DataNotFoundError, match="nowhere does not exist"):
        data_root(tmp_path / "nowhere")


def test_robustness_corruptions_keep_their_promises():
    """Right SNR, same noise at every SNR of a kind, speed changes length, the phone cuts 5 kHz."""
    from seal_rag.bench.robustness import BY_NAME, CONDITIONS, corrupt

    rng = np.random.default_rng(0)
    clips = [0.1 * np.sin(np.arange(n) * 0.07).astype(np.float32) + 0.01 * rng.standard_normal(n).astype(np.float32)
             for n in (16000, 20000, 24000, 28000, 32000, 36000)]
    for condition in CONDITIONS:
        out = corrupt(condition, clips, seed=0)
        again = corrupt(condition, clips, seed=0)
        for clean, noisy, same in zip(clips, out, again):
            assert noisy.dtype == np.float32 and np.isfinite(noisy).all() and np.abs(noisy).max() <= 1.0
            assert np.array_equal(noisy, same), f"{condition.name} is not deterministic"
            expected = round(clean.size / condition.value) if condition.kind == "speed" else clean.size
            assert abs(noisy.size - expected) <= 1, condition.name
        if condition.kind in ("white", "babble"):
            noise = out[0] - clips[0]
            snr = 10 * np.log10(np.mean(clips[0] ** 2) / np.mean(noise**2))
            assert abs(snr - condition.value) < 0.5, f"{condition.name}: measured {snr:.1f} dB"
        if condition.kind in ("telephone", "reverb"):
            assert not np.allclose(out[0], clips[0], atol=1e-3), f"{condition.name} left the clip unchanged"
    quiet, loud = (corrupt(BY_NAME[name], clips, seed=0)[0] - clips[0] for name in ("white-20dB", "white-0dB"))
    assert np.corrcoef(quiet, loud)[0, 1] > 0.99
    tone = [(0.5 * np.sin(2 * np.pi * 5000 * np.arange(16000) / 16000)).astype(np.float32)] * 6
    phoned = corrupt(BY_NAME["telephone"], tone, seed=0)[0]
    assert np.sqrt(np.mean(phoned**2)) < 0.05 * np.sqrt(np.mean(tone[0] ** 2))


def test_robustness_resume_keeps_an_identical_runs_conditions_and_refuses_another_run(tmp_path):
    from types import SimpleNamespace

    from seal_rag.bench import robustness

    earlier = {"set": robustness.SET, "queries": 150, "passages": 2067, "voices": ["a", "b"], "seed": 0, "as_served": True,
               "model": "m", "trained": True, "model_fingerprint": "f1",
               "results": [{"name": "white-10dB", "systems": {}}, {"name": "clean", "systems": {}},
                           {"name": "reverb", "systems": {}}]}
    (tmp_path / "robustness.json").write_text(json.dumps(earlier))
    args = SimpleNamespace(out=tmp_path, quick=False, seed=0, conditions=["clean", "white-10dB", "telephone"], no_keywords=False)
    dataset = SimpleNamespace(queries=[None] * 150, passages=[None] * 2067)
    model = SimpleNamespace(name="m", trained=True, fingerprint="f1")

    kept = robustness.measured_before(args, dataset, ["a", "b"], model)
    # Only planned conditions survive, in the planned order; telephone is left to measure.
    assert [r["name"] for r in kept] == ["clean", "white-10dB"]

    with pytest.raises(SystemExit, match="seed"):
        robustness.measured_before(SimpleNamespace(**{**vars(args), "seed": 1}), dataset, ["a", "b"], model)
    with pytest.raises(SystemExit, match="as_served"):  # an earlier run without the as-served system
        robustness.measured_before(SimpleNamespace(**{**vars(args), "no_keywords": True}), dataset, ["a", "b"], model)
    with pytest.raises(SystemExit, match="queries"):
        robustness.measured_before(args, SimpleNamespace(queries=[None] * 10, passages=dataset.passages), ["a", "b"], model)
    with pytest.raises(SystemExit, match="model_fingerprint"):  # same name, retrained weights
        robustness.measured_before(args, dataset, ["a", "b"], SimpleNamespace(name="m", trained=True, fingerprint="f2"))
    assert robustness.measured_before(SimpleNamespace(**{**vars(args), "out": tmp_path / "none"}), dataset, [], model) == []
    (tmp_path / "robustness.json").write_text("{not json")
    with pytest.raises(SystemExit, match="bad JSON"):
        robustness.measured_before(args, dataset, ["a", "b"], model)


@pytest.mark.slow
def test_robustness_quick_writes_json_markdown_and_plot(tmp_path, heldout_data):
    from seal_rag.bench import robustness

    robustness.main(["--quick", "--data", str(heldout_data), "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "robustness-quick.json").read_text())
    assert payload["queries"] == 10 and payload["passages"] == 200
    assert [r["name"] for r in payload["results"]] == robustness.QUICK_CONDITIONS
    systems = ("seal", "cascade-greedy", robustness.SERVED)
    for result in payload["results"]:
        assert set(result["systems"]) == set(systems)
        for system, metrics in result["systems"].items():
            top1 = metrics["top1"]
            assert 0.0 <= top1["low"] <= top1["mean"] <= top1["high"] <= 1.0, (result["name"], system, top1)
            assert result["seconds_per_query"].get(system, 1) > 0  # the as-served system reuses seal's encoding
        assert len(result["examples"]) == 3 and all(e["question"] for e in result["examples"])
    assert 0.0 <= payload["text_oracle"]["top1"]["mean"] <= 1.0
    rows = _md_rows(tmp_path / "robustness-quick.md")
    assert len(rows) == 1 + 3 * len(robustness.QUICK_CONDITIONS)
    assert {(r[0], r[1]) for r in rows[1:]} == {(c, s) for c in robustness.QUICK_CONDITIONS for s in systems}
    _assert_png(tmp_path / "robustness-quick.png")


class _RandomTextTower:
    """Stands in for SpeechEmbedding in scale.grow: the name, space and dim a SealIndex checks."""

    name, space_fingerprint, dim = "fake", "fake-space", 384

    def embed_texts(self, texts):
        import numpy as np

        vectors = np.random.default_rng(len(texts)).standard_normal((len(texts), self.dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_scale_grow_counts_real_then_random(tmp_path):
    import numpy as np

    from seal_rag.bench.scale import Fill, grow
    from seal_rag.chunking import chunk_section
    from seal_rag.loaders import Section
    from seal_rag.store import SealIndex

    model = _RandomTextTower()
    index = SealIndex.open(model, tmp_path / "db", create=True)
    chunks = [c for i in range(150) for c in chunk_section(Section(f"doc{i}", "t", f"Sentence number {i}. It is real."))]
    fill, rng = Fill(), np.random.default_rng(0)
    grow(index, model, fill, 100, iter(chunks), chunks[:5], budget_seconds=1e9, rng=rng)
    assert (fill.real, fill.random, index.count()) == (100, 0, 100)
    grow(index, model, fill, 400, iter(chunks[100:]), chunks[:5], budget_seconds=1e9, rng=rng)
    assert (fill.real, fill.random, index.count(), fill.real_exhausted) == (150, 250, 400, True)
    grow(index, model, fill, 500, iter(chunks), chunks[:5], budget_seconds=0.0, rng=rng)  # budget spent: random only
    assert (fill.real, fill.random, index.count()) == (150, 350, 500)
    assert fill.real_seconds > 0 and fill.random_seconds > 0


def test_scale_real_chunks_go_on_into_the_documents_under_docs(tmp_path, monkeypatch):
    from seal_rag.bench import scale
    from seal_rag.chunking import chunk_section
    from seal_rag.loaders import read_document

    from ..conftest import DEMOS

    monkeypatch.setattr(scale, "TEXT_SETS", ())  # the data root below holds MedQuAD alone
    (tmp_path / "qa" / "medquad").mkdir(parents=True)
    (tmp_path / "qa" / "medquad" / "passages.jsonl").write_text(json.dumps({"passage_id": "m1", "text": "Rest helps."}) + "\n")
    chunks = list(scale.real_chunks(tmp_path, DEMOS / "kb"))
    documents = [c.text for p in sorted((DEMOS / "kb").iterdir()) for s in read_document(p)[0] for c in chunk_section(s)]
    assert [c.text for c in chunks] == ["Rest helps."] + documents and len(documents) > 1
    assert [c.text for c in scale.real_chunks(tmp_path)] == ["Rest helps."]


def test_scale_skips_the_sizes_that_would_not_fit_and_refuses_when_none_does(tmp_path, capsys):
    from seal_rag.bench.scale import fitting_sizes

    gb = 10**9
    # 8,576 wide: about 71 KB of disk and 35 KB of memory a vector, so 1M needs ~35 GB of RAM.
    kept, skipped = fitting_sizes([10_000, 100_000, 1_000_000], 8576, free_disk=200 * gb, free_memory=20 * gb, db=tmp_path)
    assert kept == [10_000, 100_000] and [s["size"] for s in skipped] == [1_000_000]
    assert 30 < skipped[0]["memory_gb"] < 40 and 60 < skipped[0]["disk_gb"] < 80
    assert "skipping 1,000,000 vectors of D=8,576" in capsys.readouterr().err
    assert fitting_sizes([1_000_000], 384, free_disk=200 * gb, free_memory=20 * gb, db=tmp_path) == ([1_000_000], [])
    with pytest.raises(SystemExit, match="none of --sizes fits"):
        fitting_sizes([100_000], 8576, free_disk=1 * gb, free_memory=20 * gb, db=tmp_path)


@pytest.mark.slow
def test_scale_quick_writes_json_markdown_and_plot_and_a_stopped_run_resumes(tmp_path, heldout_data, monkeypatch):
    import numpy as np

    from seal_rag.bench import scale
    from seal_rag.store import SealIndex

    # The plain 384-d collection follows the index to 2k chunks only: the 5k row has no plain figures.
    # The run stops where the 1M run once did: grown to its last size, killed measuring it.
    db, run = tmp_path / "db", tmp_path / "db-run"
    argv = ["--quick", "--plain-up-to", "2000", "--data", str(heldout_data), "--out", str(tmp_path), "--db", str(db)]
    probe, probed = scale.serving_memory, []

    def killed_at_the_second_size(*args):
        if probed:
            raise SystemExit("the serving probe failed: -9")
        probed.append(1)
        return probe(*args)

    monkeypatch.setattr(scale, "serving_memory", killed_at_the_second_size)
    with pytest.raises(SystemExit, match="-9"):
        scale.main(argv)
    monkeypatch.setattr(scale, "serving_memory", probe)
    first = json.loads((tmp_path / "scale-quick.json").read_text())["results"]
    state = json.loads((run / scale.PROGRESS).read_text())
    assert [r["size"] for r in first] == [2000] and state["results"] == first and state["fill"]["random"] > 0
    # A batch written after the last record (a kill between the index and the record) is undone on resuming.
    from seal_rag.embedding import SpeechEmbedding

    model = SpeechEmbedding.from_pretrained()
    index = SealIndex.open(model, db)
    extra = [f"synthetic-{state['fill']['random'] + i}" for i in range(3)]
    index.upsert(extra, model.embed_texts(["stray one", "stray two", "stray three"]), ["a", "b", "c"], [{"source": "stray"}] * 3)
    with (run / "semantic.f32").open("ab") as halves:
        halves.write(np.ones((3, 384), np.float32).tobytes())
    del index
    with pytest.raises(SystemExit, match="without --resume|already holds"):
        scale.main(argv)  # a new run never overwrites one that can be resumed
    changed = [a if a != "2000" else "5000" for a in argv]  # --plain-up-to
    with pytest.raises(SystemExit, match="resume it with the same options"):
        scale.main(changed + ["--resume"])
    scale.main(argv + ["--resume"])
    assert SealIndex.open(model, db).count() == 5000 and (run / "semantic.f32").stat().st_size == 5000 * 384 * 4
    payload = json.loads((tmp_path / "scale-quick.json").read_text())
    assert payload["results"][0] == first[0] and payload["results"][1]["rss_growth_mb"] is None
    from seal_rag.config import DEFAULT_MODEL, MODELS_DIR, SealConfig

    shipped = SealConfig.load(MODELS_DIR / DEFAULT_MODEL / "config.json")
    assert payload["dim"] == shipped.dim + shipped.phonetic_dim and payload["k"] == 10 and payload["queries"] == 20
    assert payload["sizes_planned"] == scale.QUICK_SIZES and payload["sizes_skipped"] == []
    results = payload["results"]
    assert [r["size"] for r in results] == scale.QUICK_SIZES
    for row in results:
        assert row["real"] + row["random"] == row["size"] and row["recall_at_k"] >= 0.9
        assert 0 < row["median_ms"] <= row["p95_ms"] and row["first_query_ms"] > 0
        assert row["disk_mb"] > 0 and row["add_seconds"] > 0 and row["ingest_chunks_per_second"] > 0
        # Text, metadata and Chroma's full-text index are a real part of the disk, counted apart.
        assert 0 < row["text_metadata_disk_mb"] < row["disk_mb"]
        assert row["vectors_indexes_disk_mb"] == pytest.approx(row["disk_mb"] - row["text_metadata_disk_mb"])
        assert row["phonetic_disk_mb"] < row["vectors_indexes_disk_mb"]
        # Serving holds the keyword tables `seal-rag serve` builds at start: part of its memory.
        assert row["keyword_tables_seconds"] > 0 and 0 < row["keyword_tables_anon_mb"] <= row["serving_rss_anon_mb"]
        assert row["keyword_tables_load_seconds"] > 0 and 0 < row["keyword_tables_disk_mb"] < row["vectors_indexes_disk_mb"]
    assert results[0]["real"] > 0, "20 s of real ingest produced no vectors"
    assert results[0]["disk_mb"] < results[1]["disk_mb"]
    assert results[0]["plain_disk_mb"] > 0 and results[0]["disk_ratio_to_plain"] > 1
    assert results[1]["plain_disk_mb"] is None and results[1]["disk_ratio_to_plain"] is None
    ingest = payload["ingest"]
    assert ingest["real"] == results[-1]["real"] and ingest["chunks_per_second"] > 0
    assert ingest["budget_seconds"] == pytest.approx(20)
    rows = _md_rows(tmp_path / "scale-quick.md")
    assert [r[0] for r in rows] == [f"{s:,}" for s in scale.QUICK_SIZES]
    assert rows[0][-4] != "-" and rows[1][-4:-2] == ["-", "-"]  # plain 384-d kB/chunk, disk / plain
    assert rows[1][7] == "- (resumed)"  # memory growth while building: the resumed process never held it empty
    _assert_png(tmp_path / "scale-quick.png")


@pytest.mark.slow
def test_encode_writes_its_figures(tmp_path):
    from seal_rag.bench import encode

    encode.main(["--clips", "3", "--repeats", "1", "--data", str(MINI_DATA), "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "encode.json").read_text())
    assert payload["model_fingerprint"] == shipped_fingerprint()  # which weights (and architecture) were timed
    assert payload["clips"] == 3
    seconds = payload["median_seconds"]
    assert len(seconds) == 5 and all(s > 0 for s in seconds.values())
    assert -1.0 <= payload["cosine_real_vs_padded"]["vector_min"] <= payload["cosine_real_vs_padded"]["vector_median"] <= 1.0
    assert len(_md_rows(tmp_path / "encode.md")) == 9


@pytest.mark.slow
def test_ask_writes_stage_medians_for_every_system(tmp_path, monkeypatch):
    import tempfile

    from seal_rag.bench import ask

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ask.main(["--chunks", "40", "--queries", "3", "--db", str(tmp_path / "db"), "--data", str(MINI_DATA), "--out", str(tmp_path)])
    assert not list(scratch.iterdir())  # its corpus and clips are gone; the index stays where --db put it
    with pytest.raises(SystemExit, match="already holds"):  # a second run would mix two corpora in one index
        ask.main(["--chunks", "40", "--queries", "3", "--db", str(tmp_path / "db"), "--data", str(MINI_DATA), "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "ask.json").read_text())
    assert payload["model_fingerprint"] == shipped_fingerprint()
    assert payload["chunks"] >= 40 and payload["queries"] == 3
    assert payload["ingest_chunks_per_second"] > 0 and payload["peak_rss_mb"] > 0 and payload["keyword_setup_seconds"] > 0
    medians = payload["median_ms"]
    served, vector = medians["speech (as served)"], medians["speech --no-keywords"]
    # Speech mode never transcribes, cascade mode never runs the speech tower; only the served path re-ranks.
    assert served["encode"] > 0 and served["keywords"] > 0 and served["kb_decoding"] > 0 and served["transcribe"] is None
    assert vector["encode"] > 0 and vector["keywords"] is None
    for name in ("cascade (beam 5, 30 s window)", "cascade (beam 1, fitted window)"):
        assert medians[name]["transcribe"] > 0 and medians[name]["encode"] is None
    assert payload["speech_to_fitted_cascade"] == pytest.approx(served["total"] / medians["cascade (beam 1, fitted window)"]["total"])
    assert [row[0] for row in _md_rows(tmp_path / "ask.md")] == list(medians)


def test_an_accuracy_run_keeps_the_sets_it_does_not_measure_again_but_only_for_the_same_weights(tmp_path):
    report = tmp_path / "accuracy-adapt.json"
    earlier = {"model_fingerprint": "abc", "quick": False, "command": "seal-rag bench accuracy --sets a b", "date": "d1",
               "results": [{"set": "a", "queries": 1}, {"set": "b", "queries": 2, "command": "its own", "date": "d0"}]}
    report.write_text(json.dumps(earlier))
    # b is kept with the command that made it; a, measured again, is dropped.
    assert kept_from_earlier_run(report, "abc", False, ["a"]) == [{"set": "b", "queries": 2, "command": "its own", "date": "d0"}]
    # An entry from before entries carried their command takes its report's.
    assert kept_from_earlier_run(report, "abc", False, ["b"]) == [{"set": "a", "queries": 1, "command": earlier["command"], "date": "d1"}]
    assert kept_from_earlier_run(report, "other weights", False, ["c"]) == []
    assert kept_from_earlier_run(report, "abc", True, ["c"]) == []  # a --quick run starts its own report
    assert kept_from_earlier_run(tmp_path / "missing.json", "abc", False, ["a"]) == []
    (tmp_path / "garbled.json").write_text("{not json")
    assert kept_from_earlier_run(tmp_path / "garbled.json", "abc", False, ["a"]) == []


@pytest.mark.slow
def test_ingest_quick_on_documents_times_both_sides_and_checks_the_tolerance(tmp_path):
    from seal_rag.bench import ingest
    from seal_rag.chunking import chunk_section
    from seal_rag.loaders import read_document

    from ..conftest import DEMOS

    ingest.main(["--quick", "--docs", str(DEMOS / "kb"), "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "ingest-quick.json").read_text())
    expected = sum(len(chunk_section(s)) for p in sorted((DEMOS / "kb").iterdir()) for s in read_document(p)[0])
    assert payload["chunks"] == expected and payload["documents"] == "--docs"
    rates = payload["chunks_per_second"]
    assert set(rates) == {"seal-rag ingest", "sentence-transformers fp32"} and all(r > 0 for r in rates.values())
    assert payload["speedup_over_plain"] == pytest.approx(rates["seal-rag ingest"] / rates["sentence-transformers fp32"])
    assert payload["least_cosine_to_fp32"] >= 0.9999
    rows = _md_rows(tmp_path / "ingest-quick.md")
    assert [r[0] for r in rows[:2]] == ["seal-rag ingest", "sentence-transformers fp32"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="holds no .txt"):
        ingest.main(["--quick", "--docs", str(tmp_path / "empty"), "--out", str(tmp_path)])


def test_scale_recall_counts_an_answer_tied_with_the_kth_and_misses_below_it():
    from seal_rag.bench.scale import found_share

    exact = np.array([0.9, 0.8, 0.7, 0.7, 0.1])  # rows 2 and 3 tie at the 3rd best
    assert found_share(exact, [0, 1, 2], 3) == found_share(exact, [0, 1, 3], 3) == 1.0
    assert found_share(exact, [0, 1, 4], 3) == pytest.approx(2 / 3)
    assert found_share(exact, [0], 3) == pytest.approx(1 / 3)  # fewer answers than asked: the rest are misses
    assert found_share(exact[:2], [1, 0], 3) == 1.0  # fewer chunks than k: every chunk is an answer
