"""`seal-rag adapt` and the per-index tuned model `ask` then uses: real models, real TTS, a tiny run."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from .hostile import shared_model  # noqa: F401
from .test_cli import one_line_error, seal

TINY = ("--steps", "3", "--max-sentences", "12")  # seconds, not minutes: enough to move the head


@pytest.fixture(scope="module")
def adapted_db(demo_db, tmp_path_factory):
    """A copy of the demo index (demo_db itself is shared and read-only), adapted by the CLI."""
    db = tmp_path_factory.mktemp("adapt") / "db"
    shutil.copytree(demo_db, db)
    result = seal("adapt", "--db", db, *TINY)
    assert result.returncode == 0, result.stderr.decode()
    return db, result.stdout.decode()


def ask_json(db, question, *extra) -> tuple[dict, str]:
    result = seal("ask", question, "--db", db, "--json", "-k", "3", *extra)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout), result.stderr.decode()


def test_tuned_models_live_in_the_db_or_under_the_cache_for_a_server(tmp_path, monkeypatch):
    from seal_rag.kb_tuning import tuned_dir

    monkeypatch.setenv("SEAL_RAG_CACHE", str(tmp_path / "cache"))
    assert tuned_dir(tmp_path / "db", collection="kb1") == tmp_path / "db" / "tuned" / "kb1"
    assert tuned_dir(host="10.0.0.7", port=8001, collection="kb1") == tmp_path / "cache" / "tuned" / "10.0.0.7-8001" / "kb1"


def test_adapt_trains_five_passes_over_what_it_heard_unless_told_the_steps():
    from seal_rag.adapt import EPOCHS, default_steps

    assert EPOCHS == 5 and default_steps(2000) == 313 and default_steps(4000) == 625
    assert default_steps(3) == 1 and default_steps(64, batch_size=32) == 10


@pytest.mark.slow
def test_adapt_uses_training_voices_and_leaves_the_base_model_alone(embedding, monkeypatch):
    import seal_rag.adapt as adapt_module
    import torch

    splits = []
    pick = adapt_module.pick_voice
    monkeypatch.setattr(adapt_module, "pick_voice",
                        lambda split, rng, families: splits.append((split, families)) or pick(split, rng, families))
    before = embedding.speech.head.adapter.weight.clone()
    texts = [
        "Oxygen is a chemical element. It has the symbol O and atomic number 8. It is a highly reactive nonmetal.",
        "Kenya is a country in East Africa. Its capital and largest city is Nairobi. It is named after Mount Kenya.",
    ]
    result = adapt_module.adapt(embedding, texts, steps=2, batch_size=4, max_sentences=4, progress=False)
    assert splits and set(splits) == {("train", ("espeak", "flite"))}
    assert result.sentences == 8 and result.passages == 2 and result.steps == 2  # 4 sentences, 2 takes each by default
    assert torch.equal(embedding.speech.head.adapter.weight, before)
    assert not torch.equal(result.model.speech.head.adapter.weight, before)
    assert result.model.space_fingerprint == embedding.space_fingerprint


@pytest.mark.slow
def test_adapt_speaks_only_the_families_it_is_given(embedding, monkeypatch):
    import seal_rag.adapt as adapt_module

    families = []
    synthesize = adapt_module.synthesize
    monkeypatch.setattr(adapt_module, "synthesize", lambda text, voice, rng: families.append(voice.engine) or synthesize(text, voice, rng))
    texts = ["Oxygen is a chemical element. It has the symbol O and atomic number 8. It is a highly reactive nonmetal.",
             "Kenya is a country in East Africa. Its capital and largest city is Nairobi. It is named after Mount Kenya."]
    adapt_module.adapt(embedding, texts, steps=1, batch_size=4, max_sentences=6, takes=2, families=("espeak",), progress=False)
    assert len(families) == 12 and set(families) == {"espeak"}  # with both families, 12 draws at a 0.3 flite share hold flite 98.6% of the time


@pytest.mark.slow
def test_adapt_speaks_each_sentence_once_per_take_each_take_its_own_clip(embedding, monkeypatch):
    import numpy as np
    import seal_rag.adapt as adapt_module

    spoken = []
    synthesize = adapt_module.synthesize
    monkeypatch.setattr(adapt_module, "synthesize",
                        lambda text, voice, rng: spoken.append((text, synthesize(text, voice, rng))) or spoken[-1][1])
    texts = ["Oxygen is a chemical element. It has the symbol O and atomic number 8.",
             "Kenya is a country in East Africa. Its capital and largest city is Nairobi."]
    result = adapt_module.adapt(embedding, texts, batch_size=4, max_sentences=3, takes=2, progress=False)
    sentences = {text for text, _ in spoken}
    assert len(sentences) == 3 and len(spoken) == 6  # the cap counts sentences; each is spoken twice
    for sentence in sentences:
        first, second = [clip for text, clip in spoken if text == sentence]
        assert len(first) != len(second) or not np.allclose(first, second)  # another voice, speed or pitch
    assert result.sentences == 6 and result.steps == adapt_module.default_steps(6, 4)  # passes count clips
    with pytest.raises(ValueError, match="takes must be at least 1"):
        adapt_module.adapt(embedding, texts, takes=0, progress=False)

    spoken.clear()  # spans: each sentence once whole, once as a run of its words
    result = adapt_module.adapt(embedding, texts, batch_size=4, max_sentences=3, takes=1, spans=1, progress=False)
    whole, runs = [text for text, _ in spoken[:3]], [text for text, _ in spoken[3:]]  # takes first, then spans
    assert set(whole) == sentences and len(runs) == 3 and result.sentences == 6
    assert all(any(run in sentence for sentence in whole) and len(run.split()) <= 10 for run in runs)


@pytest.mark.slow
def test_adapt_in_bf16_computes_the_fp32_loss_and_keeps_fp32_weights(embedding):
    import seal_rag.adapt as adapt_module
    import torch

    generator = torch.Generator().manual_seed(0)
    states = [torch.randn(frames, 512, generator=generator).half() for frames in (120, 200, 90, 160)]  # (frames, d_model)
    targets = torch.nn.functional.normalize(torch.randn(4, 384, generator=generator), dim=-1)
    contexts = torch.randn(4, 384, generator=generator)
    losses = {bf16: adapt_module._loss(embedding, states, targets, contexts, torch.arange(4), 0.05, 1.0, bf16)
              for bf16 in (False, True)}
    assert losses[True].dtype == torch.float32
    assert abs(losses[True].item() - losses[False].item()) < 0.02 * losses[False].item()

    texts = ["Oxygen is a chemical element. It has the symbol O and atomic number 8.",
             "Kenya is a country in East Africa. Its capital and largest city is Nairobi."]
    result = adapt_module.adapt(embedding, texts, steps=2, batch_size=4, max_sentences=4, takes=1, bf16=True, progress=False)
    head = result.model.speech.head
    assert all(p.dtype == torch.float32 for p in head.parameters())
    assert not torch.equal(head.adapter.weight, embedding.speech.head.adapter.weight)


@pytest.mark.slow
def test_adapt_tunes_the_phoneme_recognizer_only_when_asked_and_keeps_the_index_space(embedding):
    import seal_rag.adapt as adapt_module
    import torch

    texts = ["Oxygen is a chemical element. It has the symbol O and atomic number 8.",
             "Kenya is a country in East Africa. Its capital and largest city is Nairobi."]
    shipped = {k: v.clone() for k, v in embedding.phonetic.recognizer.state_dict().items()}
    plain = adapt_module.adapt(embedding, texts, steps=1, batch_size=4, max_sentences=4, takes=1, progress=False)
    tuned = adapt_module.adapt(embedding, texts, steps=1, batch_size=4, max_sentences=4, takes=1, recognizer_lr=1e-3, progress=False)
    for name, weight in shipped.items():
        assert torch.equal(plain.model.phonetic.recognizer.state_dict()[name], weight)
        assert torch.equal(embedding.phonetic.recognizer.state_dict()[name], weight)  # the base model is left alone
    assert not torch.equal(tuned.model.phonetic.recognizer.classes.weight, shipped["classes.weight"])
    # The same seed gives the same clips and the same head: the recognizer's pass comes after it.
    assert torch.equal(tuned.model.speech.head.adapter.weight, plain.model.speech.head.adapter.weight)
    assert tuned.model.space_fingerprint == embedding.space_fingerprint and tuned.model.fingerprint != plain.model.fingerprint
    assert not any(p.requires_grad for p in tuned.model.phonetic.recognizer.parameters())
    assert not tuned.model.phonetic.recognizer.training


def test_a_span_is_a_run_of_the_sentences_words_as_long_as_a_question():
    import random

    from seal_rag.adapt import SPAN_WORDS, _span

    rng = random.Random(0)
    sentence = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France."
    for _ in range(50):
        run = _span(sentence, rng)
        assert SPAN_WORDS[0] <= len(run.split()) <= SPAN_WORDS[1] and run.rstrip(",;:") in sentence
    assert _span("Four words only here.", rng) == "Four words only here."


def test_adapt_cli_refuses_zero_takes_before_any_work(tmp_path):
    result = seal("adapt", "--db", tmp_path / "db", "--takes", "0")
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Invalid value for '--takes'" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "db").exists()


@pytest.mark.slow
def test_adapt_moves_the_tuned_reader_layers_at_their_own_rate(embedding):
    import seal_rag.adapt as adapt_module
    import torch

    def tuned(model):
        return {k: v.clone() for k, v in model.speech.head.named_parameters() if k.startswith("reader.tuned.")}

    assert tuned(embedding), "the shipped head has tuned MiniLM layers"
    texts = ["Oxygen is a chemical element. It has the symbol O and atomic number 8.",
             "Kenya is a country in East Africa. Its capital and largest city is Nairobi."]
    moved = {}
    for scale in (0.0, 1.0):
        result = adapt_module.adapt(embedding, texts, steps=2, batch_size=4, max_sentences=4, reader_lr_scale=scale, progress=False)
        before, after = tuned(embedding), tuned(result.model)
        moved[scale] = max((after[k] - before[k]).abs().max().item() for k in before)
        assert not torch.equal(result.model.speech.head.adapter.weight, embedding.speech.head.adapter.weight)
        assert all(p.requires_grad for p in result.model.speech.head.parameters())  # a saved tuned model trains like any model
    assert moved[0.0] == 0 and moved[1.0] > 1e-5


@pytest.mark.slow
def test_adapt_writes_a_tuned_model_in_the_index_space(adapted_db, embedding, demo_question):
    from seal_rag import SpeechEmbedding, UntrainedModelWarning
    from seal_rag.embedding import shipped_fingerprint
    from seal_rag.kb_tuning import TUNING_FILE, tuned_dir
    from seal_rag.store import SealIndex

    db, stdout = adapted_db
    path = tuned_dir(db)
    assert path == db / "tuned" / "seal_rag" and f"now answers with {path}" in stdout
    record = json.loads((path / TUNING_FILE).read_text())
    assert record["base_fingerprint"] == embedding.fingerprint == shipped_fingerprint()
    assert record["sentences"] >= 2 and record["passages"] > 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)  # adapted from a released model: released too
        adapted = SpeechEmbedding.from_pretrained(path)
    assert adapted.space_fingerprint == embedding.space_fingerprint and adapted.fingerprint != embedding.fingerprint
    SealIndex.open(adapted, db)  # the index takes its queries as they are: no re-embedding
    # Only the speech head moved: the same text vectors, other speech vectors.
    passage = "The Apollo program landed the first humans on the Moon."
    np.testing.assert_allclose(adapted.embed_texts(passage), embedding.embed_texts(passage), atol=1e-6)
    assert np.abs(adapted.embed_audio(demo_question) - embedding.embed_audio(demo_question)).max() > 1e-4


@pytest.mark.slow
def test_ask_answers_with_the_tuned_model_unless_told_not_to(adapted_db, demo_question):
    from seal_rag import UntrainedModelWarning
    from seal_rag.retrieve import Retriever
    from seal_rag.kb_tuning import tuned_dir

    db, _ = adapted_db
    row, _ = ask_json(db, demo_question)
    assert row["model"] == {"source": "tuned", "name": "seal-base-minilm+tuned", "path": str(tuned_dir(db))}
    shipped = seal("ask", demo_question, "--db", db, "-k", "3", "--timings", "--no-tuned")
    assert shipped.returncode == 0, shipped.stderr.decode()
    assert "Model: shipped seal-base-minilm" in shipped.stdout.decode()
    # The Python retriever makes the same choice and ranking as the command.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedModelWarning)  # the shipped model is released: no warning
        retriever = Retriever.open(db=str(db))
    assert retriever.model_choice.source == "tuned"
    assert [h.id for h in retriever.retrieve(demo_question, k=3).hits] == [s["id"] for s in row["sources"]]


@pytest.mark.slow
def test_a_stale_or_broken_tuned_model_is_warned_about_and_ignored(adapted_db, demo_question, tmp_path):
    from seal_rag.kb_tuning import TUNING_FILE

    stale = tmp_path / "stale"
    shutil.copytree(adapted_db[0], stale)
    record_path = stale / "tuned" / "seal_rag" / TUNING_FILE
    record = json.loads(record_path.read_text())
    record["base_fingerprint"] = "0123456789abcdef"  # as if seal-rag had shipped a new model since
    record_path.write_text(json.dumps(record))
    row, stderr = ask_json(stale, demo_question)
    assert row["model"]["source"] == "shipped" and len(row["sources"]) == 3
    assert "ignoring the tuned model" in stderr and "0123456789abcdef" in stderr and "seal-rag adapt" in stderr

    (stale / "tuned" / "seal_rag" / "model.safetensors").unlink()
    record["base_fingerprint"] = json.loads((adapted_db[0] / "tuned" / "seal_rag" / TUNING_FILE).read_text())["base_fingerprint"]
    record_path.write_text(json.dumps(record))
    row, stderr = ask_json(stale, demo_question)
    assert row["model"]["source"] == "shipped" and "ignoring the tuned model" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_adapt_without_chunks_fails_with_one_line_naming_the_fix(embedding, tmp_path):
    from seal_rag.store import SealIndex

    SealIndex.open(embedding, tmp_path / "empty", create=True)
    error = one_line_error(seal("adapt", "--db", tmp_path / "empty", *TINY))
    assert "is empty" in error and "seal-rag ingest" in error
    assert not (tmp_path / "empty" / "tuned").exists()
    error = one_line_error(seal("adapt", "--db", tmp_path / "missing", *TINY))
    assert "no index at" in error and "--db" in error
    assert not (tmp_path / "missing").exists()


# ---- the tuned model's swap, its leftovers, and checks made before the minutes of work --------------

KILLED_IN_THE_SWAP = r"""
import os, sys, types
from pathlib import Path
from seal_rag import kb_tuning

