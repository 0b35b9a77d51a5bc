"""BENCHMARKS.md is computed from the result files: the claims lines must follow the figures."""

import pytest

from seal_rag.bench import summary
from seal_rag.bench.report import write_report


def interval(mean, half=0.02):
    return {"mean": mean, "low": mean - half, "high": mean + half}


def accuracy_payload(seal_top1, cascade_top1):
    systems = {name: {"top1": interval(v), "top3": interval(v), "top10": interval(v), "mrr@10": interval(v)}
               for name, v in (("seal", seal_top1), ("cascade-beam5", cascade_top1))}
    return {"model_fingerprint": summary.shipped_fingerprint(),
            "results": [{"set": "squad-holdout", "queries": 500, "passages": 2067, "voices": ["espeak-ng en-us-nyc"],
                         "systems": systems}]}


def rendered(folder) -> str:
    """BENCHMARKS.md as `python -m seal_rag.bench.summary` writes it from the reports in `folder`."""
    out = folder / "BENCHMARKS.md"
    summary.main(["--dir", str(folder), "--out", str(out)])
    return out.read_text()


def test_claims_follow_the_figures(tmp_path):
    write_report(tmp_path, "accuracy", accuracy_payload(0.10, 0.40), ["set"], [["squad-holdout"]])
    write_report(tmp_path, "latency", {"ratio_of_medians_vs_seal": {"5": {"cascade-beam5": 4.0, "cascade-greedy": 3.0,
                                                                         "cascade-fitted": 1.5}}}, ["query"], [["5 s"]])
    (tmp_path / "latency.png").write_bytes(b"\x89PNG")
    page = rendered(tmp_path)
    assert "SEAL Top-1 10.0% vs cascade (beam 5) 40.0%: SEAL **loses**" in page
    assert "median latency is 75% below the beam-5 cascade's (4.0x" in page
    assert f"![latency]({tmp_path.name}/latency.png)" in page
    assert "voices: espeak-ng en-us-nyc" in page
    assert "## Scale: search time, recall, memory and disk by index size (Chroma semantic half + phonetic index)\n\nNot run yet." in page

    write_report(tmp_path, "accuracy", accuracy_payload(0.41, 0.40), ["set"], [["squad-holdout"]])
    assert "SEAL **ties**" in rendered(tmp_path)

    adapted = accuracy_payload(0.30, 0.40)  # an adapt run: the shipped tower's own figure is the plain run's
    adapted["results"][0]["systems"]["seal-adapted"] = adapted["results"][0]["systems"]["seal"]
    write_report(tmp_path, "accuracy-adapt", adapted, ["set"], [["squad-holdout"]])
    page = rendered(tmp_path)
    assert page.count("- squad-holdout (500 queries): SEAL Top-1") == 1 and "SEAL Top-1 41.0%" in page
    assert "SEAL after adapt Top-1 30.0% vs cascade (beam 5) 40.0%: SEAL after adapt **loses**" in page


def test_the_as_served_figure_gets_its_own_claim_beside_the_vectors(tmp_path):
    payload = accuracy_payload(0.40, 0.40)
    payload["results"][0]["systems"]["seal (as served)"] = {k: interval(0.60) for k in ("top1", "top3", "top10", "mrr@10")}
    write_report(tmp_path, "accuracy", payload, ["set"], [["squad-holdout"]])
    page = rendered(tmp_path)
    assert "SEAL as served (`ask`) Top-1 60.0% vs cascade (beam 5) 40.0%: SEAL as served (`ask`) **wins**" in page
    assert "SEAL Top-1 40.0% vs cascade (beam 5) 40.0%: SEAL **ties**" in page


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no full-run results"):
        summary.main(["--dir", str(tmp_path), "--out", str(tmp_path / "B.md")])


def test_a_stopped_robustness_run_is_marked_partial(tmp_path):
    result = {"conditions_planned": ["clean", "white-20dB", "reverb"], "results": [{"name": "clean"}, {"name": "white-20dB"}]}
    write_report(tmp_path, "robustness", result, ["condition"], [["clean"], ["white-20dB"]])
    assert "**Partial run:** 2 of 3 conditions measured; missing: reverb." in rendered(tmp_path)

    result["results"].append({"name": "reverb"})
    write_report(tmp_path, "robustness", result, ["condition"], [["clean"], ["white-20dB"], ["reverb"]])
    assert "Partial run" not in rendered(tmp_path)


