"""The LCEL chain: spoken question in, answer and sources out."""

from __future__ import annotations

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel
from langchain_seal import SealExtractiveAnswer, SealSpeechRetriever, build_audio_chain
from seal_rag import NotAudioError
from seal_rag.answer import extractive_answer

TOP_K = 5


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model was sent."""

    def __init__(self):
        self.prompts: list[str] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.prompts.extend(m.content for batch in messages for m in batch)


def test_extractive_chain_with_no_model(kb_store, served, speech_embedding, question_wav):
    retriever = SealSpeechRetriever(vectorstore=kb_store, k=TOP_K)
    result = build_audio_chain(retriever).invoke(str(question_wav))
    assert set(result) == {"context", "question", "transcript", "audio", "model", "answer"}
    assert result["audio"] == str(question_wav) and result["model"] == speech_embedding.name
    assert result["transcript"] is None  # speech mode with no chat model: nothing needed words
    vector, hits = served.query_vector, served.hits  # ranked as seal-rag ranks, decoding and re-ranking included
    assert [d.id for d in result["context"]] == [h.id for h in hits]
    assert result["answer"] == extractive_answer(speech_embedding, vector, hits)
    assert result["answer"] in hits[0].text
    # The extractive runnable is an ordinary Runnable on its own, too.
    alone = SealExtractiveAnswer(embeddings=retriever.embeddings).invoke(
        {"context": result["context"], "question": str(question_wav), "audio": str(question_wav)}
    )
    assert alone == result["answer"]


def test_any_chat_model_reads_transcript_and_context(kb_store, question_wav, transcriber):
    retriever = SealSpeechRetriever(vectorstore=kb_store, k=3, mode="cascade", transcriber=transcriber)
    chat_model = FakeListChatModel(responses=["The Rankine cycle [1]."])
    recorder = PromptRecorder()
    chain = build_audio_chain(retriever, chat_model)
    result = chain.invoke({"audio": question_wav.read_bytes()}, config={"callbacks": [recorder]})
    assert result["answer"] == "The Rankine cycle [1]."
    assert len(result["context"]) == 3 and "steam" in result["question"].lower()
    prompt = "\n".join(recorder.prompts)
    assert f"Question: {result['question']}" in prompt
    assert result["context"][0].page_content[:60] in prompt and "[1]" in prompt
    assert chain.pick("answer").invoke(str(question_wav)) == "The Rankine cycle [1]."


def test_chain_rejects_bad_input(kb_store, not_audio):
    chain = build_audio_chain(SealSpeechRetriever(vectorstore=kb_store))
    with pytest.raises(NotAudioError):
        chain.invoke(str(not_audio))
    with pytest.raises(NotAudioError, match="'audio' key"):
        chain.invoke({"wav": "question.wav"})


def test_a_chat_models_answer_streams_through_the_chain(kb_store, speech_embedding):
    import asyncio

    answer = "The Rankine cycle [1]."
    chain = build_audio_chain(SealSpeechRetriever(vectorstore=kb_store, k=2), FakeListChatModel(responses=[answer]))
    typed = "How do steam engines turn heat into work?"  # typed: its own transcript, no ASR to load
    pieces = list(chain.pick("answer").stream(typed))
    assert len(pieces) > 1 and "".join(pieces) == answer  # the report step used to hold it back whole

    async def astream():
        return [piece async for piece in chain.pick("answer").astream(typed)]

    assert len(asyncio.run(astream())) == len(pieces)
    chunks = list(chain.stream(typed))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged["answer"] == answer and merged["question"] == typed
    assert merged["audio"] is None and merged["transcript"] is None and merged["model"] == speech_embedding.name
    assert set(merged) == set(chain.invoke(typed))
