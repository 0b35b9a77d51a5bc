"""Benchmark smoke runs: the files are written and well-formed (figures are for humans)."""

import json

import pytest

from seal_rag.bench import latency


@pytest.mark.slow
def test_latency_quick_writes_json_markdown_and_plot(tmp_path):
    latency.main(["--quick", "--out", str(tmp_path)])
    payload = json.loads((tmp_path / "latency-quick.json").read_text())
    systems = {r["system"] for r in payload["results"]}
    assert systems == set(latency.SYSTEMS)
    for row in payload["results"]:
        assert row["stages"]["total"]["median_ms"] > 0 and row["queries"] == 3
    assert set(payload["ratio_of_medians_vs_seal"]["2"]) == set(latency.SYSTEMS[1:])
    table = (tmp_path / "latency-quick.md").read_text()
    assert table.count("\n| 2 s |") == len(latency.SYSTEMS)
    assert (tmp_path / "latency-quick.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
