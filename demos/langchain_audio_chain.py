"""Ask the demo knowledge base a spoken question through a LangChain LCEL chain, offline.

    python demos/langchain_audio_chain.py [QUESTION.wav] [--mode auto|speech|cascade|hybrid]
                                          [-k 5] [--llm openai:MODEL]

seal-rag ingests demos/kb/ into its Chroma index; `langchain_chroma.Chroma` wraps that
collection with `SealEmbeddings`, and `SealSpeechRetriever` feeds the chain
`{"context": retriever, "question": transcript_or_audio} | prompt | chat_model | parser`.
With no --llm an extractive runnable stands in for the chat model (no language model at
all); `--llm openai:MODEL` uses `ChatOpenAI` against OPENAI_BASE_URL (any OpenAI-compatible
server), which reads the transcript.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import chromadb
from langchain_chroma import Chroma
from langchain_seal import SealEmbeddings, SealSpeechRetriever, build_audio_chain

from demo_common import HERE, KB, chosen_mode, gold_source, parse_args
from seal_rag import UntrainedModelWarning
from seal_rag.safe_text import for_terminal
from seal_rag.ingest import ingest_folder
from seal_rag.store import DEFAULT_COLLECTION, SealIndex


def make_chat_model(spec: str):
    if spec == "none":
        return None
    if not spec.startswith("openai:"):
        raise SystemExit(f"--llm must be 'none' or 'openai:MODEL', not {spec!r}")
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=spec.split(":", 1)[1], base_url=os.environ.get("OPENAI_BASE_URL"),
                      api_key=os.environ.get("OPENAI_API_KEY") or "not-set")


def main() -> None:
    args = parse_args(__doc__, "documents")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedModelWarning)  # said below, in one line
        embeddings = SealEmbeddings()
    model = embeddings.speech_embedding
    mode = chosen_mode(args.mode, model)

    with tempfile.TemporaryDirectory() as db:
        summary = ingest_folder(model, KB, SealIndex.open(model, db=db, create=True), show_progress=False)
        print(f"Ingested {summary.total} chunks from {KB.relative_to(HERE.parent)}/ with seal-rag.")

        store = Chroma(client=chromadb.PersistentClient(path=db), collection_name=DEFAULT_COLLECTION,
                       embedding_function=embeddings, create_collection_if_not_exists=False)
        retriever = SealSpeechRetriever(vectorstore=store, k=args.k, mode=mode)
        chain = build_audio_chain(retriever, make_chat_model(args.llm))
        result = chain.invoke({"audio": str(args.audio)})

    heard = f", heard: {result['transcript']!r}" if result["transcript"] else ""
    print(f"Question: {for_terminal(args.audio.name)} (mode {mode}){heard}")
    print(f"Answer: {for_terminal(result['answer'], multiline=True)}")  # the model's (or a passage's) text
    print("Sources:")
    for doc in result["context"]:
        print(f"  {doc.metadata['rank']}. score {doc.metadata['score']:.3f}  {for_terminal(Path(doc.metadata['source']).name)}")
    gold = gold_source(args.audio)
    if gold:
        names = [Path(doc.metadata["source"]).name for doc in result["context"]]
        found = f"retrieved at rank {names.index(gold) + 1}" if gold in names else "not retrieved"
        print(f"Gold passage (questions.jsonl): {for_terminal(gold)}, {found}")


if __name__ == "__main__":
    main()
