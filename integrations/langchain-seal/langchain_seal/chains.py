"""A LCEL chain from a spoken question to an answer with its sources."""

from __future__ import annotations

from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableParallel, RunnableSerializable
from pydantic import Field
from seal_rag.answer import SYSTEM_PROMPT, context_block, extractive_answer
from seal_rag.store import Hit

from ._audio import audio_source, sample_rate_of
from .embeddings import SealEmbeddings
from .retrievers import Mode, SealSpeechRetriever
from .transcription import SealTranscriber

# The same instructions `seal-rag ask --llm` gives its chat model.
DEFAULT_PROMPT = ChatPromptTemplate.from_messages(
    [("system", SYSTEM_PROMPT), ("human", "Context:\n{context}\n\nQuestion: {question}")]
)


def documents_to_hits(documents: list[Document]) -> list[Hit]:
    """Retrieved documents back as seal-rag hits, in rank order."""
    return [
        Hit(rank, doc.id or "", float(doc.metadata.get("score", 0.0)), doc.page_content, dict(doc.metadata))
        for rank, doc in enumerate(documents, 1)
    ]


def format_context(documents: list[Document]) -> str:
    """Numbered passages with their titles, as `seal-rag ask` shows them to a chat model."""
    return context_block(documents_to_hits(documents))


class SealExtractiveAnswer(RunnableSerializable[dict, str]):
    """Stands in for the chat model: the sentence of the top passage nearest the question.

    Input: `{"context": [Document, ...], "question": ..., "audio": ...}`. The query vector
    is the one retrieval used: the speech tower's for speech and hybrid modes, the text
    tower's of the transcript (`question`) for cascade mode.

    Args:
        embeddings: The `SealEmbeddings` that embedded the documents.
        mode: The retriever's mode.
        sample_rate: Rate of raw sample arrays.

    Example:
        >>> answer = SealExtractiveAnswer(embeddings=embeddings)
        >>> answer.invoke({"context": retriever.invoke("q.wav"), "audio": "q.wav", "question": "q.wav"})
    """

    embeddings: SealEmbeddings
    mode: Mode = "speech"
    sample_rate: int | None = Field(default=None, gt=0)

    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self._call_with_config(self._answer, input, config)

    def _answer(self, inputs: dict) -> str:
        if self.mode == "cascade":
            # As seal-rag does: an empty transcript (ASR heard nothing) still needs a vector.
            vector = np.asarray(self.embeddings.embed_query(str(inputs["question"]) or " "), dtype=np.float32)
        else:
            spoken = inputs["audio"]
            rate = sample_rate_of(spoken, self.sample_rate or self.embeddings.sample_rate)
            vector = self.embeddings.audio_vector(audio_source(spoken), rate)
        return extractive_answer(self.embeddings.speech_embedding, vector, documents_to_hits(inputs["context"]))


def build_audio_chain(
    retriever: SealSpeechRetriever,
    llm: BaseLanguageModel | None = None,
    *,
    prompt: BasePromptTemplate | None = None,
    question: Runnable | None = None,
) -> Runnable:
    """`{"context": retriever, "question": transcript_or_audio} | prompt | llm | parser`, keeping the sources.

    Args:
        retriever: The `SealSpeechRetriever` to search with.
        llm: Any LangChain chat model (e.g. `ChatOpenAI(base_url=...)` for an
            OpenAI-compatible server). None answers extractively, with no model at all.
        prompt: Takes `context` (numbered passages) and `question`; defaults to seal-rag's.
        question: Turns the chain input into the prompt's question. Defaults to the
            transcript when a chat model or the retriever's mode needs one, else the audio itself.

    Returns:
        A runnable taking a path, bytes, array or `{"audio": ...}` and returning
        `{"context": [Document], "question": ..., "audio": ..., "answer": str}`.
        Use `.pick("answer")` for the answer alone.

    Example:
        >>> chain = build_audio_chain(retriever)  # extractive
        >>> result = chain.invoke("question.wav")
        >>> result["answer"], [d.metadata["source"] for d in result["context"]]
    """
    if question is None:
        if llm is not None or retriever.mode != "speech":
            # Share the retriever's ASR: the clip is then transcribed once per question.
            rate = retriever.sample_rate or retriever.embeddings.sample_rate
            question = retriever.transcriber or SealTranscriber(sample_rate=rate)
        else:
            question = RunnableLambda(audio_source, name="audio")
    gather = RunnableParallel(context=retriever, question=question, audio=RunnableLambda(_audio_with_rate, name="audio"))
    if llm is None:
        answer: Runnable = SealExtractiveAnswer(
            embeddings=retriever.embeddings, mode=retriever.mode, sample_rate=retriever.sample_rate
        )
    else:
        answer = RunnableLambda(_prompt_inputs, name="format_context") | (prompt or DEFAULT_PROMPT) | llm | StrOutputParser()
    return gather.assign(answer=answer)


def _audio_with_rate(input: Any) -> Any:
    # Keep a dict input whole, so its sample_rate travels with the samples.
    audio_source(input)  # fail early, with the project's error, on unusable input
    return input


def _prompt_inputs(inputs: dict) -> dict:
    return {"context": format_context(inputs["context"]), "question": inputs["question"]}