path = Path(sys.argv[1])

class Model:  # as much of a model as save_tuned touches
    space_fingerprint = "space"
    def __init__(self, tag):
        self.tag = tag
    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "model.txt").write_text(self.tag)

def adaptation(tag):
    return types.SimpleNamespace(model=Model(tag), passages=1, sentences=2, seconds=0.0)

base = types.SimpleNamespace(name="base", fingerprint="f")
kb_tuning.save_tuned(adaptation("first"), base, path, "db", "seal_rag")
rename = Path.rename
def killed_before_the_second(self, target):
    if Path(target) == path:  # the old model is moved aside, the new one not yet in place
        os.kill(os.getpid(), 9)
    return rename(self, target)
Path.rename = killed_before_the_second
kb_tuning.save_tuned(adaptation("second"), base, path, "db", "seal_rag")
"""


def _reaped() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_an_adapt_killed_in_its_final_swap_loses_no_model(tmp_path, monkeypatch):
    # A reviewer's kill -9 between the two renames left only `.seal_rag.old-PID` and `.seal_rag.tmp-PID`:
    # `ask` quietly answered with the shipped model, and no later run removed the 82 MB.
    from seal_rag import kb_tuning

    path = kb_tuning.tuned_dir(tmp_path / "db")
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_THE_SWAP, str(path)], capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    assert not path.exists() and len(list(path.parent.glob(".seal_rag.*-*"))) == 2
    monkeypatch.setattr(kb_tuning, "stale_reason", lambda record: None)
    monkeypatch.setattr(kb_tuning.SpeechEmbedding, "from_pretrained", classmethod(lambda cls, path=None, name=None: path))
    choice = kb_tuning.choose_model(db=tmp_path / "db")
    assert choice.source == "tuned" and (path / "model.txt").read_text() == "second"  # the newer, complete one
    with kb_tuning.tuning(path):  # the next adapt sweeps what is left
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".seal_rag.") and "lock" not in p.name] == [
            f".seal_rag.tmp-{os.getpid()}"]  # its own staging only
    assert (path / "model.txt").read_text() == "second"


def test_adapt_sweeps_leftovers_of_dead_runs_only_and_keeps_a_live_ones(tmp_path):
    from seal_rag.kb_tuning import TUNING_FILE, tuning

    path = tmp_path / "db" / "tuned" / "seal_rag"
    path.mkdir(parents=True)
    (path / TUNING_FILE).write_text("{}")
    dead, live = _reaped(), os.getppid()
    for name in (f".seal_rag.tmp-{dead}", f".seal_rag.old-{dead}", f".seal_rag.tmp-{live}", f".other.tmp-{dead}"):
        (path.parent / name).mkdir()
        (path.parent / name / "model.safetensors").write_bytes(b"x")
    with tuning(path):
        pass
    left = sorted(p.name for p in path.parent.iterdir())
    assert left == [".other.tmp-%d" % dead, ".seal_rag.lock", f".seal_rag.tmp-{live}", "seal_rag"]
    assert (path / TUNING_FILE).is_file()


@pytest.fixture
def small_db(shared_model, tmp_path):  # noqa: F811 - the fixture imported above
    """An index of two short documents (seconds to make), for the adapt command with its training faked."""
    from seal_rag.ingest import ingest_folder
    from seal_rag.store import SealIndex

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "oxygen.txt").write_text("Oxygen is a chemical element. It has the symbol O and atomic number 8.")
    (docs / "kenya.txt").write_text("Kenya is a country in East Africa. Its capital and largest city is Nairobi.")
    db = tmp_path / "small \x1b[2J db"  # a name a terminal would obey
    ingest_folder(shared_model, docs, SealIndex.open(shared_model, db, create=True), show_progress=False)
    return db


def test_adapt_checks_where_it_writes_before_speaking_and_training(small_db, monkeypatch):
    # It spoke and trained for tens of minutes, then failed: "... (File exists): make .../tuned writable".
    import seal_rag.adapt as adapt_module

    def no_work(*args, **kwargs):
        raise AssertionError("adapt spoke and trained before it checked where the model goes")

    monkeypatch.setattr(adapt_module, "adapt", no_work)
    (small_db / "tuned").write_text("not a folder")
    error = one_line_error(seal("adapt", "--db", small_db))
    assert "tuned is a file, not a folder" in error and "move or delete it" in error


def test_a_second_adapt_of_one_collection_is_refused_at_once(small_db, monkeypatch):
    import seal_rag.adapt as adapt_module
    from seal_rag.kb_tuning import tuned_dir, tuning

    monkeypatch.setattr(adapt_module, "adapt", lambda *args, **kwargs: pytest.fail("it trained beside another adapt"))
    with tuning(tuned_dir(small_db)):  # the first one, still at work
        error = one_line_error(seal("adapt", "--db", small_db))
    assert "another `seal-rag adapt` is tuning" in error and "wait for it" in error


def test_adapt_prints_the_index_path_escaped(small_db, shared_model, monkeypatch):  # noqa: F811
    import seal_rag.adapt as adapt_module
    from seal_rag.kb_tuning import TUNING_FILE, tuned_dir

    class Model:
        space_fingerprint = shared_model.space_fingerprint

        def save_pretrained(self, folder):
            Path(folder).mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(adapt_module, "adapt", lambda model, texts, **kwargs: adapt_module.Adaptation(Model(), len(texts), 4, 1, 0.0, 0.0))
    result = seal("adapt", "--db", small_db)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "\x1b" not in out and "small \\x1b[2J db" in out
    assert (tuned_dir(small_db) / TUNING_FILE).is_file()


def test_adapt_of_an_index_built_by_another_model_says_what_to_do_for_adapt(shared_model, tmp_path):  # noqa: F811
    # It said "query with that model or re-ingest", but adapt has no --model.
    from types import SimpleNamespace

    from seal_rag.store import SealIndex

    custom = SimpleNamespace(name="custom", space_fingerprint="0123456789abcdef", dim=shared_model.dim, phonetic=None)
    SealIndex.open(custom, tmp_path / "db", create=True)
    error = one_line_error(seal("adapt", "--db", tmp_path / "db"))
    assert "was built by model 'custom'" in error and "query with that model" not in error
    assert "adapt tunes the shipped model only" in error and "seal-rag ingest DOCS --db NEW" in error
    assert not (tmp_path / "db" / "tuned").exists()


class CountingText:
    """A text model whose vector of a text does not depend on the batch, counting what it encodes."""

    def __init__(self):
        self.encoded = []

    def encode_base(self, texts):
        import torch

        self.encoded += texts
        return torch.stack([torch.tensor([float(len(t)), float(sum(map(ord, t))), float(hash(t) % 997)]) for t in texts])


def test_adapt_encodes_each_distinct_text_once_into_the_same_vectors(monkeypatch):
    # Every take and span re-encoded its sentence and passage: minutes of the default run, half of it repeated.
    from types import SimpleNamespace

    import seal_rag.adapt as adapt_module
    import torch

    monkeypatch.setattr(adapt_module, "ENCODE_BLOCK", 3)  # several blocks
    texts = ["one", "two", "one", "three", "two", "four", "five", "one"]
    model = SimpleNamespace(text=CountingText())
    encoded = adapt_module._encode_once(model, texts, progress=False)
    assert sorted(model.text.encoded) == sorted(set(texts))
    assert torch.equal(encoded, CountingText().encode_base(texts))  # row for row what encoding each clip's text gave


@pytest.mark.slow
def test_encoding_each_text_once_gives_the_text_models_vectors(embedding, monkeypatch):
    import seal_rag.adapt as adapt_module
    import torch

    monkeypatch.setattr(embedding.text, "bf16", False)  # bf16 rounds each batch its own way: 1e-3 between two copies of a text
    monkeypatch.setattr(adapt_module, "ENCODE_BLOCK", 4)
    sentences = ["Oxygen is a chemical element.", "It has the symbol O and atomic number 8.",
                 "Kenya is a country in East Africa.", "Its capital and largest city is Nairobi.",
                 "The Apollo program landed the first humans on the Moon."]
    texts = sentences + sentences[:3] + sentences[::-1]  # as takes and spans repeat them
    with torch.no_grad():
        before = embedding.text.encode_base(texts)
    torch.testing.assert_close(adapt_module._encode_once(embedding, texts, progress=False), before, atol=1e-6, rtol=0)
