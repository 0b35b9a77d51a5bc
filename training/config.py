"""Read a training config (TOML). One file holds every setting of a run, data to release."""

from __future__ import annotations

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
