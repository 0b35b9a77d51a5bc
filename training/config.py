"""Read a training config (TOML). One file holds every setting of a run, data to release."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Callable

from seal_rag.safe_text import for_terminal

from .config_check import check_config


def load_config(path: str | Path) -> dict:
    """Parse a config; `inherit = "base.toml"` at the top merges this file over another.
    A missing, unreadable, malformed or misspelt file ends the command with a one-line error."""
    config = _load_chain(Path(path), [])
    check_config(config, for_terminal(str(path)))
    config["_path"] = str(path)
    return config


def _load_chain(path: Path, inheriting: list[Path]) -> dict:
    """`path`'s settings merged over those it inherits; `inheriting` are the files that inherit
    it, nearest last, so a loop is seen instead of recursing until Python gives up."""
    config = _read(path, inheriting[-1] if inheriting else None)
    parent = config.pop("inherit", None)
    if parent is None:
        return config
    shown = for_terminal(str(path))
    if not isinstance(parent, str):
        raise SystemExit(f"error: config {shown} sets inherit = {for_terminal(repr(parent))}: give the inherited config's file name, "
                         'e.g. inherit = "base.toml"')
    parent_path = path.parent / parent
    if parent_path.resolve() in {p.resolve() for p in [*inheriting, path]}:
        raise SystemExit(f"error: config {shown} inherits {for_terminal(parent)}, which is already in its chain of inherits: "
                         "break the loop")
    return _merge(_load_chain(parent_path, [*inheriting, path]), config)


def _read(path: Path, inherited_by: Path | None) -> dict:
    """One file's own settings; `inherited_by` is named in the errors, as the file to fix."""
    shown = for_terminal(str(path)) + (f" (inherited by {for_terminal(str(inherited_by))})" if inherited_by else "")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SystemExit(f"error: config {shown} does not exist: give a .toml file (the recipe's are in training/configs/)") from None
    except IsADirectoryError:
        raise SystemExit(f"error: config {shown} is a folder: give one .toml file in it") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise SystemExit(f"error: config {shown} cannot be read ({reason}): give a readable .toml file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SystemExit(f"error: config {shown} is not valid TOML ({for_terminal(error)}): fix that line") from None


def require(config: dict, section: str, keys: tuple[str, ...]) -> dict:
    """`config[section]`, having checked it sets `keys`: a run that reads a setting only at its
    first step or its release should not fail there, minutes or hours in."""
    shown = for_terminal(config.get("_path", "the config"))
    table = config.get(section)
    if not isinstance(table, dict):
        raise SystemExit(f"error: config {shown} has no [{section}] table: is it the config for this command?")
    missing = [key for key in keys if key not in table]
    if missing:
        raise SystemExit(f"error: [{section}] in {shown} lacks {', '.join(missing)}: set them (training/configs/ has examples)")
    return table


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


def positive_int(text: str) -> int:
    """An argparse type for a count such as --threads: 0 or less would fail deep in torch."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{for_terminal(text)} is not a whole number above 0")
    return value


def make_folder(path: Path, setting: str) -> None:
    """Create the folder a config names (with its parents), or stop in one line if it cannot be one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file there (FileExistsError), no permission, a read-only disk
        raise SystemExit(f"error: {setting} {for_terminal(str(path))} cannot be made a folder ({error.strerror}): "
                         "set another path in the config") from None


def run_command(main: Callable[[], None]) -> None:
    """Run a training command's `main`. Every long run here saves as it goes and resumes when
    rerun, so Ctrl-C (or SIGTERM) says that in one line instead of a traceback; so do
    seal-rag's own errors, such as a missing data folder."""
    from seal_rag.errors import SealError
    from seal_rag.stopping import Terminated, terminate_as_interrupt

    try:
        with terminate_as_interrupt():
            main()
    except SealError as error:  # seal-rag's own errors (no data folder, a bad model name) are one line already
        raise SystemExit(f"error: {error}") from None
    except (KeyboardInterrupt, Terminated) as stop:
        print("\nstopped: run the same command again to resume from the last saved step", file=sys.stderr)
        raise SystemExit(143 if isinstance(stop, Terminated) else 130) from None


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, then point the text sources at the data folder those arguments name."""
    from .text_sources import use_data

    args = parser.parse_args(argv)
    use_data(args.data)
    return args
