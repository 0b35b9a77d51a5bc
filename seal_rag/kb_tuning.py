"""Knowledge-base tuning: where `seal-rag adapt` keeps its tuned model, and how `ask` picks it up.

Where a tuned model lives:
- a persistent index (`--db PATH`): inside it, at `PATH/tuned/<collection>/`, so it is
  copied, moved and deleted with the index it was made for;
- a Chroma server (`--chroma-host H --chroma-port P`): on the machine that ran `adapt`, at
  `<cache>/tuned/<H>-<P>/<collection>/` (`<cache>` is `$SEAL_RAG_CACHE`, else
  `~/.cache/seal_rag`). A server stores vectors, not model files, so every machine that asks
  keeps its own copy; the host is keyed as typed (`localhost` and `127.0.0.1` are two keys).

A tuned model is an ordinary model directory (`config.json`, `model.safetensors`; it loads with
`SpeechEmbedding.from_pretrained`) plus `tuning.json`, which records the base model it was
adapted from (name and fingerprint), the index and the run, and a short `README.md`. Only the
speech head differs from the base, so it has the base's `space_fingerprint` and queries the
index as it stands.

`ask` answers with the tuned model when no `--model` is given, unless `--no-tuned`. A tuned model
whose base is no longer the shipped model (seal-rag was upgraded) is stale: `ask` warns and
answers with the shipped model, until `seal-rag adapt` is run again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .arguments import check_collection
from .embedding import SpeechEmbedding, shipped_fingerprint
from .errors import ModelLoadError
from .model_sources import cache_dir
from .store import DEFAULT_COLLECTION, DEFAULT_DB, DEFAULT_PORT

TUNED = "tuned"
TUNING_FILE = "tuning.json"
FORMAT = 1  # of tuning.json


class StaleTuningWarning(UserWarning):
    """An index's tuned model cannot be used (its base model changed, or it is unreadable)."""


def tuned_dir(
    db: str | Path | None = None, host: str | None = None, port: int = DEFAULT_PORT, collection: str = DEFAULT_COLLECTION
) -> Path:
    """Where the tuned model of one collection lives (see the module docstring)."""
    check_collection(collection)  # it becomes a folder name: `../x` must not leave the index
    if host:
        server = re.sub(r"[^A-Za-z0-9._-]", "_", f"{host}-{port}")
        return cache_dir() / TUNED / server / collection
    return Path(db or DEFAULT_DB) / TUNED / collection


def save_tuned(adaptation, base: SpeechEmbedding, path: Path, index: str, collection: str) -> None:
    """Write the adapted model, `tuning.json` and a card to `path`, replacing any older tuned model.

    The directory is written beside `path` and renamed into place, so `ask` sees either the
    old tuned model or the new one, never half of one. A process killed between the two renames
    leaves no `path` but both complete models beside it: `choose_model` and the next `adapt` put
    the newer back (`_restore`).
    """
    path = Path(path)
    try:
        _write_tuned(adaptation, base, path, index, collection)
    except OSError as error:
        raise ModelLoadError(_cannot_write(path, error)) from None


def _cannot_write(path: Path, error: OSError) -> str:
    folder = next(p for p in path.parents if os.path.isdir(p))  # the one to fix: `tuned/` may not exist yet
    return f"cannot write the tuned model to {path} ({error.strerror or error}): make {folder} writable, then run `seal-rag adapt` again"


