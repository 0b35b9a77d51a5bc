"""SealEmbedding: the text tower for LlamaIndex, the speech tower beside it."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import soundfile as sf
from seal_rag import AudioFileNotFoundError, NotAudioError


def test_settings_are_pydantic_fields_and_the_model_is_private(seal_embedding, speech_embedding):
    fields = type(seal_embedding).model_fields
    assert {"model_path", "sample_rate", "embed_batch_size", "model_name"} <= set(fields)
    assert seal_embedding.model_name == speech_embedding.name
    assert seal_embedding.speech_embedding is speech_embedding
    dumped = seal_embedding.to_dict()  # LlamaIndex serialises settings, never the torch model
    assert dumped["class_name"] == "SealEmbedding" and dumped["sample_rate"] == 16000
    assert "_model" not in dumped and "speech_embedding" not in dumped


def test_text_side_is_the_text_tower(seal_embedding, speech_embedding):
    texts = ["The Brooklyn Bridge opened in 1883.", "Oxygen is abundant."]
    expected = speech_embedding.embed_texts(texts)
    assert np.allclose(seal_embedding.get_text_embedding_batch(texts), expected, atol=1e-5)
    assert np.allclose(seal_embedding.get_text_embedding(texts[0]), expected[0], atol=1e-5)
    assert np.allclose(seal_embedding.get_query_embedding(texts[1]), expected[1], atol=1e-5)


def test_audio_from_path_bytes_and_array_agree(seal_embedding, speech_embedding, recorded_flac):
    from_path = np.asarray(seal_embedding.get_audio_embedding(recorded_flac))
    from_bytes = np.asarray(seal_embedding.get_audio_embedding(recorded_flac.read_bytes()))
    samples, rate = sf.read(recorded_flac, dtype="float32")
    from_array = np.asarray(seal_embedding.get_audio_embedding(samples, sample_rate=rate))
    assert from_path.shape == (speech_embedding.dim,)
    assert np.isclose(np.linalg.norm(from_path), 1.0, atol=1e-4)
    assert np.allclose(from_path, speech_embedding.embed_audio([recorded_flac])[0], atol=1e-5)
    assert np.allclose(from_bytes, from_path, atol=1e-5)
    assert np.allclose(from_array, from_path, atol=1e-4)


def test_async_methods_do_not_block_the_event_loop(seal_embedding, speech_embedding, recorded_flac):
    texts = [f"passage number {i} about bridges and towers" for i in range(256)]

    async def main():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        start = time.perf_counter()
        vectors = await seal_embedding.aget_text_embedding_batch(texts)
        audio = await seal_embedding.aget_audio_embedding(recorded_flac)
        query = await seal_embedding.aget_query_embedding("how old is the bridge")
        elapsed = time.perf_counter() - start
        done.set()
        await task
        return vectors, audio, query, ticks, elapsed

    vectors, audio, query, ticks, elapsed = asyncio.run(main())
    assert len(vectors) == len(texts) and len(audio) == len(query) == speech_embedding.dim
    # Blocking calls would leave the ticker one turn per await; a free loop ticks throughout.
    assert ticks >= 10, f"the event loop ticked {ticks} times in {elapsed:.2f} s"
    assert np.allclose(vectors[0], seal_embedding.get_text_embedding(texts[0]), atol=1e-5)


def test_bad_audio_raises_the_projects_errors(seal_embedding, not_audio, tmp_path):
    with pytest.raises(NotAudioError, match="not readable audio"):
        seal_embedding.get_audio_embedding(not_audio)
    with pytest.raises(AudioFileNotFoundError):
        seal_embedding.get_audio_embedding(tmp_path / "missing.wav")


def test_vector_store_index_and_chroma_work_unchanged(seal_embedding, tmp_path, passages):
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    # A plain collection LlamaIndex creates and fills itself (no seal-rag stamp, l2 space).
    collection = chromadb.PersistentClient(path=str(tmp_path / "db")).get_or_create_collection("llama_docs")
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    documents = [Document(text=text, metadata=meta, id_=key) for key, text, meta in passages]
    index = VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=seal_embedding)
    assert collection.count() == len(passages)

    found = index.as_retriever(similarity_top_k=2).retrieve("When did the Brooklyn Bridge open?")
    assert found[0].node.ref_doc_id == "bridge"
    assert found[0].node.metadata["title"] == "Bridges"


def test_a_spoken_query_is_the_recording_not_its_name(speech_embedding, question_wav, recorded_flac, tmp_path):
    from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler
    from llama_index.core.storage.kvstore import SimpleKVStore
    from llama_index.embeddings.seal import SealEmbedding

    debug = LlamaDebugHandler()
    model = SealEmbedding(speech_embedding=speech_embedding, embeddings_cache=SimpleKVStore(),
                          callback_manager=CallbackManager([debug]))
    expected = np.asarray(model.get_audio_embedding(recorded_flac))
    # A Path, bytes or samples: LlamaIndex's events take strings, and failed on these.
    samples, _ = sf.read(recorded_flac, dtype="float32")  # recorded at 16 kHz, the model's rate
    for query in (recorded_flac, recorded_flac.read_bytes(), samples):
        assert np.allclose(model.get_query_embedding(query), expected, atol=1e-4)
    assert np.allclose(asyncio.run(model.aget_query_embedding(recorded_flac.read_bytes())), expected, atol=1e-4)
    from seal_rag import NotAudioError

    for wrong in (None, 123, [recorded_flac]):  # named, as before this path existed, not a TypeError
        with pytest.raises(NotAudioError):
            model.get_query_embedding(wrong)
    chunks = [c for e in debug.get_events() for c in e.payload.get("chunks", [])]
    assert chunks and all(c.startswith("<audio") for c in chunks)  # a description, never the audio's bytes
    # The query cache keys a string by itself: a file re-recorded under its old name is heard anew.
    upload = tmp_path / "upload.wav"
    upload.write_bytes(question_wav.read_bytes())
    first = np.asarray(model.get_query_embedding(str(upload)))
    sf.write(upload, *sf.read(recorded_flac))
    assert not np.allclose(model.get_query_embedding(str(upload)), first)
    assert np.allclose(model.get_query_embedding(str(upload)), expected, atol=1e-4)
