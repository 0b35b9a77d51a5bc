"""The Chroma index: one collection, cosine space, stamped with the model that filled it.

A persistent directory (`./.seal_rag/` by default) serves one process at a time; several
processes, or several machines, should share a Chroma server (`chroma run`) through
`chromadb.HttpClient`. The same code serves both.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .arguments import check_collection
from .errors import IndexMismatchError, StoreError

DEFAULT_DB = Path(".seal_rag")
DEFAULT_COLLECTION = "seal_rag"
DEFAULT_PORT = 8000
# Keys stamped on the collection, so a query from another model is refused.
MODEL_KEY, SPACE_KEY, DIM_KEY = "seal_model", "seal_space", "seal_dim"
UPSERT_BATCH = 512
LOCK_FILE = "seal_rag.lock"
INDEX_FILE = "chroma.sqlite3"  # what makes a directory an index, rather than any folder
PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600  # an index holds the documents' text: for its owner only


@dataclass
class Hit:
    """One retrieved chunk. `score` is cosine similarity (1 = identical direction)."""

    rank: int
    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict:
        """The hit as a flat record: what `ask --json` and `serve` return for each source."""
        meta = self.metadata
        return {"rank": self.rank, "id": self.id, "score": round(float(self.score), 4), "source": meta.get("source"),
                "title": meta.get("title"), "start_char": meta.get("start_char"), "end_char": meta.get("end_char"),
                "page": meta.get("page"), "text": self.text}


def _no_index(path: Path) -> str:
    return f"no index at {path}: run `seal-rag ingest DOCS --db {path}` first, or pass the right --db"


def connect(db: str | Path | None = None, host: str | None = None, port: int = DEFAULT_PORT, must_exist: bool = False):
    """A Chroma client: HTTP when `host` is given, else a persistent directory."""
    import chromadb

    if host:
        return _http_client(host, port)
    path = Path(db or DEFAULT_DB)
    if must_exist:
        check_reachable(path)
    else:
        make_private(path)
    with store_errors(str(path)):
        return chromadb.PersistentClient(path=str(path))


def check_reachable(db: str | Path | None = None, host: str | None = None, port: int = DEFAULT_PORT) -> None:
    """Raise `StoreError` unless the index exists (a directory holding Chroma's database) or its server answers.

    Cheap, and it opens nothing and writes nothing: the CLI checks this before it spends
    seconds loading models, and `ask` never turns a folder into an index.
    """
    if host:
        _http_client(host, port)
        return
    path = Path(db or DEFAULT_DB)
    if not path.is_dir():
        raise StoreError(_no_index(path))
    if not (path / INDEX_FILE).is_file():
        raise StoreError(
            f"{path} is not a seal-rag index (it holds no {INDEX_FILE}): pass the --db that `seal-rag ingest` wrote, "
            f"or run `seal-rag ingest DOCS --db {path}` first"
        )


def make_private(path: Path) -> None:
    """Create the index directory for its owner only (0700), and its files 0600.

    Chroma's files take the process's umask (often world-readable 0644); an index holds the
    text of every document, some of which only their owner could read.
    """
    try:
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        if path.stat().st_uid != os.getuid():
            return  # someone else's index: not ours to change
        for directory, subdirs, files in os.walk(path):
            os.chmod(directory, PRIVATE_DIR)
            for name in files:
                os.chmod(os.path.join(directory, name), PRIVATE_FILE)
    except OSError as error:
        raise StoreError(f"cannot create or write the index at {path} ({error.strerror}): fix its permissions or pass another --db") from None


@contextmanager
def store_errors(where: str, action: str = "open"):
    """Turn what Chroma raises on a damaged, read-only or lost index into one `StoreError` naming the fix."""
    from .errors import SealError

    try:
        yield
    except SealError:
        raise
    except Exception as error:  # chromadb, sqlite, httpx and OS errors have no common base
        raise StoreError(_store_problem(where, action, error)) from None


def _store_problem(where: str, action: str, error: Exception) -> str:
    detail = " ".join(str(error).split())[:160]
    kind = type(error).__name__
    text = f"{kind} {detail}".lower()
    if isinstance(error, PermissionError) or "readonly" in text or "read-only" in text or "permission denied" in text:
        return f"cannot {action} the index at {where}: it is read-only ({detail}); make it writable (chmod -R u+w) or copy it"
    if any(word in text for word in ("connect", "timeout", "timed out", "remoteprotocol", "network", "refused")):
        return (f"lost the Chroma server at {where} during {action} ({kind}): restart it and run the same command again "
                "(an ingest resumes where it stopped)")
    return (f"the index at {where} is damaged ({kind}: {detail}) during {action}: re-ingest into a new --db, "
            "or restore it from a backup")


def _http_client(host: str, port: int):
    import chromadb

    try:
        client = chromadb.HttpClient(host=host, port=port)
        client.heartbeat()
    except Exception as error:  # chromadb raises several transport errors
        raise StoreError(
            f"cannot reach the Chroma server at {host}:{port} ({type(error).__name__}): "
            f"start one with `chroma run --path DIR --port {port}` or fix --chroma-host/--chroma-port"
        ) from None
    return client


def ensure_not_empty(collection: Any) -> None:
    """A chromadb collection that holds no chunk is a `StoreError` naming the fix."""
    if collection.count() == 0:
        raise StoreError(f"index {collection.name!r} is empty: add documents (or run `seal-rag ingest DOCS`) before querying it")


class SealIndex:
    """A Chroma collection of text-tower vectors, bound to the model space that made them.

    Args:
        collection: A `chromadb` collection (from `open` or your own client).
    """

    def __init__(self, collection, where: str | None = None):
        self.collection = collection
        self.where = where or f"collection {collection.name!r}"  # named in errors

    @classmethod
    def open(
        cls,
        model,
        db: str | Path | None = None,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        collection: str = DEFAULT_COLLECTION,
        create: bool = False,
    ) -> "SealIndex":
        """Open (or with `create`, make) the collection and check it belongs to `model`'s space.

        Args:
            model: A `SpeechEmbedding` (anything with `name`, `space_fingerprint` and `dim`).
        """
        check_collection(collection)
        client = connect(db, host, port, must_exist=not create)
        where = f"{host}:{port}" if host else str(db or DEFAULT_DB)
        if create:
            stamp = {MODEL_KEY: model.name, SPACE_KEY: model.space_fingerprint, DIM_KEY: model.dim}
            with store_errors(where, "create a collection in"):
                handle = client.get_or_create_collection(
                    collection, metadata=stamp, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
                )
        else:
            with store_errors(where, "list the collections of"):
                names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
            if collection not in names:
                raise StoreError(f"{where} has no collection {collection!r}: run `seal-rag ingest DOCS` first")
            with store_errors(where):
                handle = client.get_collection(collection, embedding_function=None)
        index = cls(handle, where)
        index.check_model(model)
        return index

    def _guard(self, action: str):
        return store_errors(self.where, action)

    def check_model(self, model) -> None:
        """Raise `IndexMismatchError` unless this index was built in `model`'s space."""
        stamp = self.collection.metadata or {}
        if stamp.get(SPACE_KEY) != model.space_fingerprint or stamp.get(DIM_KEY) != model.dim:
            raise IndexMismatchError(
                f"index {self.collection.name!r} was built by model {stamp.get(MODEL_KEY)!r} "
                f"(space {stamp.get(SPACE_KEY)}, D={stamp.get(DIM_KEY)}), not {model.name!r} "
                f"(space {model.space_fingerprint}, D={model.dim}): query with that model or re-ingest into a new --db"
            )

    def count(self) -> int:
        with self._guard("read"):
            return self.collection.count()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str], metadatas: Sequence[dict]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            with self._guard("write to"):
                self.collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                    documents=list(texts[start:end]),
                    metadatas=list(metadatas[start:end]),
                )

    def ids_where(self, where: dict) -> list[str]:
        with self._guard("read"):
            return self.collection.get(where=where, include=[])["ids"]

    def all_metadata(self) -> dict[str, dict]:
        """Every chunk id with its metadata (for reconciling a folder with the index)."""
        with self._guard("read"):
            result = self.collection.get(include=["metadatas"])
        return dict(zip(result["ids"], result["metadatas"]))

    def all_texts(self, page: int = 1000) -> list[str]:
        """Every chunk's text, read a page at a time (what `seal-rag adapt` speaks)."""
        texts: list[str] = []
        for offset in range(0, self.count(), page):
            with self._guard("read"):
                texts += self.collection.get(limit=page, offset=offset, include=["documents"])["documents"]
        return [text for text in texts if text]

    def ensure_not_empty(self) -> None:
        """Raise `StoreError`, naming the fix, when the index holds no chunk."""
        with self._guard("read"):
            ensure_not_empty(self.collection)

    def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), UPSERT_BATCH):
            with self._guard("delete from"):
                self.collection.delete(ids=list(ids[start : start + UPSERT_BATCH]))

    def query(self, vector: np.ndarray, k: int = 5, where: dict | None = None) -> list[Hit]:
        """The `k` chunks nearest to one unit vector, best first."""
        self.ensure_not_empty()
        with self._guard("search"):
            result = self.collection.query(
                query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        rows = zip(result["ids"][0], result["distances"][0], result["documents"][0], result["metadatas"][0])
        return [Hit(rank, id_, 1.0 - distance, text, meta or {}) for rank, (id_, distance, text, meta) in enumerate(rows, 1)]


@contextmanager
def db_lock(db: str | Path | None, exclusive: bool):
    """Keep writers and readers of one persistent directory apart, across processes.

    Chroma's persistent directory is not safe for a writer and another process at once;
    a shared server (`--chroma-host`) is the way to serve several processes.
    """
    path = Path(db or DEFAULT_DB)
    if exclusive:
        make_private(path)
    elif not (path / LOCK_FILE).is_file():
        check_reachable(path)  # a reader never writes a lock (or anything) into a folder that is no index
    try:
        # A reader creates the lock too once the folder is known to be an index: a reader that held
        # no lock would let a writer in beside it (an index made in-process has no lock file yet).
        descriptor = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    except OSError as error:
        if exclusive:
            raise StoreError(_store_problem(str(path), "lock", error)) from None
        descriptor = None  # a read-only index: no writer can be at work in it either
    with os.fdopen(descriptor, "a") if descriptor is not None else contextlib.nullcontext() as handle:
        if handle is not None:
            try:
                fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"another seal-rag process is {'using' if exclusive else 'writing'} {path}: wait for it, "
                    "or serve the index with `chroma run` and pass --chroma-host"
                ) from None
        if not exclusive:
            check_reachable(path)  # the writer that held the lock may have been making the index
        try:
            yield
        finally:
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
