"""Write BENCHMARKS.md from the latest full-run results in `benchmarks/`.

    python -m seal_rag.bench.summary [--dir benchmarks] [--out BENCHMARKS.md]

Each benchmark writes `NAME.json`, `NAME.md` and sometimes `NAME.png`; this puts their tables,
commands, machines and plots on one page, with the comparison against the paper's claims
computed from the same files, so the page can never disagree with the results. Quick
(smoke) runs are left out unless `--quick` asks for them instead (the smoke test does).
`benchmarks/notes.md`, if present, is appended as written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..embedding import shipped_fingerprint
from .served import SERVED

SECTIONS = {  # file stem -> heading, in page order
    "accuracy": "Accuracy on the held-out sets",
    "accuracy-adapt": "Accuracy on the held-out sets after `seal-rag adapt` to each set's knowledge base",
    "robustness": "Robustness: Top-1 under noise, speed, telephone band and reverberation",
    "latency": "Latency per stage, warm models, one query at a time",
    "scale": "Scale: search time, recall, memory and disk by index size (Chroma semantic half + phonetic index)",
    "ingest": "Ingest throughput against plain sentence-transformers MiniLM (fp32) on the same chunks",
    "encode": "Encoding: real-length features against 30 s padding, and the cascade",
    "ask": "`seal-rag ask` end to end on a 10,000-chunk index",
    "serve": "`seal-rag serve` under load: concurrent clients on loopback",
}
PAPER = {"seal_top1": 0.8636, "cascade_top1": 0.7945, "latency_cut": 0.50}


def is_stale(result: dict, shipped: str | None) -> bool:
    """A result measured with another model than the shipped one, or with no record of its model.

    Every figure depends on the model: accuracy on its weights, and speed and size on its
    architecture too (the vectors' width), so the fingerprint decides, for every benchmark."""
    return result.get("model_fingerprint") != shipped


def claims(results: dict[str, dict], stale: set[str] = frozenset()) -> list[str]:
    """Lines comparing our figures with the paper's two claims, where the results exist."""
    lines, said = [], set()
    for stem, system, name in (("accuracy", SERVED, "SEAL as served (`ask`)"), ("accuracy", "seal", "SEAL"),
                               ("accuracy-adapt", "seal", "SEAL"), ("accuracy-adapt", "seal-adapted", "SEAL after adapt")):
        if stem in stale:
            name += " (an earlier model)"
        for entry in results[stem]["results"] if stem in results else []:
            systems = entry["systems"]
            # An adapt run scores the shipped tower too: say a set's figure once, the plain run's first.
            if "cascade-beam5" not in systems or system not in systems or (entry["set"], name) in said:
                continue
            said.add((entry["set"], name))
            seal, cascade = systems[system]["top1"], systems["cascade-beam5"]["top1"]
            verdict = "wins" if seal["low"] > cascade["high"] else ("loses" if seal["high"] < cascade["low"] else "ties")
            lines.append(f"- {entry['set']} ({entry['queries']} queries): {name} Top-1 {seal['mean']:.1%} vs cascade (beam 5) "
                         f"{cascade['mean']:.1%}: {name} **{verdict}**.")
    latency = results.get("latency")
    for seconds, ratios in (latency or {}).get("ratio_of_medians_vs_seal", {}).items():
        cut = 1 - 1 / ratios["cascade-beam5"]
        lines.append(f"- {float(seconds):.0f} s queries: SEAL's median latency is {cut:.0%} below the beam-5 cascade's "
                     f"({ratios['cascade-beam5']:.1f}x; greedy {ratios['cascade-greedy']:.1f}x, fitted window "
                     f"{ratios['cascade-fitted']:.1f}x).")
    return lines


def label(item: str | int) -> str:
    """A condition's name as it is; a size as 1,000,000."""
    return f"{item:,}" if isinstance(item, int) else item


def section(stem: str, heading: str, folder: Path, result: dict, stale: bool = False) -> list[str]:
    table = (folder / f"{stem}.md").read_text().split("\n\n", 2)[-1].strip()  # drop title and command lines
    machine = result["machine"]
    lines = [f"## {heading}", "", f"Command: `{result['command']}`  ", f"Run {result['date']} on {machine['cpu_count']} CPU cores, "
             f"torch {machine['torch']} ({machine['torch_threads']} threads), Python {machine['python']}, {machine['platform']}.",
             *([f"Speech tower: {result['model']}" + (f" ({'released' if result['trained'] else 'experimental or untrained'})."
                                                        if "trained" in result else ".")] if "model" in result else []), *([result["summary"]] if "summary" in result else []),
             *(["", f"**Measured with another model than the one shipped now** (fingerprint "
                f"{result.get('model_fingerprint') or 'not recorded'}): rerun the command above for the current one."]
               if stale else []), "", table, ""]
    # Robustness and scale write after every condition or size, so a stopped run shows here.
    planned = [label(p) for p in result.get("conditions_planned") or result.get("sizes_planned") or []]
    measured = [label(r.get("name", r.get("size"))) for r in result["results"]] if planned else []
    skipped = {label(s["size"]): s for s in result.get("sizes_skipped", [])}  # scale: would not fit this machine
    if len(measured) + len(skipped) < len(planned):
        what = "conditions" if "conditions_planned" in result else "sizes"
        missing = [c for c in planned if c not in measured and c not in skipped]
        lines.append(f"**Partial run:** {len(measured)} of {len(planned)} {what} measured; missing: {', '.join(missing)}.")
    for size, s in skipped.items():
        lines.append(f"**Skipped {size} vectors:** they need about {s['memory_gb']:.0f} GB of memory and {s['disk_gb']:.0f} GB of disk, more than this machine had free.")
    for entry in result.get("results", []) if stem.startswith("accuracy") else []:
        lines.append(f"- {entry['set']}: {entry['queries']} queries over {entry['passages']} passages; voices: {', '.join(entry['voices'])}")
        if "adaptation" in entry:  # what `adapt` was given and what it cost
            a = entry["adaptation"]
            # Runs before `takes` existed spoke each sentence once.
            takes = a.get("takes", 1)
            heard = f"{a['sentences'] // takes} sentences x {takes} takes" if takes > 1 else f"{a['sentences']} spoken sentences"
            lines.append(f"  - adapt: {heard} of the passages, {a['steps']} steps, "
                         f"{a['speak_seconds'] + a['train_seconds']:.0f} s ({a['speak_seconds']:.0f} s speaking and encoding)")
    if (folder / f"{stem}.png").is_file():
        lines += ["", f"![{stem}]({folder.name}/{stem}.png)"]
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("benchmarks"))
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--quick", action="store_true", help="summarise the --quick smoke results instead")
    args = parser.parse_args(argv)
    suffix = "-quick" if args.quick else ""
    results = {stem: json.loads((args.dir / f"{stem}{suffix}.json").read_text())
               for stem in SECTIONS if (args.dir / f"{stem}{suffix}.json").is_file()}
    if not results:
        raise SystemExit(f"no full-run results in {args.dir}/: run `seal-rag bench accuracy` (and the others) first")
    shipped = shipped_fingerprint()
    stale = {stem for stem, result in results.items() if is_stale(result, shipped)}
    page = ["# Benchmarks", "", "Generated by `python -m seal_rag.bench.summary` from the files in "
            f"`{args.dir.name}/`. Rerun any command below to refresh its section. The shipped model's fingerprint "
            f"is {shipped}; a section measured with another model says so.", "",
            "## Against the paper's claims", "", f"The paper reports SEAL Top-1 {PAPER['seal_top1']:.2%} against the cascade's "
            f"{PAPER['cascade_top1']:.2%}, and a latency {PAPER['latency_cut']:.0%} below the cascade's.", "",
            *(claims(results, stale) or ["- (no accuracy or latency results yet)"]), ""]
    for stem, heading in SECTIONS.items():
        page += (section(stem + suffix, heading, args.dir, results[stem], stem in stale) if stem in results
                 else [f"## {heading}", "", "Not run yet.", ""])
    notes = args.dir / "notes.md"  # what a reader must know that the numbers cannot say, kept by hand
    if notes.is_file():
        page += ["## Notes on these runs", "", notes.read_text().strip(), ""]
    args.out.write_text("\n".join(page))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
