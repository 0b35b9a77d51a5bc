"""audio -> features -> speech tower -> vector -> store.query -> hits, with per-stage timings.

Three retrieval modes: `speech` (SEAL: no transcript needed), `cascade` (ASR, then the
text tower) and `hybrid` (both rankings fused by reciprocal rank). When a transcript is
needed anyway (cascade, hybrid, or a text-only chat model), ASR runs in a thread beside
the speech tower, so it adds no latency to speech retrieval.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .arguments import MODES, check_top_k  # MODES re-exported: callers import it from here
from .errors import ArgumentError
from .audio import SAMPLE_RATE, AudioSource, load_audio
from .fusion import HYBRID_DEPTH, reciprocal_rank_fusion
from .progress import progress_bar
from .store import DEFAULT_COLLECTION, DEFAULT_PORT, Hit, SealIndex
from .timing import timed

# Chunks from which reading an index's words for keyword re-ranking shows a bar: from here on it takes
# seconds (about 4 s for 20,000 chunks, minutes for a million).
PROGRESS_FROM = 20_000


@dataclass
class Retrieval:
    hits: list[Hit]
    query_vector: np.ndarray  # the vector searched (speech tower, spelled from the decoding, or text tower of the transcript)
    transcript: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Retriever:
    """Spoken query -> ranked chunks, with models loaded once for many queries.

    Args:
        model: A `SpeechEmbedding`.
        index: The `SealIndex` to search.
        mode: "speech", "cascade" or "hybrid".
        transcriber: A `cascade.Transcriber`; made on first need when None.
        keywords: A `keyword_rerank.KeywordReranker` built from this index's texts: the speech
            ranking (speech and hybrid modes) is then re-ranked by which of its passages' words
            the query says; if it carries a `decoder` (`kb_decoding`, as `keyword_reranker` builds
            it), the query's phonetic half is first decoded with the index's phoneme model, its
            semantic half spelled with the index's words (a model with `spelled_weight`), and that
            vector is searched. None: the speech tower's vector and its cosine alone.

    Example:
        >>> retriever = Retriever.open(db=".seal_rag")  # the index's tuned model (seal-rag adapt), if it has one
        >>> retriever.model_choice.describe()
        'tuned .seal_rag/tuned/seal_rag'
        >>> [hit.metadata["source"] for hit in retriever.retrieve("question.wav").hits]
    """

    model_choice = None  # set by `open`: which model answers (`kb_tuning.ModelChoice`)

    def __init__(self, model, index: SealIndex, mode: str = "speech", transcriber=None, keywords=None):
        if mode not in MODES:
            raise ArgumentError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.model, self.index, self.mode = model, index, mode
        self._transcriber = transcriber
        if keywords is not None and model.phonetic is None:
            raise ValueError(f"keyword re-ranking reads the phonetic half's recognizer, and {model.name} has none")
        self.keywords = keywords

    @classmethod
    def open(
        cls,
        db: str | None = None,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        collection: str = DEFAULT_COLLECTION,
        mode: str = "speech",
        model_dir: str | None = None,
        use_tuned: bool = True,
        keywords: bool = True,
    ) -> "Retriever":
        """A retriever over a seal-rag index, with the model and re-ranking `seal-rag ask` would use.

        The model is `model_dir` when given, else the index's tuned model (`seal-rag adapt`)
        unless `use_tuned` is False or it is stale, else the shipped model. With `keywords`
        (and a model with a phonetic half) the speech ranking is re-ranked by keyword spotting.
        """
        from .kb_tuning import choose_model

        choice = choose_model(model_dir, db, host, port, collection, use_tuned)
        index = SealIndex.open(choice.model, db, host, port, collection)
        reranker = index_keyword_reranker(choice.model, index) if keywords else None
        retriever = cls(choice.model, index, mode, keywords=reranker)
        retriever.model_choice = choice
        return retriever

    @property
    def transcriber(self):
        if self._transcriber is None:
            from .cascade import Transcriber

            self._transcriber = Transcriber()
        return self._transcriber

    def retrieve(
        self,
        audio: AudioSource,
        k: int = 5,
        where: dict | None = None,
        sample_rate: int = SAMPLE_RATE,
        want_transcript: bool = False,
    ) -> Retrieval:
        """Rank the index's chunks for one spoken query: a path, encoded bytes or samples, decoded and checked here."""
        timings: dict[str, float] = {}
        with timed(timings, "decode"):
            clip = load_audio(audio, sample_rate, self.model.config.max_seconds)
        found = self.retrieve_clip(clip, k, where, want_transcript)
        found.timings = {"decode": timings["decode"], **found.timings}
        return found

    def retrieve_clip(self, clip: np.ndarray, k: int = 5, where: dict | None = None, want_transcript: bool = False) -> Retrieval:
        """Rank the index's chunks for a clip already decoded by `audio.load_audio` (16 kHz mono float32)."""
        check_top_k(k, "k")
        timings: dict[str, float] = {}
        need_transcript = want_transcript or self.mode != "speech"
        with ThreadPoolExecutor(max_workers=1) as pool:
            transcript_job = pool.submit(self._transcribe, clip) if need_transcript else None
            speech_hits, vector = [], None
            if self.mode != "cascade":
                vector, speech_hits = self._speech_ranked(clip, k if self.mode == "speech" else max(k, HYBRID_DEPTH), where, timings)
            transcript = None
            if transcript_job is not None:
                transcript, timings["transcribe"] = transcript_job.result()
        if self.mode == "speech":
            return Retrieval(speech_hits, vector, transcript, timings)
        with timed(timings, "text_embed"):
            text_vector = self.model.embed_texts([transcript or " "])[0]
        text_hits = self._search(text_vector, k if self.mode == "cascade" else max(k, HYBRID_DEPTH), where, timings)
        if self.mode == "cascade":
            return Retrieval(text_hits, text_vector, transcript, timings)
        fused = reciprocal_rank_fusion([speech_hits, text_hits], k)
        return Retrieval(self._speech_scored(fused, speech_hits, vector), vector, transcript, timings)

    def retrieve_text(self, text: str, k: int = 5, where: dict | None = None) -> Retrieval:
        """Rank the index's chunks for a typed question, with the text tower, in any mode.

        A typed question is its own transcript: speech, cascade and hybrid all come down to
        cascade's text search, and its scores are cascade's.
        """
        check_top_k(k, "k")
        if not isinstance(text, str):
            raise ArgumentError(f"a typed question must be a string, not a {type(text).__name__}")
        if not text.strip():
            raise ArgumentError("the question is empty: ask it in words, or pass its audio")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ArgumentError("the question holds invalid Unicode (a lone surrogate): send valid UTF-8 text") from None
        timings: dict[str, float] = {}
        with timed(timings, "text_embed"):
            vector = self.model.embed_texts([text])[0]
        return Retrieval(self._search(vector, k, where, timings), vector, text, timings)

    def _speech_scored(self, fused: list[Hit], speech_hits: list[Hit], vector: np.ndarray) -> list[Hit]:
        """Fused hits in fusion order, scored as speech mode scores them; the RRF value in `rrf_score`.

        RRF values (about 0.03) and cosines (about 0.3) differ in kind: a score cutoff tuned in
        one mode would keep or drop everything in the other. So hybrid reports each chunk's
        cosine with the spoken query, the very score speech mode gives it.
        """
        cosine = {hit.id: hit.score for hit in speech_hits}
        missing = [hit for hit in fused if hit.id not in cosine]  # found through the transcript alone
        if missing:
            scores = self.model.embed_texts([hit.text for hit in missing]) @ vector
            cosine.update({hit.id: float(score) for hit, score in zip(missing, scores)})
        return [Hit(h.rank, h.id, cosine[h.id], h.text, {**h.metadata, "rrf_score": h.score}) for h in fused]

    def _speech_ranked(self, clip: np.ndarray, k: int, where: dict | None, timings: dict[str, float]) -> tuple[np.ndarray, list[Hit]]:
        """The query's vector and its top `k` hits, re-ranked by `keywords` when it is set (the vector
        decoded again, and its semantic half spelled, by its `decoder` first, when it has one)."""
        decoder = self.keywords.decoder if self.keywords is not None else None
        vector, logits = served_vector(self.model, decoder, clip, timings)
        if self.keywords is None:
            return vector, self._search(vector, k, where, timings)
        hits = self._search(vector, max(k, self.keywords.settings.depth), where, timings)
        with timed(timings, "keywords"):
            return vector, self.keywords.rerank(logits, hits)[:k]

    def _transcribe(self, clip: np.ndarray) -> tuple[str, float]:
        timing: dict[str, float] = {}  # its own dict: it runs in a thread beside the speech tower
        with timed(timing, "transcribe"):
            text = self.transcriber.transcribe(clip)
        return text, timing["transcribe"]

    def _search(self, vector: np.ndarray, k: int, where: dict | None, timings: dict[str, float]) -> list[Hit]:
        with timed(timings, "search"):
            return self.index.query(vector, k, where)


