"""Ask the demo knowledge base a spoken question through LlamaIndex, offline.

    python demos/llamaindex_query_engine.py [QUESTION.wav] [--mode auto|speech|cascade|hybrid]
                                            [-k 5] [--llm openai:MODEL]

LlamaIndex reads demos/kb/ (SealReader: seal-rag's chunks) and indexes it with `SealEmbedding` into a
Chroma collection stamped by seal-rag. `SealSpeechRetriever` then answers the spoken question
inside a `RetrieverQueryEngine`: extractively with no --llm (no language model at all), or
with any OpenAI-compatible chat server (OPENAI_BASE_URL, OPENAI_API_KEY), which reads the
transcript.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.embeddings.seal import SealEmbedding
from llama_index.readers.seal import SealReader
from llama_index.retrievers.seal import SealSpeechRetriever
from llama_index.vector_stores.chroma import ChromaVectorStore

from demo_common import HERE, KB, chosen_mode, gold_source, parse_args
from seal_rag import UntrainedModelWarning
from seal_rag.safe_text import for_terminal
from seal_rag.store import SealIndex


def make_llm(spec: str):
    if spec == "none":
        return None
    if not spec.startswith("openai:"):
        raise SystemExit(f"--llm must be 'none' or 'openai:MODEL', not {spec!r}")
    from llama_index.core.llms import LLMMetadata
    from llama_index.llms.openai import OpenAI

    class CompatibleOpenAI(OpenAI):
        """OpenAI's client for any OpenAI-compatible server: no check against OpenAI's model list."""

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=8192, num_output=self.max_tokens or -1, is_chat_model=True, model_name=self.model)

    return CompatibleOpenAI(model=spec.split(":", 1)[1], api_base=os.environ.get("OPENAI_BASE_URL"),
                            api_key=os.environ.get("OPENAI_API_KEY") or "not-set")


def main() -> None:
    args = parse_args(__doc__, "source nodes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)  # said below, in one line
        embed_model = SealEmbedding()
    model = embed_model.speech_embedding
    mode = chosen_mode(args.mode, model)

    with tempfile.TemporaryDirectory() as db:
        # A collection stamped by seal-rag: the retriever then checks the model exactly.
        collection = SealIndex.open(model, db=db, create=True).collection
        storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
        # seal-rag's chunks (~200 tokens, what the text tower reads), indexed as nodes: kept whole.
        documents = SealReader().load_data(KB)
        index = VectorStoreIndex(documents, storage_context=storage, embed_model=embed_model)
        print(f"Indexed {len(documents)} chunks from {KB.relative_to(HERE.parent)}/ with LlamaIndex.")

        retriever = SealSpeechRetriever(index=index, embed_model=embed_model, similarity_top_k=args.k, mode=mode)
        engine = retriever.as_query_engine(llm=make_llm(args.llm))
        response = engine.query(str(args.audio))

    transcript = response.metadata["transcript"]  # made for an LLM, and in cascade and hybrid modes
    print(f"Question: {for_terminal(args.audio.name)} (mode {mode})" + (f", heard: {transcript!r}" if transcript else ""))
    print(f"Answer: {for_terminal(response.response, multiline=True)}")  # the model's (or a passage's) text
    print("Sources:")
    for rank, scored in enumerate(response.source_nodes, 1):
        print(f"  {rank}. score {scored.score:.3f}  {for_terminal(Path(scored.node.metadata['source']).name)}")
    gold = gold_source(args.audio)
    if gold:
        names = [Path(scored.node.metadata["source"]).name for scored in response.source_nodes]
        found = f"retrieved at rank {names.index(gold) + 1}" if gold in names else "not retrieved"
        print(f"Gold passage (questions.jsonl): {for_terminal(gold)}, {found}")


if __name__ == "__main__":
    main()
