"""`SealQueryEngine`: a `RetrieverQueryEngine` for spoken and typed questions."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import BaseSynthesizer
from llama_index.core.schema import QueryBundle, QueryType
from seal_rag.audio import AudioSource
from seal_rag.errors import ArgumentError

from ._query import SpokenQueryBundle, as_query_bundle
from .prompt_guard import SEAL_TEMPLATES, GuardedSynthesizer
from .synthesizer import SealExtractiveSynthesizer

# What `index.as_query_engine(...)` takes for its retriever, but belongs to SealSpeechRetriever here.
RETRIEVER_SETTINGS = frozenset({"similarity_top_k", "filters", "mode", "sample_rate", "keywords", "transcribe"})


class SealQueryEngine(RetrieverQueryEngine):
    """Answers spoken (or typed) questions with a `SealSpeechRetriever`, leaving the caller's query alone.

    What a plain `RetrieverQueryEngine` cannot do with audio, this one does:
    - the question is copied into a query of its own: a `QueryBundle` the caller passes is
      never changed, and callbacks and tracers see `<audio q.wav 3.2 s>`, not the audio;
    - an LLM synthesizer reads the transcript (made automatically), never a file name;
    - `Response.metadata` carries `transcript` (None when none was made), `audio` (the file's
      path, or the description for bytes and arrays; None for a typed question), `model`
      (the seal-rag model's name) and `mode` ("speech", "cascade", "hybrid", or "text" for
      a typed question), beside LlamaIndex's per-node metadata.

    Build it with `retriever.as_query_engine(llm=None, streaming=False, ...)` or `from_args`.

    Args:
        retriever: The `SealSpeechRetriever`.
        response_synthesizer: Defaults to `SealExtractiveSynthesizer` (no LLM).
        node_postprocessors: LlamaIndex postprocessors, e.g. `SimilarityPostprocessor`.
        callback_manager: LlamaIndex callbacks.
    """

    def __init__(
        self,
        retriever,
        response_synthesizer: BaseSynthesizer | None = None,
        node_postprocessors: list[BaseNodePostprocessor] | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        response_synthesizer = response_synthesizer or SealExtractiveSynthesizer(
            retriever.embed_model, callback_manager=callback_manager
        )
        super().__init__(retriever, response_synthesizer, node_postprocessors, callback_manager)

    @classmethod
    def from_args(
        cls,
        retriever,
        llm: LLM | None = None,
        response_synthesizer: BaseSynthesizer | None = None,
        streaming: bool = False,
        **kwargs: Any,
    ) -> SealQueryEngine:
        """An engine answering with `llm`, or extractively (no LLM at all) when it is None.

        Args:
            retriever: The `SealSpeechRetriever`.
            llm: Any LlamaIndex LLM; None answers extractively (never `Settings.llm`). It reads
                seal-rag's system prompt and each passage as a `<passage>` block whose text
                cannot close it (`GuardedSynthesizer`), as `seal-rag ask --llm` sends them.
            response_synthesizer: Instead of `llm`, a synthesizer of your own.
            streaming: A `StreamingResponse` (`print_response_stream`), with or without an LLM.
            **kwargs: `RetrieverQueryEngine.from_args`'s (`node_postprocessors`,
                `callback_manager`, and with an LLM `response_mode`, templates, ...).

        Raises:
            ValueError: LLM settings (a template, a response mode) given without an LLM.
        """
        misplaced = sorted(set(kwargs) & RETRIEVER_SETTINGS)
        if misplaced:  # LlamaIndex's from_args would ignore them
            raise ArgumentError(f"{', '.join(misplaced)} belong to the retriever: set them on SealSpeechRetriever(...) "
                                "(or retriever.similarity_top_k = n), not on its query engine")
        if llm is not None and response_synthesizer is None:
            for name, template in SEAL_TEMPLATES.items():
                kwargs.setdefault(name, template)
            engine = super().from_args(retriever, llm=llm, streaming=streaming, **kwargs)
            engine._response_synthesizer = GuardedSynthesizer(engine._response_synthesizer)
            return engine
        ignored = sorted(set(kwargs) - {"node_postprocessors", "callback_manager"})
        if ignored:
            raise ValueError(
                f"{', '.join(ignored)} configure an LLM's answer: pass llm=..., or drop them for "
                f"{'your synthesizer' if response_synthesizer else 'the extractive answer'}"
            )
        if response_synthesizer is None:
            response_synthesizer = SealExtractiveSynthesizer(
                retriever.embed_model, callback_manager=kwargs.get("callback_manager"), streaming=streaming
            )
        return cls(retriever, response_synthesizer, kwargs.get("node_postprocessors"), kwargs.get("callback_manager"))

    # ---- the caller's question becomes a query of our own ------------------------------

    def query(self, str_or_query_bundle: QueryType | AudioSource) -> RESPONSE_TYPE:
        return super().query(self._own(str_or_query_bundle))

    async def aquery(self, str_or_query_bundle: QueryType | AudioSource) -> RESPONSE_TYPE:
        return await super().aquery(self._own(str_or_query_bundle))

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        bundle = self._own(query_bundle)
        return self._report(super()._query(bundle), bundle)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        bundle = self._own(query_bundle)
        return self._report(await super()._aquery(bundle), bundle)

    def _own(self, query: Any) -> SpokenQueryBundle:
        # A SpokenQueryBundle is one query() made a moment ago; anything else is copied.
        bundle = as_query_bundle(query, self._retriever.sample_rate)
        # Only an LLM synthesizer reads query_str; the extractive one reads the vector.
        bundle.needs_transcript = not isinstance(self._response_synthesizer, SealExtractiveSynthesizer)
        return bundle

    def _report(self, response: RESPONSE_TYPE, bundle: SpokenQueryBundle) -> RESPONSE_TYPE:
        retriever = self._retriever
        mode = retriever.mode if bundle.kind == "audio" else bundle.kind
        response.metadata = {
            **(response.metadata or {}),
            "transcript": bundle.transcript,
            "audio": bundle.reference,
            "model": retriever.embed_model.model_name,
            "mode": mode,
        }
        return response