def served_vector(model, decoder, clip: np.ndarray, timings: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One clip's query vector as `Retriever` searches it, and its recognizer logits: the speech tower's
    vector, decoded again (and its semantic half spelled) by `decoder` (`kb_decoding.KBDecoder`) when given.
    A query that spells its semantic half runs the speech tower's only if nothing could be spelled."""
    spells = decoder is not None and decoder.spells(model)
    states = model.encode_queries([clip], timings=timings)
    with timed(timings, "encode"):
        vectors, logits = model.heads(states, semantic=not spells)
    logits = logits[0] if logits is not None else None
    if decoder is None:
        return vectors[0], logits
    with timed(timings, "kb_decoding"):
        vector = decoder.query_vector(model, vectors[0], logits)
        if spells and not vector[: model.config.dim].any():  # nothing spelled: the speech tower's half after all
            vector = decoder.query_vector(model, model.heads(states)[0][0], logits)
    return vector, logits


def keyword_reranker(model, texts: Sequence[str], decoding: bool = True, phonemes: Sequence[str | None] | None = None):
    """The keyword re-ranker of a knowledge base's words (`keyword_rerank`; `texts`: every chunk's),
    with its phoneme model to decode queries by (`kb_decoding`) unless `decoding` is False; None for
    a model without a phonetic half. Phonemizes every chunk whose `phonemes` are not given. (A
    seal-rag index is read a page at a time instead: `index_keyword_reranker`.)"""
    if model.phonetic is None:
        return None
    from .kb_decoding import DecodingSettings
    from .keyword_rerank import KeywordReranker

    return KeywordReranker.from_texts(texts, decoding=DecodingSettings() if decoding else None, phonemes=phonemes)


def index_keyword_reranker(model, index: SealIndex, show_progress: bool = False):
    """`keyword_reranker` of everything `index` holds, from the phonemes ingest stored with it;
    read from the tables kept beside the index when they are of its current state, else built
    and kept there (`keyword_tables`). `show_progress`: a bar on stderr while its chunks are
    read, for an index of `PROGRESS_FROM` or more."""
    if model.phonetic is None:
        return None
    from . import keyword_tables

    phonetic = index.phonetic
    if phonetic is not None:
        stamped = keyword_tables.stamp(index)
        kept = keyword_tables.load(phonetic.folder, stamped)
        if kept is not None:
            return kept
    from .kb_decoding import DecodingSettings
    from .keyword_rerank import KeywordReranker

    total, read = index.count(), []

    def pages():
        for ids, texts, phonemes in index.keyword_pages(advance=advance):
            read.extend(ids)
            yield texts, phonemes

    with progress_bar("Reading the index's words for keyword re-ranking", total,
                      enabled=show_progress and total >= PROGRESS_FROM) as advance:
        reranker = KeywordReranker.from_pages(pages(), decoding=DecodingSettings())
    # Kept only if nothing was written meanwhile: ingest writes the phonetic index before Chroma,
    # so a stamp can be newer than the text read under it. Chunk ids are digests of their content.
    if phonetic is not None and keyword_tables.stamp(index) == stamped and set(read) == phonetic.live_ids():
        keyword_tables.save(reranker, phonetic.folder, stamped)
    return reranker


class KeywordCache:
    """A knowledge base's keyword re-ranker (`keyword_reranker`) for retrievers over a store that
    may grow (the framework integrations): made on the first spoken question, and again
    whenever the knowledge base has changed since (its chunk count; a seal-rag index's state)."""

    def __init__(self, model):
        self.model, self._lock = model, threading.Lock()
        self._built: tuple[object, object] | None = None  # (what the knowledge base was, re-ranker)

    def for_index(self, index: SealIndex):
        """The re-ranker of a seal-rag index: read from the tables kept beside it, or built and
        kept there (`index_keyword_reranker`), again whenever the index has changed since."""
        from . import keyword_tables

        with self._lock:
            state = keyword_tables.stamp(index) if index.phonetic is not None else index.count()
            if self._built is None or self._built[0] != state:
                self._built = (state, index_keyword_reranker(self.model, index))
            return self._built[1]

    def get(self, count: int, source: Callable[[], tuple[Sequence[str], Sequence[str | None] | None]]):
        """The re-ranker for a knowledge base of `count` chunks; `source()` reads every chunk's text,
        and its phonemes where the store kept them, else None."""
        with self._lock:
            if self._built is None or self._built[0] != count:
                texts, phonemes = source()
                self._built = (count, keyword_reranker(self.model, texts, phonemes=phonemes))
            return self._built[1]


def retrieve(model, index: SealIndex, audio: AudioSource, k: int = 5, mode: str = "speech", where: dict | None = None) -> list[Hit]:
    """One-shot helper: the top `k` hits for one spoken query."""
    return Retriever(model, index, mode).retrieve(audio, k, where).hits
