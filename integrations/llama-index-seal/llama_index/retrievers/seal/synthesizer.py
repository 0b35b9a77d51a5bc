"""`SealExtractiveSynthesizer`: answers without any LLM, as `seal-rag ask` does with none set."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Generator, Sequence

import numpy as np
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.prompts.mixin import PromptDictType
from llama_index.core.response_synthesizers.base import BaseSynthesizer, QueryTextType
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.settings import Settings
from llama_index.embeddings.seal import SealEmbedding
from seal_rag.answer import extractive_answer
from seal_rag.store import Hit

from ._query import as_query_bundle


def default_embed_model() -> SealEmbedding:
    """`Settings.embed_model` when it is a `SealEmbedding`, else the model shipped with seal-rag."""
    # Read the private slot: the public property would build an OpenAI embedding when unset.
    configured = getattr(Settings, "_embed_model", None)
    return configured if isinstance(configured, SealEmbedding) else SealEmbedding()


class SealExtractiveSynthesizer(BaseSynthesizer):
    """The sentence of the top node nearest the query vector, from seal-rag's extractive answer.

    The query vector is the one the retriever searched with (it caches it on the
    `QueryBundle`); failing that, the bundle's audio is embedded, or its text when it is
    a typed question. No language model is loaded or called.

    Args:
        embed_model: The `SealEmbedding` that embedded the documents; defaults to
            `Settings.embed_model` when it is one, else the model shipped with seal-rag.
        callback_manager: LlamaIndex callbacks; defaults to `Settings.callback_manager`.
        empty_response: The answer when nothing was retrieved.
        streaming: Return a `StreamingResponse` (the answer arrives in one piece).

    Example:
        >>> from llama_index.core.query_engine import RetrieverQueryEngine
        >>> engine = RetrieverQueryEngine(retriever, response_synthesizer=SealExtractiveSynthesizer())
        >>> response = engine.query("question.wav")
        >>> response.response, [n.node.node_id for n in response.source_nodes]
    """

    def __init__(
        self,
        embed_model: SealEmbedding | None = None,
        callback_manager: CallbackManager | None = None,
        empty_response: str | None = None,
        streaming: bool = False,
    ) -> None:
        # BaseSynthesizer.__init__ resolves `Settings.llm`, which builds an OpenAI client
        # (or fails without a key). This synthesizer uses no LLM, so it sets the state
        # the base class reads and skips that.
        self._embed_model = embed_model or default_embed_model()
        self._llm = None
        self._callback_manager = callback_manager or Settings.callback_manager
        self._streaming = streaming
        self._output_cls = None
        self._empty_response = empty_response or "Empty Response"
        self._multimodal = False

    @property
    def embed_model(self) -> SealEmbedding:
        return self._embed_model

    @property
    def callback_manager(self) -> CallbackManager:
        return self._callback_manager

    @callback_manager.setter
    def callback_manager(self, callback_manager: CallbackManager) -> None:
        self._callback_manager = callback_manager

    def _get_prompts(self) -> PromptDictType:
        return {}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        """No prompts: nothing is generated."""

    # The base class turns nodes into text chunks with metadata mixed in; the extractive
    # answer wants the nodes' own text and the search vector, so pass both along.
    def synthesize(
        self,
        query: QueryTextType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> RESPONSE_TYPE:
        response_kwargs.setdefault("scored_nodes", nodes)
        response_kwargs.setdefault("query_bundle", query)
        return super().synthesize(query, nodes, additional_source_nodes, **response_kwargs)

    async def asynthesize(
        self,
        query: QueryTextType,
        nodes: list[NodeWithScore],
        additional_source_nodes: Sequence[NodeWithScore] | None = None,
        **response_kwargs: Any,
    ) -> RESPONSE_TYPE:
        response_kwargs.setdefault("scored_nodes", nodes)
        response_kwargs.setdefault("query_bundle", query)
        return await super().asynthesize(query, nodes, additional_source_nodes, **response_kwargs)

    def get_response(
        self,
        query_str: str,
        text_chunks: Sequence[str],
        scored_nodes: Sequence[NodeWithScore] | None = None,
        query_bundle: QueryTextType | None = None,
        **response_kwargs: Any,
    ) -> str | Generator[str, None, None]:
        answer = self._answer(query_str, text_chunks, scored_nodes, query_bundle)
        return _one_piece(answer) if self._streaming else answer

    async def aget_response(
        self,
        query_str: str,
        text_chunks: Sequence[str],
        scored_nodes: Sequence[NodeWithScore] | None = None,
        query_bundle: QueryTextType | None = None,
        **response_kwargs: Any,
    ) -> str | AsyncGenerator[str, None]:
        answer = await asyncio.to_thread(self._answer, query_str, text_chunks, scored_nodes, query_bundle)
        return _one_piece_async(answer) if self._streaming else answer

    def _answer(
        self,
        query_str: str,
        text_chunks: Sequence[str],
        scored_nodes: Sequence[NodeWithScore] | None,
        query_bundle: QueryTextType | None,
    ) -> str:
        if scored_nodes:
            hits = [Hit(rank, n.node.node_id, n.score or 0.0, n.node.get_content(), dict(n.node.metadata))
                    for rank, n in enumerate(scored_nodes, 1)]
        else:
            hits = [Hit(rank, str(rank), 0.0, text, {}) for rank, text in enumerate(text_chunks, 1)]
        query = query_bundle if isinstance(query_bundle, QueryBundle) else query_str
        return extractive_answer(self._embed_model.speech_embedding, self._query_vector(query), hits)

    def _query_vector(self, query: QueryBundle | str) -> np.ndarray:
        bundle = as_query_bundle(query, self._embed_model.sample_rate)
        if bundle.embedding is not None:
            return np.asarray(bundle.embedding, dtype=np.float32)
        if bundle.kind == "audio":
            return self._embed_model.audio_vector(bundle.audio, bundle.sample_rate)
        return np.asarray(self._embed_model.get_query_embedding(bundle.query_str), dtype=np.float32)


def _one_piece(answer: str) -> Generator[str, None, None]:
    yield answer


async def _one_piece_async(answer: str) -> AsyncGenerator[str, None]:
    yield answer