@contextlib.contextmanager
def tuning(path: Path):
    """Hold the right to replace the tuned model at `path` while a new one is made for it.

    Checked before the minutes of speaking and training, not after them: a file where a folder
    must be, a folder that cannot be written, another `adapt` of the same collection (two would
    race in the final renames). Leftovers of killed runs are put back or removed first.
    """
    path = Path(path)
    blocking = next((p for p in reversed([path, *path.parents]) if os.path.exists(p) and not os.path.isdir(p)), None)
    if blocking is not None:
        raise ModelLoadError(f"cannot write the tuned model to {path}: {blocking} is a file, not a folder: "
                             "move or delete it, then run `seal-rag adapt` again")
    staging = _beside(path, "tmp", os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(_beside(path, "lock"), "a")
    except OSError as error:
        raise ModelLoadError(_cannot_write(path, error)) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelLoadError(f"another `seal-rag adapt` is tuning {path}: wait for it to finish") from None
        try:
            _restore(path)
            for leftover in _leftovers(path):
                shutil.rmtree(leftover)
            staging.mkdir()  # the probe: what `save_tuned` will write, made now
        except OSError as error:
            raise ModelLoadError(_cannot_write(path, error)) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                _restore(path)  # a swap that failed half-way: the newest complete model goes back in place
            shutil.rmtree(staging, ignore_errors=True)  # an unfinished model; gone already when `save_tuned` succeeded


def _beside(path: Path, kind: str, pid: int | None = None) -> Path:
    """`.NAME.lock`, or a run's `.NAME.tmp-PID` (being written) or `.NAME.old-PID` (being replaced)."""
    return path.with_name(f".{path.name}.{kind}" + (f"-{pid}" if pid is not None else ""))


def _leftovers(path: Path) -> list[Path]:
    """The `.tmp-PID` and `.old-PID` folders beside `path` that no other live process is writing."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old)-([0-9]{{1,9}})")  # a process id, as this module writes it
    try:
        names = [entry.name for entry in os.scandir(path.parent)]
    except OSError:
        return []
    found = [pattern.fullmatch(name) for name in names]
    return [path.with_name(m.group()) for m in found if m and not _running(int(m.group(2)))]


def _running(pid: int) -> bool:
    """Whether another process `pid` lives (this one's leftovers are from an earlier call)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _restore(path: Path) -> None:
    """Put back the newest complete model a killed `adapt` left beside a missing `path` (its staging
    holds `tuning.json`, written last, only when complete). Raises OSError if it cannot."""
    if os.path.exists(path):  # (an unreadable folder is no reason to act, nor an error)
        return
    try:
        complete = [leftover for leftover in _leftovers(path) if (leftover / TUNING_FILE).is_file()]
        if not complete:
            return
        # Newest first; of one run's two, its new model (.tmp) before the one it replaced (.old), whose
        # times may tie on a filesystem that keeps whole seconds.
        newest = max(complete, key=lambda leftover: ((leftover / TUNING_FILE).stat().st_mtime, ".tmp-" in leftover.name))
        newest.rename(path)
    except OSError:
        if not os.path.exists(path):  # else another process (an `ask`, an `adapt`) put one back first
            raise


def _write_tuned(adaptation, base: SpeechEmbedding, path: Path, index: str, collection: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _beside(path, "tmp", os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    adaptation.model.save_pretrained(staging)
    record = {
        "format": FORMAT,
        "base_model": base.name,
        "base_fingerprint": base.fingerprint,
        "space_fingerprint": adaptation.model.space_fingerprint,
        "index": index,
        "collection": collection,
        "passages": adaptation.passages,
        "sentences": adaptation.sentences,
        "seconds": round(adaptation.seconds, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (staging / "README.md").write_text(_card(record))
    (staging / TUNING_FILE).write_text(json.dumps(record, indent=2) + "\n")  # last: it marks the model complete
    old = _beside(path, "old", os.getpid())
    if path.exists():
        path.rename(old)
    staging.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _card(record: dict) -> str:
    return (
        f"# Tuned model of collection {record['collection']!r} at {record['index']}\n\n"
        f"`seal-rag adapt` tuned the speech head of {record['base_model']} (fingerprint {record['base_fingerprint']}) "
        f"on {record['sentences']} sentences of the index's {record['passages']} chunks, spoken by training TTS voices, "
        f"in {record['seconds']:.0f} s ({record['created']}). No labels were used. It keeps the base's text space "
        f"({record['space_fingerprint']}), and is only as good as its base: if that is experimental, prefer "
        "`--mode cascade` for real work.\n"
    )


def read_record(path: Path) -> dict:
    """The `tuning.json` of the tuned model at `path`."""
    try:
        return json.loads((Path(path) / TUNING_FILE).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"its {TUNING_FILE} is unreadable ({error})") from None


def stale_reason(record: dict) -> str | None:
    """Why a tuned model (its `tuning.json` record) cannot serve the shipped model, or None if it can."""
    shipped = shipped_fingerprint()
    if record.get("base_fingerprint") != shipped:
        return (
            f"it was adapted from {record.get('base_model')!r} (fingerprint {record.get('base_fingerprint')}), "
            f"but the shipped model is now {shipped}"
        )
    return None


@dataclass
class ModelChoice:
    """The model that answers, and where it came from: "tuned", "shipped" or "model" (--model)."""

    model: SpeechEmbedding
    source: str
    path: Path | None = None

    def describe(self) -> str:
        if self.source == "shipped":
            return f"shipped {self.model.name}"
        return f"{self.source} {self.path}"

    def as_dict(self) -> dict:
        return {"source": self.source, "name": self.model.name, "path": str(self.path) if self.path else None}


def choose_model(
    model_dir: str | Path | None = None,
    db: str | Path | None = None,
    host: str | None = None,
    port: int = DEFAULT_PORT,
    collection: str = DEFAULT_COLLECTION,
    use_tuned: bool = True,
) -> ModelChoice:
    """Load the model that should answer queries on one index.

    An explicit `model_dir` wins. Otherwise the index's tuned model, when it has a usable one and
    `use_tuned` is set; else the shipped model. An unusable tuned model is reported with a
    `StaleTuningWarning` and skipped, never an error: the shipped model still answers.
    """
    if model_dir is not None:
        return ModelChoice(SpeechEmbedding.from_pretrained(model_dir), "model", Path(model_dir))
    path = tuned_dir(db, host, port, collection)
    try:
        if use_tuned:
            _restore(path)  # an adapt killed in its final renames must not leave the index without its model
    except OSError as error:
        warnings.warn(
            f"seal-rag: the tuned model at {path} is missing and the copy an interrupted `seal-rag adapt` left beside it "
            f"cannot be put back ({error.strerror or error}): answering with the shipped model; make {path.parent} "
            "writable and ask again, or run `seal-rag adapt` again",
            StaleTuningWarning,
            stacklevel=2,
        )
    if use_tuned and (path / TUNING_FILE).is_file():
        try:
            record = read_record(path)
            reason = stale_reason(record)
            if reason is None:
                name = f"{record.get('base_model')}+tuned"
                return ModelChoice(SpeechEmbedding.from_pretrained(path, name=name), "tuned", path)
        except ModelLoadError as error:
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - documented: a damaged tuned model is skipped, never an error
            reason = f"it is damaged ({type(error).__name__}: {' '.join(str(error).split())[:120]})"
        warnings.warn(
            f"seal-rag: ignoring the tuned model at {path}: {reason}. Answering with the shipped model; "
            "run `seal-rag adapt` again to refresh it, or pass --no-tuned",
            StaleTuningWarning,
            stacklevel=2,
        )
    return ModelChoice(SpeechEmbedding.from_pretrained(), "shipped")
