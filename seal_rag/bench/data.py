"""Where benchmark and training data live: one setting, `--data DIR`, else `$SEAL_RAG_DATA`.

Nothing here assumes a folder: with neither set, a command that needs data stops with one line
that says how to get it. The layout under the folder is the one `seal-rag bench build-data`
writes (README, "Benchmark data"):

    qa/squad-v1.1-dev/{passages,questions}.jsonl, split.json
    qa/{medquad,pubmedqa,covidqa}/{passages,questions}.jsonl
    speech/{ljspeech-385,commonvoice-100}/{passages,queries}.jsonl, audio/*.flac
    speech/fixtures/*.flac
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import DataNotFoundError
from ..safe_text import for_terminal

ENV = "SEAL_RAG_DATA"
HOW_TO_GET = "build it with `seal-rag bench build-data` (README, Benchmark data)"


def data_root(explicit: Path | str | None = None) -> Path:
    """The data folder: `explicit` (from `--data`), else `$SEAL_RAG_DATA`."""
    value = explicit or os.environ.get(ENV)
    if not value:
        raise DataNotFoundError(f"no data folder: pass --data DIR or set {ENV}; {HOW_TO_GET}")
    root = Path(value).expanduser()
    if not root.is_dir():
        state = "is not a folder" if root.exists() else "does not exist"
        raise DataNotFoundError(f"data folder {for_terminal(str(root))} {state}: pass --data DIR or set {ENV}; {HOW_TO_GET}")
    return root


def data_path(root: Path, *parts: str) -> Path:
    """`root/parts...`, which must exist: names the missing file and the set to build."""
    path = root.joinpath(*parts)
    if not path.exists():
        raise DataNotFoundError(f"{path} is missing: the data folder lacks the {parts[1] if len(parts) > 1 else parts[0]} set; {HOW_TO_GET}")
    return path


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, help=f"the benchmark data folder [default: ${ENV}]")
