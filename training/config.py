"""Read a training config (TOML). One file holds every setting of a run, data to release."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path


def load_config(path: str | Path) -> dict:
    """Parse a config; `inherit = "base.toml"` at the top merges this file over another."""
    path = Path(path)
    config = tomllib.loads(path.read_text())
    parent = config.pop("inherit", None)
    if parent:
        config = _merge(load_config(path.parent / parent), config)
    config["_path"] = str(path)
    return config


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def command_line(description: str) -> argparse.ArgumentParser:
    """The arguments every training command shares: `--config` (required) and the data setting."""
    from seal_rag.bench.data import add_data_argument

    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument("--config", required=True)
    add_data_argument(parser)
    return parser


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, then point the text sources at the data folder those arguments name."""
    from .text_sources import use_data

    args = parser.parse_args(argv)
    use_data(args.data)
    return args
