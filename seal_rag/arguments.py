"""Argument checks, made before anything slow or anything written.

The CLI calls `check_*` at the top of each command, before a model loads (seconds) or a
directory is touched; the library's entry points call the same functions, so a value the
CLI refuses is refused the same way from Python. Each failure is an `ArgumentError` with a
one-line message naming the option and what it accepts.
"""

from __future__ import annotations

import numbers
import re

from .errors import ArgumentError

MAX_TOP_K = 1000  # more passages than anyone reads; Chroma allocates for every one asked
MIN_CHUNK_CHARS = 20  # a shorter chunk holds no sentence worth retrieving (and 0 would never end)
# Chroma's own rule for collection names; it also keeps the name safe as a folder name
# (a tuned model lives at <db>/tuned/<collection>/): no `/`, no `..`, no leading dot.
_COLLECTION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){1,510}[A-Za-z0-9]$")


def check_top_k(k: int, option: str = "-k/--top-k") -> int:
    """`k` a whole number from 1 to `MAX_TOP_K` (the library names its `option` as `k`)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_TOP_K:
        raise ArgumentError(f"{option} must be a whole number between 1 and {MAX_TOP_K}, not {k!r}")
    return int(k)


def check_filter(where: object) -> dict | None:
    """A metadata filter as Chroma's `where`, checked before any search: Chroma's own ValueError
    for a malformed one would read as a damaged index. A dict of several plain keys, as LangChain
    users often write it, means all of them (`$and`); an empty one means no filter."""
    if where is None or where == {}:
        return None
    if not isinstance(where, dict):
        raise ArgumentError(f"a filter must be a dict, not a {type(where).__name__}: e.g. {{'source': 'a.txt'}}")
    if len(where) > 1 and not any(str(key).startswith("$") for key in where):
        where = {"$and": [{key: value} for key, value in where.items()]}
    from chromadb.api.types import validate_where

    try:
        _check_clause_keys(where)
        validate_where(where)
    except (ValueError, TypeError) as error:
        detail = " ".join(str(error).split())[:160]
        raise ArgumentError(f"the filter is not one Chroma reads ({detail}): write {{'key': value}}, "
                            "{'key': {'$in': [...]}} or {'$and': [...]}") from None
    return where


def _check_clause_keys(where: dict) -> None:
    """A clause's `$` keys must be `$and` or `$or` (Chroma's check lets `{"$foo": 1}` through, and its
    search then fails as if the index were damaged); their lists' clauses are checked in turn."""
    for key, value in where.items():
        if str(key).startswith("$"):
            if key not in ("$and", "$or"):
                raise ValueError(f"{key!r} is not an operator a clause can start with: use $and or $or, or a field name")
            for clause in value if isinstance(value, list) else []:
                if isinstance(clause, dict):
                    _check_clause_keys(clause)


def check_chunking(chunk_chars: int, overlap_chars: int) -> None:
    if chunk_chars < MIN_CHUNK_CHARS:
        raise ArgumentError(f"--chunk-chars must be at least {MIN_CHUNK_CHARS}, not {chunk_chars}")
    if not 0 <= overlap_chars < chunk_chars:
        raise ArgumentError(
            f"--overlap-chars must be at least 0 and below --chunk-chars ({chunk_chars}), not {overlap_chars}"
        )


def check_collection(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION.match(name) or re.fullmatch(r"[\d.]+", name):
        raise ArgumentError(
            f"--collection {name!r} is not a valid name: use 3-512 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit, without '..', not an IP address"
        )
    return name


def check_port(port: int, option: str = "--chroma-port") -> int:
    if not 1 <= port <= 65535:
        raise ArgumentError(f"{option} must be between 1 and 65535, not {port}")
    return port


def check_positive(value: float, option: str, maximum: float | None = None) -> float:
    """`value` > 0 (and at most `maximum`), a finite number."""
    if not value > 0 or value == float("inf") or (maximum is not None and value > maximum):
        limit = f" and at most {maximum:g}" if maximum is not None else ""
        raise ArgumentError(f"{option} must be a finite number above 0{limit}, not {value}")
    return value


# ---- each command's options, checked together at the top of the command -----------------

MODES = ("speech", "cascade", "hybrid")
AUDIO_FORMATS = ("none", "input_audio", "audio_url")
MAX_MIC_SECONDS = 600.0


def check_index_options(collection: str, chroma_port: int) -> None:
    check_collection(collection)
    check_port(chroma_port)


def check_ingest_options(chunk_chars: int, overlap_chars: int, max_file_mb: float) -> None:
    check_chunking(chunk_chars, overlap_chars)
    check_positive(max_file_mb, "--max-file-mb")


def check_ask_options(k: int, mode: str, llm: str, llm_audio_format: str, llm_timeout: float, mic: float | None) -> None:
    check_top_k(k)
    if mode not in MODES:
        raise ArgumentError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if llm != "none" and (not llm.startswith("openai:") or len(llm) <= len("openai:")):
        raise ArgumentError(f"--llm must be 'none' or 'openai:MODEL', not {llm!r}")
    if llm_audio_format not in AUDIO_FORMATS:
        raise ArgumentError(f"--llm-audio-format must be one of {', '.join(AUDIO_FORMATS)}, not {llm_audio_format!r}")
    check_positive(llm_timeout, "--llm-timeout")
    if mic is not None:
        check_positive(mic, "--mic", MAX_MIC_SECONDS)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_serve_options(host: str, port: int, api_key: str | None, max_concurrent: int, max_upload_mb: float,
                        llm: str, llm_audio_format: str, llm_timeout: float) -> None:
    if host not in LOOPBACK and not api_key:
        raise ArgumentError(f"--host {host} is reachable from other machines: set --api-key or SEAL_RAG_API_KEY, "
                            "or serve on 127.0.0.1")
    check_port(port, "--port")
    if max_concurrent < 1:
        raise ArgumentError(f"--max-concurrent must be at least 1, not {max_concurrent}")
    check_positive(max_upload_mb, "--max-upload-mb")
    check_ask_options(1, "speech", llm, llm_audio_format, llm_timeout, None)


def check_texts(texts) -> list[str]:
    """Passages to embed, each a string (None from a loader is a common slip)."""
    texts = list(texts)
    wrong = next(((i, t) for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if wrong is not None:
        raise ArgumentError(f"text {wrong[0]} is a {type(wrong[1]).__name__}, not a string: pass the passages' text")
    return texts
