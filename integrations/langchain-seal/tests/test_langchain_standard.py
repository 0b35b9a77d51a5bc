"""LangChain's standard suites from `langchain-tests`, run unmodified.

No standard test is skipped or overridden. The suites build their objects from class
properties, which cannot request fixtures, so an autouse fixture hands each test instance
the session's model, demo index and question first (loading the model once per session).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_seal import SealEmbeddings, SealSpeechRetriever
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests

# The suites' async tests need pytest-asyncio's mark; on their sync tests the mark is inert
# and pytest-asyncio's warning about it is noise.
ASYNC_SUITE = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:.*is marked with '@pytest.mark.asyncio' but it is not an async function"),
]


class TestSealEmbeddingsUnit(EmbeddingsUnitTests):
    pytestmark = ASYNC_SUITE

    @pytest.fixture(autouse=True)
    def _session_model(self, speech_embedding):
        self.speech_embedding = speech_embedding

    @property
    def embeddings_class(self) -> type[SealEmbeddings]:
        return SealEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"speech_embedding": self.speech_embedding, "batch_size": 32}


class TestSealEmbeddingsIntegration(EmbeddingsIntegrationTests):
    pytestmark = ASYNC_SUITE

    @pytest.fixture(autouse=True)
    def _session_model(self, speech_embedding):
        self.speech_embedding = speech_embedding

    @property
    def embeddings_class(self) -> type[SealEmbeddings]:
        return SealEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"speech_embedding": self.speech_embedding}


class TestSealSpeechRetrieverIntegration(RetrieversIntegrationTests):
    pytestmark = ASYNC_SUITE

    @pytest.fixture(autouse=True)
    def _session_index(self, kb_store, question_wav):
        self.kb_store, self.question_wav = kb_store, question_wav

    @property
    def retriever_constructor(self) -> type[SealSpeechRetriever]:
        return SealSpeechRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"vectorstore": self.kb_store}

    @property
    def retriever_query_example(self) -> str:
        return str(self.question_wav)  # a spoken question: the path of a .wav file
