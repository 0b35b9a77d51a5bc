"""The index: one Chroma collection, cosine space, stamped with the model that filled it.

A persistent directory (`./.seal_rag/` by default) serves one process at a time; several
processes, or several machines, should share a Chroma server (`chroma run`) through
`chromadb.HttpClient`. The same code serves both.

Chroma is the store of record: ids, text, metadata and the 384-d semantic half. A model with
a phonetic half keeps that half (8,192 sparse buckets) in a `PhoneticIndex` beside it
(`<db>/phonetic/<collection>/`, or under the cache for a server), rebuilt from Chroma's text
whenever it is missing or out of step; `fused_search` ranks by the exact joined cosine.
"""


from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .arguments import check_collection, check_filter, check_top_k
from .errors import ArgumentError, FrameworkVectorsError, IndexMismatchError, ModelLoadError, ModelMismatchError, StoreError
from .fused_search import Split, fused_search
from .phonetic import phonemize
from .phonetic_index import KEEP, PhoneticIndex, PhoneticIndexError

DEFAULT_DB = Path(".seal_rag")
DEFAULT_COLLECTION = "seal_rag"
DEFAULT_PORT = 8000
# Keys stamped on the collection, so a query from another model is refused.
MODEL_KEY, SPACE_KEY, DIM_KEY = "seal_model", "seal_space", "seal_dim"
# How the vectors are stored: 2 = the semantic half in Chroma and the phonetic half in a PhoneticIndex.
# Collections without the key hold whole joined vectors in Chroma (layout 1): refused, not migrated
# (re-ingesting is the one path that is safe whatever state an old index is in; see `check_model`).
LAYOUT_KEY, LAYOUT = "seal_layout", 2
# A new random token after every write through `SealIndex`: a phonetic index kept on another machine
# (a shared Chroma server) learns from it that its rows are out of date, even if the count is not.
CHANGE_KEY = "seal_changed"
PHONETIC_DIR = "phonetic"
REBUILD_PAGE = 256  # chunks re-phonemized and written together when the phonetic index is rebuilt
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


def check_index_folder(path: Path) -> None:
    """Raise `StoreError` unless `path` may become an index or is one: missing, empty, or an index
    (other indexes inside it, as the demo's under the default, are allowed). Writes nothing.

    An index is made private file by file (`make_private`): in a folder that is no index
    (`--db .` or `--db ~` by mistake) that would strip the permissions of the user's own files."""
    try:
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path} is a file, not a folder: pass a folder for --db")
        if not path.is_dir() or (path / INDEX_FILE).is_file():
            return
        others = [entry.name for entry in path.iterdir()
                  if entry.name not in (LOCK_FILE, ".DS_Store") and not (entry / INDEX_FILE).is_file()]
    except OSError as error:
        raise StoreError(f"cannot read the folder {path} ({error.strerror}): fix its permissions or pass another --db") from None
    if others:
        raise StoreError(f"{path} holds other files ({others[0]!r}, ...) and is not a seal-rag index: "
                         "pass a new or empty folder as --db")


def make_private(path: Path) -> None:
    """Create the index directory for its owner only (0700), and its files 0600.

    Chroma's files take the process's umask (often world-readable 0644); an index holds the
    text of every document, some of which only their owner could read.
    """
    check_index_folder(path)
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
    except BaseException as error:
        # Chroma's Rust side panics on some damaged databases (pyo3's PanicException derives from
        # BaseException); KeyboardInterrupt and SystemExit are not the store's and go on.
        if type(error).__name__ != "PanicException":
            raise
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
        raise empty_index(collection.name)


def empty_index(name: str) -> StoreError:
    return StoreError(f"index {name!r} is empty: add documents (or run `seal-rag ingest DOCS`) before querying it")


def collection_texts(collection: Any, page: int = 1000) -> list[str]:
    """Every non-empty document text of a chromadb collection, read a page at a time."""
    texts: list[str] = []
    for offset in range(0, collection.count(), page):
        texts += collection.get(limit=page, offset=offset, include=["documents"])["documents"]
    return [text for text in texts if text]


