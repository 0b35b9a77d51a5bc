"""A LCEL chain from a spoken (or typed) question to an answer with its sources."""

from __future__ import annotations

from typing import Any, AsyncIterator, Iterator

import numpy as np
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate
from langchain_core.runnables import (Runnable, RunnableConfig, RunnableGenerator, RunnableLambda, RunnableParallel,
                                      RunnableSerializable)
from langchain_core.runnables.utils import AddableDict
from pydantic import ConfigDict, Field
from seal_rag.answer import SYSTEM_PROMPT, context_block, extractive_answer, quoted
from seal_rag.store import Hit

from ._audio import AudioInput, SpokenQuestion, spoken_question
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
    tower's of the transcript (`question`) for cascade mode and of a typed question
    (`audio` None or the typed text).

    Args:
        embeddings: The `SealEmbeddings` that embedded the documents.
        mode: The retriever's mode.
        sample_rate: Rate of raw sample arrays.

    Example:
        >>> answer = SealExtractiveAnswer(embeddings=embeddings)
        >>> answer.invoke({"context": retriever.invoke("q.wav"), "audio": "q.wav", "question": "q.wav"})
    """

    model_config = ConfigDict(extra="forbid")

    embeddings: SealEmbeddings
    mode: Mode = "speech"
    sample_rate: int | None = Field(default=None, gt=0)

    def invoke(self, input: dict, config: RunnableConfig | None = None, **kwargs: Any) -> str:
        return self._call_with_config(self._answer, input, config)

    def _answer(self, inputs: dict) -> str:
        rate = self.sample_rate or self.embeddings.sample_rate
        spoken = spoken_question(inputs["audio"], rate) if inputs.get("audio") is not None else None
        if spoken is None or spoken.audio is None or self.mode == "cascade":
            # The text tower of what was searched: the typed question, or cascade's transcript.
            # As seal-rag does, an empty transcript (ASR heard nothing) still needs a vector.
            text = str(inputs["question"]) if spoken is None or spoken.audio is not None else str(spoken)
            vector = self.embeddings.speech_embedding.embed_texts([text or " "])[0]
        else:
            vector = self.embeddings.audio_vector(spoken.audio, spoken.sample_rate)
        return extractive_answer(self.embeddings.speech_embedding, np.asarray(vector), documents_to_hits(inputs["context"]))


class AudioChain(RunnableSerializable[AudioInput, dict]):
    """`build_audio_chain`'s runnable: the input becomes a `SpokenQuestion` before any callback sees it.

    So tracers log `<audio q.wav 3.2 s>`, not megabytes of audio. `pick` and `|` keep the
    wrapper outermost.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    chain: Runnable
    sample_rate: int = Field(gt=0)

    def invoke(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.chain.invoke(spoken_question(input, self.sample_rate), config, **kwargs)

    async def ainvoke(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self.chain.ainvoke(spoken_question(input, self.sample_rate), config, **kwargs)

    def stream(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[Any]:
        yield from self.chain.stream(spoken_question(input, self.sample_rate), config, **kwargs)

    async def astream(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        async for chunk in self.chain.astream(spoken_question(input, self.sample_rate), config, **kwargs):
            yield chunk

    def astream_events(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        return self.chain.astream_events(spoken_question(input, self.sample_rate), config, **kwargs)

    def astream_log(self, input: AudioInput, config: RunnableConfig | None = None, **kwargs: Any) -> AsyncIterator[Any]:
        return self.chain.astream_log(spoken_question(input, self.sample_rate), config, **kwargs)

    def pick(self, keys: str | list[str]) -> AudioChain:
        return AudioChain(chain=self.chain.pick(keys), sample_rate=self.sample_rate)

    def __or__(self, other: Any) -> AudioChain:
        return AudioChain(chain=self.chain | other, sample_rate=self.sample_rate)


def build_audio_chain(
    retriever: SealSpeechRetriever,
    llm: BaseLanguageModel | None = None,
    *,
    prompt: BasePromptTemplate | None = None,
    question: Runnable | None = None,
) -> Runnable:
    """`{"context": retriever, "question": transcript} | prompt | llm | parser`, keeping the sources.

    Args:
        retriever: The `SealSpeechRetriever` to search with.
        llm: Any LangChain chat model (e.g. `ChatOpenAI(base_url=...)` for an
            OpenAI-compatible server). None answers extractively, with no model at all.
        prompt: Takes `context` (numbered passages) and `question`; defaults to seal-rag's.
        question: Turns the question (a `SpokenQuestion`) into the prompt's question.
            Defaults to the transcript when a chat model or the retriever's mode needs one
            (made automatically: a chat model never reads a file name), else the audio's
            reference; a typed question is used as typed.

    Returns:
        A runnable taking a path, bytes, array, `{"audio": ...}` or a typed question, and
        returning `{"context": [Document], "question": str, "transcript": str | None,
        "audio": str | None, "model": str, "answer": str}`: `audio` is the file's path, or
        `<audio 51,244 bytes 3.2 s>` for bytes and arrays (None when typed); `model` names the
        seal-rag model. Use `.pick("answer")` for the answer alone.

    Example:
        >>> chain = build_audio_chain(retriever)  # extractive
        >>> result = chain.invoke("question.wav")
        >>> result["answer"], [d.metadata["source"] for d in result["context"]]
    """
    rate = retriever.sample_rate or retriever.embeddings.sample_rate
    if question is None:
        if llm is not None or retriever.mode != "speech":
            # Share the retriever's ASR: the clip is then transcribed once per question.
            question = retriever.transcriber or SealTranscriber(sample_rate=rate)
        else:
            question = RunnableLambda(_as_asked, name="question")
    transcribes = isinstance(question, SealTranscriber)
    gather = RunnableParallel(context=retriever, question=question, audio=RunnableLambda(_same, name="audio"))
    if llm is None:
        answer: Runnable = SealExtractiveAnswer(
            embeddings=retriever.embeddings, mode=retriever.mode, sample_rate=retriever.sample_rate
        )
    else:
        answer = RunnableLambda(_prompt_inputs, name="format_context") | (prompt or DEFAULT_PROMPT) | llm | StrOutputParser()
    report = _reporter(transcribes, retriever.embeddings.speech_embedding.name)
    return AudioChain(chain=gather.assign(answer=answer) | report, sample_rate=rate)


def _reporter(transcribes: bool, model: str) -> RunnableGenerator:
    """The chain's last step: `audio` as its reference, plus `transcript` and `model`.

    A generator over the chunks, so a chat model's answer streams through piece by piece
    (a plain function would wait for the whole answer before `stream` yielded anything).
    """

    def passed_on(chunk: dict, asked: dict) -> AddableDict:
        if "audio" in chunk:
            asked["audio"] = chunk["audio"]
        if transcribes and "question" in chunk:  # the transcript; a streaming `question` runnable sends pieces
            asked["question"] = asked["question"] + chunk["question"] if "question" in asked else chunk["question"]
        return AddableDict({key: value.reference if key == "audio" else value for key, value in chunk.items()})

    def last(asked: dict) -> AddableDict:
        spoken: SpokenQuestion = asked["audio"]
        heard = transcribes and spoken.audio is not None
        return AddableDict(transcript=asked["question"] if heard else None, model=model)

    def report(chunks: Iterator[dict]) -> Iterator[dict]:
        asked: dict = {}
        for chunk in chunks:
            yield passed_on(chunk, asked)
        yield last(asked)

    async def areport(chunks: AsyncIterator[dict]) -> AsyncIterator[dict]:
        asked: dict = {}
        async for chunk in chunks:
            yield passed_on(chunk, asked)
        yield last(asked)

    return RunnableGenerator(report, areport, name="report")


def _as_asked(question: SpokenQuestion) -> str:
    # Speech mode with no chat model: nothing needs words, so none are made.
    return str(question) if question.audio is None else question.reference


def _same(question: SpokenQuestion) -> SpokenQuestion:
    return question


def _prompt_inputs(inputs: dict) -> dict:
    # A transcript is untrusted too: what was said can spell out the prompt's own tags.
    return {"context": format_context(inputs["context"]), "question": quoted(str(inputs["question"]))}
