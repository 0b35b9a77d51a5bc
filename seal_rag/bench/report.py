"""Every benchmark writes the same pair: a JSON result file and a Markdown table."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from ..errors import SealError


def machine() -> dict:
    import os

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "python": sys.version.split()[0], "torch": torch.__version__}


def model_fields(model) -> dict:
    """Which speech tower a run measured: its name, whether it is trained, and its weights'
    fingerprint, which tells a retrained model with the same name apart."""
    return {"model": model.name, "trained": model.trained, "model_fingerprint": model.fingerprint}


def command_line() -> str:
    """How this run was started, as a user would type it: `seal-rag bench NAME ...`, with paths
    outside the working folder shown as DIR (a report must not carry one machine's folders)."""
    if "bench" in sys.argv:
        args = sys.argv[sys.argv.index("bench") + 1 :]
    else:  # `python -m seal_rag.bench.NAME ...`
        args = [Path(sys.argv[0]).stem, *sys.argv[1:]]
    return "seal-rag bench " + " ".join(_shown(arg) for arg in args)


def _shown(arg: str) -> str:
    path = Path(arg)
    if not path.is_absolute():
        return arg
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return "DIR"


def write_report(out: Path, name: str, payload: dict, header: list[str], rows: list[list]) -> tuple[Path, Path]:
    """Write `out/name.json` and `out/name.md`; print the table too."""
    out.mkdir(parents=True, exist_ok=True)
    # A report that joins several runs (seal_rag.bench.accuracy) brings its own commands and dates.
    payload = {**payload, "machine": machine(), "date": payload.get("date", time.strftime("%Y-%m-%d %H:%M:%S")),
               "command": payload.get("command", command_line())}
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2) + "\n")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    table = "\n".join(lines) + "\n"
    md_path.write_text(f"# {name}\n\nCommand: `{payload['command']}`\n\n{table}")
    print(table)
    print(f"wrote {json_path} and {md_path}")
    return json_path, md_path


def pyplot():
    """matplotlib's pyplot, drawing to files only. matplotlib is the `bench` extra, not a core
    dependency, so its absence is a one-line error, raised before a benchmark starts its work."""
    try:
        import matplotlib
    except ImportError:
        raise SealError("the benchmarks draw their figures with matplotlib: pip install 'seal-rag[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