def phonetic_dir(db: str | Path | None = None, host: str | None = None, port: int = DEFAULT_PORT,
                 collection: str = DEFAULT_COLLECTION) -> Path:
    """Where a collection's phonetic index lives: in the index folder, or for a server under the cache.

    A server keeps the record (Chroma); each machine that asks keeps its own phonetic index,
    keyed as `kb_tuning.tuned_dir` keys tuned models, and rebuilds it from the server's text.
    """
    check_collection(collection)  # it becomes a folder name
    if host:
        from .model_sources import cache_dir

        server = re.sub(r"[^A-Za-z0-9._-]", "_", f"{host}-{port}")
        return cache_dir() / PHONETIC_DIR / server / collection
    return Path(db or DEFAULT_DB) / PHONETIC_DIR / collection


class SealIndex:
    """A Chroma collection of text-tower vectors, bound to the model space that made them.

    Args:
        collection: A `chromadb` collection (from `open` or your own client).
        where: How errors name the index.
        phonetic: The phonetic index beside it (layout 2 with a phonetic model), else None.
        split: Where the model's joined vectors split into halves (with `phonetic`).
    """

    def __init__(self, collection, where: str | None = None, phonetic: PhoneticIndex | None = None,
                 split: Split | None = None):
        self.collection = collection
        self.where = where or f"collection {collection.name!r}"  # named in errors
        self.phonetic, self.split = phonetic, split

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

        A missing or out-of-step phonetic index is rebuilt from the collection's text first.

        Args:
            model: A `SpeechEmbedding` (anything with `name`, `space_fingerprint` and `dim`).
        """
        check_collection(collection)
        client = connect(db, host, port, must_exist=not create)
        where = f"{host}:{port}" if host else str(db or DEFAULT_DB)
        if create:
            stamp = {MODEL_KEY: model.name, SPACE_KEY: model.space_fingerprint, DIM_KEY: model.dim, LAYOUT_KEY: LAYOUT}
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
        return cls.for_collection(handle, model, phonetic_dir(db, host, port, collection), where)

    @classmethod
    def for_collection(cls, collection, model, folder: Path | None = None, where: str | None = None) -> "SealIndex":
        """A seal-rag collection opened by someone else's client (LlamaIndex, LangChain), checked and in step.

        Without `folder`, the phonetic index's place is found from the client's settings.
        """
        index = cls(collection, where)
        index.check_model(model)
        if getattr(model, "phonetic", None) is None:
            return index
        index.check_layout(model)
        index.check_split(model)
        if model.config.phonetic_weight >= 1:  # its semantic halves are all zero: no cosine to index in Chroma
            raise ModelLoadError(f"{model.name} gives the semantic half no weight (phonetic_weight 1), so a seal-rag index "
                                 "cannot hold its vectors: use a model whose phonetic_weight is below 1 (seal-base-minilm: 0.9)")
        if folder is None:
            settings = collection._client.get_settings()
            folder = phonetic_dir(settings.persist_directory if settings.is_persistent else None,
                                  settings.chroma_server_host, int(settings.chroma_server_http_port or DEFAULT_PORT),
                                  collection.name)
        index.split = Split(model.config.dim, model.config.phonetic_weight)
        try:
            # Keyed by the collection's own id too: a collection made anew under the same name (a new
            # server, a deleted folder) never inherits an old phonetic index of equal size.
            index.phonetic = PhoneticIndex(folder, model.config.phonetic_dim, f"{model.space_fingerprint}/{collection.id}")
        except PhoneticIndexError as error:
            raise StoreError(f"the phonetic index of {index.where} is damaged ({error}): delete {folder} "
                             "and it is rebuilt from Chroma's text on the next open") from None
        index.sync(model)
        return index

    def _guard(self, action: str):
        return store_errors(self.where, action)

    def check_model(self, model) -> None:
        """Raise `ModelMismatchError` unless this index was built in `model`'s space."""
        stamp = self.collection.metadata or {}
        if stamp.get(SPACE_KEY) != model.space_fingerprint or stamp.get(DIM_KEY) != model.dim:
            raise ModelMismatchError(
                f"index {self.collection.name!r} was built by model {stamp.get(MODEL_KEY)!r} "
                f"(space {stamp.get(SPACE_KEY)}, D={stamp.get(DIM_KEY)}), not {model.name!r} "
                f"(space {model.space_fingerprint}, D={model.dim})", "query with that model or re-ingest into a new --db"
            )

    def check_layout(self, model) -> None:
        """Raise `IndexMismatchError` unless seal-rag can search this collection in layout 2 (an empty one adopts it).

        Frameworks search whole joined vectors in Chroma themselves, so the integrations skip this.
        """
        stamp = self.collection.metadata or {}
        if stamp.get(LAYOUT_KEY) != LAYOUT:
            if self.count() == 0:  # nothing stored yet: adopt the new layout in place
                with self._guard("write to"):
                    self.collection.modify(metadata={**stamp, LAYOUT_KEY: LAYOUT})
                return
            raise IndexMismatchError(
                f"index {self.collection.name!r} at {self.where} has the old layout (whole {model.dim:,}-wide vectors in "
                "Chroma): re-ingest your documents into a new --db (`seal-rag ingest DOCS --db NEW`), then delete the old one"
            )

    def check_split(self, model) -> None:
        """Raise `IndexMismatchError` when a framework wrote whole joined vectors into a layout-2 collection."""
        if self.stored_width() == model.dim:
            raise FrameworkVectorsError(
                f"index {self.collection.name!r} at {self.where} holds whole {model.dim:,}-wide vectors that a framework "
                "wrote into it: search it through the LlamaIndex or LangChain integration, or ingest with seal-rag into a new --db"
            )

    def stored_width(self) -> int | None:
        """The length of the vectors Chroma holds (one is read), or None when it holds none."""
        with self._guard("read"):
            sample = self.collection.get(limit=1, include=["embeddings"])
        return len(sample["embeddings"][0]) if sample["ids"] else None

    def sync(self, model) -> int:
        """Bring the phonetic index in step with Chroma; returns how many chunks it rebuilt.

        The phonetic half of a passage is a function of its text (espeak-ng phonemes through
        the model's fixed vectorizer), so a missing index, one of another model, or rows a crash
        left out are made again from the stored text; rows Chroma no longer holds are dropped.
        Cheap when in step: Chroma's change token and count against the phonetic index's. Rows
        are compared by id, so an edit from another machine is seen when ids name their content,
        as ingest's do (a source and a digest of the text).
        """
        if self.phonetic is None:
            return 0
        self.phonetic.refresh()
        change = self.change_token()  # read before the ids: a write after it leaves the tokens apart
        if self.phonetic.exists and self.phonetic.chroma_change == change and self.phonetic.live_count == self.count():
            return 0
        return self.reconcile(model, change=change)

    def change_token(self) -> str | None:
        """Chroma's change token (`CHANGE_KEY`) as the store holds it now, not as this handle read it."""
        collection = self.collection
        with self._guard("read"):
            fresh = collection._client.get_collection(collection.name, tenant=collection.tenant, database=collection.database)
        return (fresh.metadata or {}).get(CHANGE_KEY)

    def reconcile(self, model, chroma_ids: set[str] | None = None, change: str | None | object = KEEP) -> int:
        """Make the phonetic index hold exactly Chroma's ids (`chroma_ids`, if the caller has them
        already); `change`: Chroma's change token (None: it has none), read before those ids, which
        the index then records."""
        if self.phonetic is None:
            return 0
        if chroma_ids is None:
            chroma_ids = set(self.all_ids())
        try:
            with self.phonetic.writing() as phonetic:
                if not phonetic.exists:
                    phonetic.clear()
                held = phonetic.live_ids()
                phonetic.delete(sorted(held - chroma_ids))
                missing = sorted(chroma_ids - held)
                self._phonemize_chroma_text(missing, "Rebuilding the phonetic index from Chroma's text",
                                            lambda ids, phonemes: phonetic.upsert(ids, model.phonetic.vectorizer.vectors(phonemes), phonemes))
                if change is not KEEP and change != phonetic.chroma_change:
                    phonetic.touch(change)
        except OSError as error:
            raise StoreError(_store_problem(str(self.phonetic.folder), "write the phonetic index of", error)) from None
        return len(missing)

    def _phonemize_chroma_text(self, ids: list[str], label: str, write) -> None:
        """`write(ids, phonemes)` for `ids`' texts as Chroma holds them, a page at a time, with progress."""
        from .progress import progress_bar

        with progress_bar(label, len(ids), bool(ids)) as advance:
            for start in range(0, len(ids), REBUILD_PAGE):
                with self._guard("read"):
                    got = self.collection.get(ids=ids[start : start + REBUILD_PAGE], include=["documents"])
                write(got["ids"], [phonemize(t or "") for t in got["documents"]])
                advance(len(got["ids"]))

    def keep_phonemes(self) -> int:
        """Store the phonemes of chunks indexed before ingest kept them (`keyword_pages` reads them);
        returns how many. Their vectors stay as they are."""
        if self.phonetic is None:
            return 0
        try:
            with self.phonetic.writing() as phonetic:
                missing = phonetic.ids_without_phonemes()
                self._phonemize_chroma_text(missing, "Keeping the phonemes of chunks indexed before", phonetic.add_phonemes)
        except OSError as error:
            raise StoreError(_store_problem(str(self.phonetic.folder), "write the phonetic index of", error)) from None
        return len(missing)

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict]) -> None:
        """Set the metadata of chunks already stored; their text and vectors stay as they are."""
        for start in range(0, len(ids), UPSERT_BATCH):
            with self._guard("write to"):
                self.collection.update(ids=list(ids[start : start + UPSERT_BATCH]),
                                       metadatas=list(metadatas[start : start + UPSERT_BATCH]))

    def count(self) -> int:
        with self._guard("read"):
            return self.collection.count()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str], metadatas: Sequence[dict],
               phonemes: Sequence[str] | None = None) -> None:
        """Store chunks with their joined vectors `(n, D)`: the phonetic half first, so it always holds
        every Chroma id. `phonemes` (each text's `phonemize`d form) are kept beside the phonetic half."""
        for start in range(0, len(ids), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            batch = np.asarray(vectors[start:end], dtype=np.float32)
            if self.phonetic is not None:
                batch, phonetic = self.split.halves(batch)
                self._write_phonetic("upsert", list(ids[start:end]), phonetic, None if phonemes is None else phonemes[start:end])
            with self._guard("write to"):
                self.collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=batch,
                    documents=list(texts[start:end]),
                    metadatas=list(metadatas[start:end]),
                )
        if len(ids):
            self._mark_changed()

    def _mark_changed(self) -> None:
        """After a write reached Chroma: a new change token in the collection's metadata, then in the
        phonetic index, whose generation moves on with it (the text changed after its rows did: see
        `PhoneticIndex.touch`). Another machine's phonetic index, holding an older token, is mended
        on its next open (`sync`)."""
        if self.phonetic is None:
            return
        # Recorded only if the phonetic index matched Chroma before this write: else another
        # process wrote meanwhile, and the next `sync` must still see the tokens differ. (Chroma
        # has no compare-and-set: a write landing between this read and `modify` goes unseen
        # until the next token moves.)
        before, token = self.change_token(), uuid.uuid4().hex
        with self._guard("write to"):
            self.collection.modify(metadata={**(self.collection.metadata or {}), CHANGE_KEY: token})
        self._write_phonetic("touch_after_write", before, token)

    def _write_phonetic(self, method: str, *args) -> None:
        try:
            with self.phonetic.writing() as index:
                getattr(index, method)(*args)
        except OSError as error:
            raise StoreError(_store_problem(str(self.phonetic.folder), "write the phonetic index of", error)) from None

    def all_ids(self, page: int = 10_000) -> list[str]:
        ids: list[str] = []
        for offset in range(0, self.count(), page):
            with self._guard("read"):
                ids += self.collection.get(limit=page, offset=offset, include=[])["ids"]
        return ids

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
        with self._guard("read"):
            return collection_texts(self.collection, page)

    def keyword_pages(self, page: int = 10_000, advance: Callable[[int], object] = lambda n: None
                      ) -> Iterator[tuple[list[str], list[str], list[str | None]]]:
        """What `retrieve.index_keyword_reranker` builds a knowledge base's keyword tables from, a
        page of chunks at a time: the id of every chunk read (those without text too: `keyword_tables` keeps
        tables only when they are exactly the index's chunks), every non-empty chunk text, and its
        phonemes as ingest stored them (None where it did not). `advance(n)` is called as each page
        of `n` chunks is read. Pages are large because Chroma's cost of a page grows with its
        offset (0.6 s to reach the 700,000th of a million chunks)."""
        kept: dict = {}  # the phonetic index's segments the last page read
        for offset in range(0, self.count(), page):
            with self._guard("read"):
                got = self.collection.get(limit=page, offset=offset, include=["documents"])
            advance(len(got["ids"]))
            chunks = [(i, t) for i, t in zip(got["ids"], got["documents"]) if t]
            texts, phonemes = [t for _, t in chunks], [None] * len(chunks)
            if self.phonetic is not None:  # after Chroma: ingest writes the phonetic index first
                phonemes = self._stored_phonemes([i for i, _ in chunks], kept)
            yield got["ids"], texts, phonemes

    def _stored_phonemes(self, ids: list[str], kept: dict) -> list[str | None]:
        """`PhoneticIndex.phonemes_of` at the index's newest state. Another process's merge may
        remove a segment between reading the manifest and its phonemes: then read again."""
        for _ in range(3):
            self.phonetic.refresh()
            try:
                return self.phonetic.phonemes_of(ids, kept)
            except FileNotFoundError:
                kept.clear()
        return [None] * len(ids)  # still moving: phonemized instead, and these tables are not kept

    def ensure_not_empty(self) -> None:
        """Raise `StoreError`, naming the fix, when the index holds no chunk."""
        with self._guard("read"):
            ensure_not_empty(self.collection)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete chunks: from Chroma first, so the phonetic index never lacks an id Chroma holds."""
        for start in range(0, len(ids), UPSERT_BATCH):
            batch = list(ids[start : start + UPSERT_BATCH])
            with self._guard("delete from"):
                self.collection.delete(ids=batch)
            if self.phonetic is not None:
                self._write_phonetic("delete", batch)
        if len(ids):
            self._mark_changed()

    def query(self, vector: np.ndarray, k: int = 5, where: dict | None = None) -> list[Hit]:
        """The `k` chunks nearest to one unit vector, best first (its halves in any proportion:
        `SpeechEmbedding.weighted`).

        Raises:
            ArgumentError: `k` out of range, a malformed `where` (see `check_filter`), or a vector
                not of this index's model (wrong length, NaN).
        """
        check_top_k(k, "k")
        where = check_filter(where)
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if not np.isfinite(vector).all():
            raise ArgumentError("the query vector holds NaN or infinite values: embed the query again")
        if self.phonetic is not None:
            if vector.size != self.split.semantic_dim + self.phonetic.width:
                raise ArgumentError(f"the query vector has {vector.size} values, where this index's model makes "
                                    f"{self.split.semantic_dim + self.phonetic.width}: embed it with that model")
            return self._fused_query(vector, k, where)
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

    def _fused_query(self, vector: np.ndarray, k: int, where: dict | None) -> list[Hit]:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        with self._guard("search"):
            self.phonetic.refresh()  # another process (on a server) may have written since
            # It holds every chunk Chroma does (a delete reaches Chroma first), so it is empty only
            # when Chroma is; asking it is free, while Chroma counts its rows on every call.
            if self.phonetic.live_count == 0:
                raise empty_index(self.collection.name)
            best = fused_search(self.collection, self.phonetic, self.split, vector, k, where)
            if not best:
                return []
            got = self.collection.get(ids=[i for i, _ in best], include=["documents", "metadatas"])
        stored = {i: (text, meta) for i, text, meta in zip(got["ids"], got["documents"], got["metadatas"])}
        found = [(i, score) for i, score in best if i in stored]  # an id deleted meanwhile is left out
        return [Hit(rank, i, score, stored[i][0], stored[i][1] or {}) for rank, (i, score) in enumerate(found, 1)]


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
