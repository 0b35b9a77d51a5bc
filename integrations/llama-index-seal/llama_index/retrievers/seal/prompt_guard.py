"""`GuardedSynthesizer`: an LLM reads the passages as `seal-rag ask --llm` sends them.

Passages are documents' text, their titles come from documents, and the question is a
transcript or what a user typed: none of it may read as the prompt's own words. LlamaIndex's
synthesizers paste node text and metadata into their templates as they are, so a passage
holding "---------------------\nIgnore the context" ends the context block early. Here each
node reaches the LLM as one `<passage n=... file=... title=...>` block with its tags defused
(`seal_rag.answer.context_block`), the question defused too, under seal-rag's system prompt.
The response's `source_nodes` stay the nodes retrieved: only the prompt sees the blocks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.prompts.mixin import PromptDictType, PromptMixinType
from llama_index.core.response_synthesizers.base import BaseSynthesizer, QueryTextType
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from seal_rag.answer import SYSTEM_PROMPT, context_block, quoted
from seal_rag.store import Hit

# An engine with an LLM answers under seal-rag's system prompt in every response mode that reads
# passages: these replace LlamaIndex's defaults (`text_qa_template=`, ... replace them in turn).
SEAL_QA_TEMPLATE = ChatPromptTemplate(message_templates=[
    ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
    ChatMessage(role=MessageRole.USER, content="Context:\n{context_str}\n\nQuestion: {query_str}"),
])
SEAL_REFINE_TEMPLATE = ChatPromptTemplate(message_templates=[
    ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
    ChatMessage(role=MessageRole.USER, content=(
        "Question: {query_str}\n\nAn answer so far: {existing_answer}\n\nMore context:\n{context_msg}\n\n"
        "Improve the answer with these passages if they help; otherwise give it unchanged.")),
])
SEAL_TEMPLATES = {"text_qa_template": SEAL_QA_TEMPLATE, "summary_template": SEAL_QA_TEMPLATE,
                  "refine_template": SEAL_REFINE_TEMPLATE}


class GuardedSynthesizer(BaseSynthesizer):
    """Wraps an LLM synthesizer so its prompt holds defused passage blocks and a defused question.

    Args:
        inner: The synthesizer `get_response_synthesizer` made (any response mode).
    """

    def __init__(self, inner: BaseSynthesizer) -> None:
        # No BaseSynthesizer.__init__: it would resolve Settings.llm; the inner one holds the LLM.
        self._inner = inner
        self._llm = inner._llm
        self._callback_manager = inner.callback_manager
        self._streaming = inner._streaming
        self._output_cls = inner._output_cls
        self._empty_response = inner._empty_response
        self._multimodal = False

    @property
    def inner(self) -> BaseSynthesizer:
        return self._inner

    # The prompts are the inner synthesizer's, under their usual keys.
    def _get_prompts(self) -> PromptDictType:
        return self._inner.get_prompts()

    def _get_prompt_modules(self) -> PromptMixinType:
        return {}

    def _update_prompts(self, prompts: PromptDictType) -> None:
        self._inner.update_prompts(prompts)

    def synthesize(self, query: QueryTextType, nodes: list[NodeWithScore],
                   additional_source_nodes: Sequence[NodeWithScore] | None = None, **response_kwargs: Any) -> RESPONSE_TYPE:
        response = self._inner.synthesize(_guarded_query(query), _passages(nodes), None, **response_kwargs)
        return _with_sources(response, nodes, additional_source_nodes)

    async def asynthesize(self, query: QueryTextType, nodes: list[NodeWithScore],
                          additional_source_nodes: Sequence[NodeWithScore] | None = None,
                          **response_kwargs: Any) -> RESPONSE_TYPE:
        response = await self._inner.asynthesize(_guarded_query(query), _passages(nodes), None, **response_kwargs)
        return _with_sources(response, nodes, additional_source_nodes)

    # Callers that hand over text chunks themselves get them defused as well.
    def get_response(self, query_str: str, text_chunks: Sequence[str], **response_kwargs: Any):
        return self._inner.get_response(quoted(query_str), [quoted(c) for c in text_chunks], **response_kwargs)

    async def aget_response(self, query_str: str, text_chunks: Sequence[str], **response_kwargs: Any):
        return await self._inner.aget_response(quoted(query_str), [quoted(c) for c in text_chunks], **response_kwargs)


def _guarded_query(query: QueryTextType) -> QueryTextType:
    if isinstance(query, str):
        return quoted(query)
    if dataclasses.is_dataclass(query):  # QueryBundle and seal-rag's SpokenQueryBundle: a copy, the caller's stays
        return dataclasses.replace(query, query_str=quoted(query.query_str))
    return QueryBundle(query_str=quoted(query.query_str), embedding=query.embedding)


def _passages(nodes: list[NodeWithScore]) -> list[NodeWithScore]:
    """Each node as the text of one passage block, with no metadata of its own left to paste raw."""
    blocks = []
    for rank, scored in enumerate(nodes, 1):
        node = scored.node
        hit = Hit(rank, node.node_id, scored.score or 0.0, node.get_content(), dict(node.metadata))
        blocks.append(NodeWithScore(node=TextNode(id_=node.node_id, text=context_block([hit])), score=scored.score))
    return blocks


def _with_sources(response: RESPONSE_TYPE, nodes: list[NodeWithScore],
                  additional: Sequence[NodeWithScore] | None) -> RESPONSE_TYPE:
    response.source_nodes = list(nodes) + list(additional or [])
    return response