def test_a_scale_run_stopped_before_its_largest_size_is_marked_partial(tmp_path):
    result = {"sizes_planned": [10_000, 100_000, 1_000_000], "results": [{"size": 10_000}, {"size": 100_000}]}
    write_report(tmp_path, "scale", result, ["vectors"], [["10,000"], ["100,000"]])
    assert "**Partial run:** 2 of 3 sizes measured; missing: 1,000,000." in rendered(tmp_path)


def test_a_scale_size_skipped_for_want_of_memory_is_named_and_not_called_partial(tmp_path):
    result = {"sizes_planned": [10_000, 100_000, 1_000_000], "results": [{"size": 10_000}, {"size": 100_000}],
              "sizes_skipped": [{"size": 1_000_000, "disk_gb": 71.3, "memory_gb": 34.8}]}
    write_report(tmp_path, "scale", result, ["vectors"], [["10,000"], ["100,000"]])
    text = rendered(tmp_path)
    assert "Partial run" not in text
    assert "**Skipped 1,000,000 vectors:** they need about 35 GB of memory and 71 GB of disk" in text


def test_an_adapt_run_gets_its_own_section_and_claim(tmp_path):
    payload = accuracy_payload(0.10, 0.40)
    entry = payload["results"][0]
    entry["systems"]["seal-adapted"] = entry["systems"]["cascade-beam5"]  # adapted ties the cascade here
    entry["adaptation"] = {"sentences": 2000, "steps": 300, "speak_seconds": 600.0, "train_seconds": 200.0}
    write_report(tmp_path, "accuracy-adapt", payload, ["set"], [["squad-holdout"]])
    page = rendered(tmp_path)
    assert "SEAL after adapt Top-1 40.0% vs cascade (beam 5) 40.0%: SEAL after adapt **ties**" in page
    assert "adapt: 2000 spoken sentences of the passages, 300 steps, 800 s (600 s speaking and encoding)" in page
    entry["adaptation"].update(sentences=4000, takes=2)
    write_report(tmp_path, "accuracy-adapt", payload, ["set"], [["squad-holdout"]])
    assert "adapt: 2000 sentences x 2 takes of the passages, 300 steps" in rendered(tmp_path)
    assert "## Accuracy on the held-out sets\n\nNot run yet." in page


def test_every_section_measured_with_another_or_an_unrecorded_model_is_flagged_by_fingerprint(tmp_path):
    payload = accuracy_payload(0.10, 0.40)
    payload["model_fingerprint"] = "0123456789abcdef"  # the weights before a new release
    write_report(tmp_path, "accuracy", payload, ["set"], [["squad-holdout"]])
    # Speed depends on the model too (its vectors' width): a latency run of other weights is flagged,
    # and so is a scale run that recorded no model; an encode run of the shipped model is not.
    write_report(tmp_path, "latency", {"ratio_of_medians_vs_seal": {}, "model_fingerprint": "0123456789abcdef"}, ["query"], [["5 s"]])
    write_report(tmp_path, "scale", {"results": []}, ["size"], [["10,000"]])
    write_report(tmp_path, "encode", {"model_fingerprint": summary.shipped_fingerprint()}, ["clips"], [["3"]])
    page = rendered(tmp_path)
    assert "SEAL (an earlier model) Top-1 10.0%" in page
    assert page.count("**Measured with another model than the one shipped now**") == 3
    assert "(fingerprint not recorded)" in page
    encode = page.split("## Encoding", 1)[1].split("\n## ", 1)[0]
    assert "Measured with another model" not in encode
    assert page.count("86.36%") == 1  # the paper's claim, stated once


def test_a_reports_command_names_the_bench_and_no_folder_of_this_machine(monkeypatch, tmp_path):
    from seal_rag.bench.report import command_line

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["/opt/x/seal_rag/bench/scale.py", "--data", "/srv/data", "--out", str(tmp_path / "out")])
    assert command_line() == "seal-rag bench scale --data DIR --out out"
    monkeypatch.setattr("sys.argv", ["seal-rag", "bench", "latency", "--quick"])
    assert command_line() == "seal-rag bench latency --quick"
