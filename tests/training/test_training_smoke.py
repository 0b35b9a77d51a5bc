"""The whole training recipe on a few dozen clips: `training/configs/smoke.toml`.

Synthesises clips with espeak-ng and flite, caches their encoder states, runs a few steps of
stage 1 and stage 2, and checks that the loss falls, that a killed run resumes, and that the
exported model loads with `SpeechEmbedding.from_pretrained` and gives the head's vectors.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from training import text_sources
    from training.config import load_config

    text_sources.use_data(REPO / "tests" / "data")  # the vendored miniature data folder

    root = tmp_path_factory.mktemp("smoke")
    config = load_config(REPO / "training" / "configs" / "smoke.toml")
    config["data"]["cache_dir"] = str(root / "cache")
    config["stage1"]["out_dir"] = str(root / "stage1")
    config["stage2"]["out_dir"] = str(root / "stage2")
    config["stage2"]["init"] = str(root / "stage1" / "best_head.pt")
    return config


@pytest.fixture(scope="module")
def trained(smoke):
    from training import cache, stage1, stage2

    cache.run(smoke, "val")
    cache.run(smoke, "train")
    stage1.train(smoke)
    stage2.train(smoke)
    return smoke


def _losses(out_dir: str) -> list[float]:
    lines = [json.loads(line) for line in (Path(out_dir) / "log.jsonl").open()]
    return [line["loss"] for line in lines if "loss" in line]


def test_tts_voices_are_split_and_speak():
    from seal_rag.tts import synthesize
    from seal_rag.voices import espeak_voices, flite_voices

    splits = {s: {v.label for v in espeak_voices(s) + flite_voices(s)} for s in ("train", "val", "bench")}
    assert not splits["train"] & splits["val"] and not splits["train"] & splits["bench"] and not splits["val"] & splits["bench"]
    for voice in (espeak_voices("train")[0], flite_voices("train")[0]):
        clip = synthesize("What is the capital of Kenya?", voice, random.Random(0))
        assert clip.dtype == np.float32 and 0.5 < clip.size / 16000 < 5


def test_cache_is_complete_and_resumable(trained):
    from training import cache
    from training.data import load_clips

    clips = load_clips(trained["data"]["cache_dir"], "train")
    assert len(clips) == sum(trained["data"]["mix"].values())
    assert clips.states.dtype == torch.float16 and clips.targets.shape == (len(clips), 384)
    # A second run finds every shard done and does nothing.
    before = {p: p.stat().st_mtime for p in Path(trained["data"]["cache_dir"]).glob("train_*.npz")}
    cache.run(trained, "train")
    assert {p: p.stat().st_mtime for p in Path(trained["data"]["cache_dir"]).glob("train_*.npz")} == before


def test_losses_fall(trained):
    for stage in ("stage1", "stage2"):
        losses = _losses(trained[stage]["out_dir"])
        assert losses[-1] < losses[0], f"{stage} loss did not fall: {losses}"


def test_stage2_alone_trains_from_an_untrained_head(trained, tmp_path):
    from training import stage2

    alone = json.loads(json.dumps(trained))
    alone["stage2"].update(init="", out_dir=str(tmp_path / "stage2_only"))
    stage2.train(alone)
    losses = _losses(alone["stage2"]["out_dir"])
    assert losses[-1] < losses[0], f"stage 2 alone did not learn: {losses}"
    assert (tmp_path / "stage2_only" / "best_head.pt").is_file()


def test_checkpoint_holds_model_optimizer_step_config_and_resumes(trained):
    from training import stage1

    checkpoint = torch.load(Path(trained["stage1"]["out_dir"]) / "ckpt.pt", weights_only=False)
    assert {"model", "optimizer", "step", "config", "shards"} <= checkpoint.keys()
    assert checkpoint["step"] == trained["stage1"]["steps"]
    # Asking for more steps continues from the checkpoint instead of starting over.
    more = json.loads(json.dumps(trained))
    more["stage1"]["steps"] += 5
    stage1.train(more)
    assert torch.load(Path(trained["stage1"]["out_dir"]) / "ckpt.pt", weights_only=False)["step"] == more["stage1"]["steps"]


def test_exported_model_loads_and_matches_the_head(trained):
    from seal_rag import SpeechEmbedding
    from training.cache import pool_states
    from training.data import load_clips
    from training.model import HeadModel, seal_config

    out = Path(trained["stage2"]["out_dir"])
    embedding = SpeechEmbedding.from_pretrained(out / "best")
    head = HeadModel(seal_config(trained["model"]), trained["data"]["pool"])
    head.load_state_dict(torch.load(out / "best_head.pt"))
    head.eval()
    audio = load_clips(trained["data"]["cache_dir"], "val").audio[:4]
    with torch.no_grad():
        raw = embedding.speech.encode_clips(audio)  # fp32 torch encoder, full rate
        released = embedding.speech.embed_states(raw)
        pooled = [torch.from_numpy(pool_states(s.numpy(), head.pool)) for s in raw]
        from seal_rag.speech_tower import pad_batch

        trained_head = head.embed(*pad_batch(pooled))
    assert torch.allclose(released, trained_head, atol=1e-4)
    assert embedding.trained


def test_adapt_keeps_the_index_space(trained, tmp_path):
    from seal_rag import SpeechEmbedding
    from seal_rag.adapt import adapt

    model = SpeechEmbedding.from_pretrained(Path(trained["stage2"]["out_dir"]) / "best")
    texts = [
        "Oxygen is a chemical element. It has the symbol O and atomic number 8. It is a highly reactive nonmetal.",
        "Kenya is a country in East Africa. Its capital and largest city is Nairobi. The country is named after Mount Kenya.",
    ]
    adapted = adapt(model, texts, steps=5, batch_size=4, progress=False).model
    adapted.save_pretrained(tmp_path / "adapter")
    reloaded = SpeechEmbedding.from_pretrained(tmp_path / "adapter")
    assert reloaded.space_fingerprint == model.space_fingerprint
    assert reloaded.fingerprint != model.fingerprint
    assert torch.equal(reloaded.speech.head.adapter.weight, adapted.speech.head.adapter.weight)


def test_a_grown_plan_keeps_its_shards_and_caches_only_new_clips(trained, tmp_path):
    import shutil

    from training import cache
    from training.data import completed_shards, load_clips

    base = json.loads(json.dumps(trained))
    base["data"]["cache_dir"] = str(tmp_path / "cache")
    shutil.copytree(trained["data"]["cache_dir"], base["data"]["cache_dir"], ignore=shutil.ignore_patterns("joined_*"))
    directory = Path(base["data"]["cache_dir"])
    plan = (directory / "plan_train.jsonl").read_text().splitlines()
    old = {p.name: p.stat().st_mtime for p in directory.glob("train_*.npz")}

    grown = json.loads(json.dumps(base))
    grown["data"]["extend"] = [{"squad_question": 4, "medquad_question": 6}]  # 32 + 10: a partial last shard
    cache.run(grown, "train")
    grown_plan = (directory / "plan_train.jsonl").read_text().splitlines()
    assert grown_plan[: len(plan)] == plan and len(grown_plan) == len(plan) + 10
    assert {name: (directory / name).stat().st_mtime for name in old} == old
    new_medquad = [json.loads(line)["text"] for line in grown_plan[len(plan):] if '"medquad_question"' in line]
    assert len(new_medquad) == 6 and not set(new_medquad) & {json.loads(line)["text"] for line in plan}

    grown["data"]["extend"].append({"medquad_question": 3})  # the partial last shard is made again, with 3 more
    last = max(directory.glob("train_*.npz")).name
    cache.run(grown, "train")
    assert len(load_clips(directory, "train", [last])) == 5
    assert len(load_clips(directory, "train", completed_shards(grown["data"], "train"))) == 45
    # The config the cache was made with still sees its own plan and shards, and has nothing to do.
    assert len(load_clips(directory, "train", completed_shards(base["data"], "train"))) == 32
    cache.run(base, "train")
    assert {name: (directory / name).stat().st_mtime for name in old} == old


def test_a_config_naming_shards_caches_and_trains_on_only_those(trained, tmp_path):
    import shutil

    from training import cache
    from training.data import completed_shards

    config = json.loads(json.dumps(trained))
    config["data"]["cache_dir"] = str(tmp_path / "cache")
    shutil.copytree(trained["data"]["cache_dir"], config["data"]["cache_dir"], ignore=shutil.ignore_patterns("joined_*", "train_*"))
    directory = Path(config["data"]["cache_dir"])
    config["data"]["shards"] = "1:2"
    cache.run(config, "train")
    assert sorted(p.name for p in directory.glob("train_*.npz")) == ["train_00001.npz"]
    cache.run(config, "train", only={0})  # --shards overrides the config's
    assert completed_shards(config["data"], "train") == ["train_00001.npz"]  # stages still see only the named ones
    del config["data"]["shards"]
    assert completed_shards(config["data"], "train") == ["train_00000.npz", "train_00001.npz"]
    cache.run(config, "train")  # the rest later, as from a config without shards
    assert len(list(directory.glob("train_*.npz"))) == len(list(Path(trained["data"]["cache_dir"]).glob("train_*.npz")))


def test_stage1_with_the_ctc_branch_learns_and_exports_without_it(trained, tmp_path):
    from seal_rag import SpeechEmbedding
    from training import stage1, stage2

    run = json.loads(json.dumps(trained))
    run["stage1"].update(out_dir=str(tmp_path / "s1_ctc"), w_ctc=1.0, steps=40)
    run["stage2"].update(out_dir=str(tmp_path / "s2"), init=str(tmp_path / "s1_ctc" / "best_head.pt"), steps=5)
    stage1.train(run)
    lines = [json.loads(line) for line in (tmp_path / "s1_ctc" / "log.jsonl").open() if '"ctc"' in line]
    assert lines[-1]["ctc"] < lines[0]["ctc"] and lines[-1]["loss"] == pytest.approx(lines[-1]["mse"] + lines[-1]["ctc"], rel=1e-4)
    assert any(k.startswith("ctc.") for k in torch.load(tmp_path / "s1_ctc" / "best_head.pt"))
    exported = SpeechEmbedding.from_pretrained(tmp_path / "s1_ctc" / "best")
    assert not any("ctc" in name for name in exported.state_dict())
    stage2.train(run)  # stage 2 starts from the head and leaves the branch behind


def test_stage1_continues_a_head_with_context_layers_and_exports_them(trained, tmp_path):
    from seal_rag import SpeechEmbedding
    from seal_rag.speech_tower import pad_batch
    from training import stage1
    from training.cache import pool_states
    from training.data import load_clips
    from training.model import HeadModel, seal_config

    run = json.loads(json.dumps(trained))
    run["model"]["context_layers"] = 1
    run["stage1"].update(out_dir=str(tmp_path / "s1_context"), init=str(Path(trained["stage1"]["out_dir"]) / "best_head.pt"), steps=20)
    stage1.train(run)
    assert _losses(run["stage1"]["out_dir"])[-1] < _losses(trained["stage1"]["out_dir"])[0]

    head = HeadModel(seal_config(run["model"]), run["data"]["pool"])
    head.load_state_dict(torch.load(tmp_path / "s1_context" / "best_head.pt"))
    head.eval()
    embedding = SpeechEmbedding.from_pretrained(tmp_path / "s1_context" / "best")
    assert embedding.config.context_layers == 1
    audio = load_clips(trained["data"]["cache_dir"], "val").audio[:4]
    with torch.no_grad():
        raw = embedding.speech.encode_clips(audio)
        pooled = [torch.from_numpy(pool_states(s.numpy(), head.pool)) for s in raw]
        assert torch.allclose(embedding.speech.embed_states(raw), head.embed(*pad_batch(pooled)), atol=1e-4)


def test_a_token_level_head_trains_through_the_frozen_text_model_and_exports(trained, tmp_path):
    from seal_rag import SpeechEmbedding
    from seal_rag.speech_tower import pad_batch
    from training import stage1
    from training.cache import pool_states
    from training.data import load_clips
    from training.model import HeadModel, seal_config

    run = json.loads(json.dumps(trained))
    run["model"]["token_level"] = True
    run["stage1"].update(out_dir=str(tmp_path / "s1_token"), init=str(Path(trained["stage1"]["out_dir"]) / "best_head.pt"), steps=30)
    stage1.train(run)
    assert _losses(run["stage1"]["out_dir"])[-1] < _losses(run["stage1"]["out_dir"])[0]

    head = HeadModel(seal_config(run["model"]), run["data"]["pool"])
    head.load_state_dict(torch.load(tmp_path / "s1_token" / "best_head.pt"))
    reader = head.head.reader.transformer
    assert {id(p) for p in head.parameters()}.isdisjoint(id(p) for p in reader.parameters())  # read, not trained or stored
    head.eval()
    embedding = SpeechEmbedding.from_pretrained(tmp_path / "s1_token" / "best")
    assert embedding.config.token_level and embedding.speech.head.attention is None
    audio = load_clips(trained["data"]["cache_dir"], "val").audio[:4]
    with torch.no_grad():
        raw = embedding.speech.encode_clips(audio)
        pooled = [torch.from_numpy(pool_states(s.numpy(), head.pool)) for s in raw]
        assert torch.allclose(embedding.speech.embed_states(raw), head.embed(*pad_batch(pooled)), atol=1e-4)



def test_tuned_reader_layers_train_slower_than_the_head_and_export(trained, tmp_path):
    from seal_rag import SpeechEmbedding
    from seal_rag.text_tower import load_sentence_model
    from training import stage1
    from training.model import HeadModel, seal_config

    run = json.loads(json.dumps(trained))
    run["model"].update(token_level=True, tuned_reader_layers=1)
    run["stage1"].update(out_dir=str(tmp_path / "s1_tuned"), init=str(Path(trained["stage1"]["out_dir"]) / "best_head.pt"),
                         steps=10, reader_lr_scale=0.5, eval_interval=10)
    stage1.train(run)
    checkpoint = torch.load(tmp_path / "s1_tuned" / "ckpt.pt", weights_only=False)
    assert sorted({g["lr_scale"] for g in checkpoint["optimizer"]["param_groups"]}) == [0.5, 1.0]
    original = load_sentence_model(seal_config(run["model"]).text_model)[0].auto_model.encoder.layer[0].state_dict()
    tuned = {k[len("head.reader.tuned.0."):]: v for k, v in checkpoint["model"].items() if k.startswith("head.reader.tuned.0.")}
    assert tuned.keys() == original.keys() and any(not torch.equal(tuned[k], original[k]) for k in tuned)

    head = HeadModel(seal_config(run["model"]), run["data"]["pool"])
    head.load_state_dict(torch.load(tmp_path / "s1_tuned" / "best_head.pt"))
    exported = SpeechEmbedding.from_pretrained(tmp_path / "s1_tuned" / "best")
    for name, value in head.head.reader.tuned.state_dict().items():
        assert torch.equal(exported.speech.head.reader.tuned.state_dict()[name], value), name


@pytest.fixture(scope="module")
def below_top(trained, tmp_path_factory):
    """The smoke clips cached again one layer below Whisper's top, at full rate."""
    import shutil

    from training import cache

    run = json.loads(json.dumps(trained))
    run["data"].update(cache_dir=str(tmp_path_factory.mktemp("below_top") / "cache"), below_top=1)
    Path(run["data"]["cache_dir"]).mkdir()
    for plan in Path(trained["data"]["cache_dir"]).glob("plan_*.jsonl"):  # the same clips as the pooled cache
        shutil.copy(plan, run["data"]["cache_dir"])
    cache.run(run, "val")
    cache.run(run, "train")
    return run


def test_a_trainable_top_encoder_layer_is_cached_below_trained_slower_and_exported(trained, below_top, tmp_path):
    from seal_rag import SpeechEmbedding
    from seal_rag.speech_tower import pad_batch
    from training import cache, stage1
    from training.data import load_clips
    from training.model import HeadModel, seal_config

    run = json.loads(json.dumps(below_top))
    run["model"]["trainable_encoder_layers"] = 1
    run["stage1"].update(out_dir=str(tmp_path / "s1_top"), init=str(Path(trained["stage1"]["out_dir"]) / "best_head.pt"),
                         steps=10, encoder_lr_scale=0.5, eval_interval=10)
    val = load_clips(run["data"]["cache_dir"], "val")
    assert val.states.shape[1] == 512 and val.lengths[0] > 2 * load_clips(trained["data"]["cache_dir"], "val").lengths[0] - 2
    stage1.train(run)

    checkpoint = torch.load(tmp_path / "s1_top" / "ckpt.pt", weights_only=False)
    assert sorted({g["lr_scale"] for g in checkpoint["optimizer"]["param_groups"]}) == [0.5, 1.0]
    head = HeadModel(seal_config(run["model"]), run["data"]["pool"], below_top=1)
    whisper_top = head.encoder_top.layers[0].state_dict()
    last = {k[len("encoder_top.layers.0."):]: v for k, v in checkpoint["model"].items() if k.startswith("encoder_top.layers.0.")}
    assert last.keys() == whisper_top.keys() and any(not torch.equal(last[k], whisper_top[k]) for k in last)
    head.load_state_dict(torch.load(tmp_path / "s1_top" / "best_head.pt"))
    head.eval()
    tuned = head.encoder_top.layers[0].state_dict()

    exported = SpeechEmbedding.from_pretrained(tmp_path / "s1_top" / "best")
    assert exported.config.trainable_encoder_layers == 1
    for name, value in tuned.items():
        assert torch.equal(exported.speech.encoder.encoder.layers[5].state_dict()[name], value), name
    below = cache.BelowTopEncoder(1)
    with torch.no_grad():  # the real path (fp32 encoder from audio) gives the trained head's vectors, batched
        released = torch.from_numpy(exported.embed_clips(val.audio[:4]))
        trained_head = head.embed(*pad_batch([torch.from_numpy(below(clip)) for clip in val.audio[:4]]))
    assert torch.allclose(released, trained_head, atol=1e-4)

    with pytest.raises(SystemExit, match="below_top = 1"):
        HeadModel(seal_config(run["model"]), run["data"]["pool"])


def test_layer_targets_read_as_the_text_model_and_the_token_level_head_do():
    from seal_rag.text_tower import load_sentence_model
    from training.layer_targets import LayerTargets
    from training.model import HeadModel, seal_config

    sentence_model = load_sentence_model("all-MiniLM-L6-v2")
    head = HeadModel(seal_config({"adapter_dim": 32, "mlp_hidden": 64, "token_level": True}), 2, sentence_model)
    targets = LayerTargets(head.head.reader, sentence_model.tokenizer)
    texts = ["What is the capital of France?", "Oxygen is a chemical element with symbol O and atomic number 8."]
    written = targets.of_texts(texts)
    assert len(written) == 7  # the embedding layer and MiniLM's six layers
    expected = torch.from_numpy(sentence_model.encode(texts, normalize_embeddings=True))
    assert torch.allclose(torch.nn.functional.normalize(written[-1], dim=-1), expected, atol=1e-5)
    states, lengths = torch.randn(2, 40, 512), torch.tensor([40, 23])
    spoken = targets.of_positions(*head.head.positions(states, lengths))
    assert torch.allclose(spoken[-1], head(states, lengths), atol=1e-6)  # the pooled output, from the same pass
    assert targets.loss(spoken, texts) > 0.1 and targets.loss(written, texts) < 1e-6


def test_stage1_with_layer_targets_learns_and_stage2_starts_where_it_ended(trained, tmp_path):
    from training import stage1, stage2
    from training.model import HeadModel, seal_config
    from training.train_common import load_checkpoint, warm_start

    run = json.loads(json.dumps(trained))
    run["model"]["token_level"] = True
    run["stage1"].update(out_dir=str(tmp_path / "s1_layers"), w_layers=1.0, steps=30)
    run["stage2"].update(out_dir=str(tmp_path / "s2"), init=str(tmp_path / "s1_layers" / "ckpt.pt"), steps=5)
    stage1.train(run)
    lines = [json.loads(line) for line in (tmp_path / "s1_layers" / "log.jsonl").open() if '"layers"' in line]
    assert lines[-1]["layers"] < lines[0]["layers"]
    assert lines[-1]["loss"] == pytest.approx(lines[-1]["mse"] + lines[-1]["layers"], rel=1e-4)
    started = HeadModel(seal_config(run["model"]), run["data"]["pool"])
    warm_start(started, tmp_path / "s1_layers" / "ckpt.pt")  # the last step, not the best one
    last = load_checkpoint(tmp_path / "s1_layers" / "ckpt.pt")
    assert last["step"] == 30 and all(torch.equal(v, last["model"][k]) for k, v in started.state_dict().items())
    stage2.train(run)
    assert (tmp_path / "s2" / "best" / "model.safetensors").is_file()


def test_a_run_can_start_from_a_released_model_directory(trained):
    from training.model import HeadModel, seal_config
    from training.train_common import warm_start

    out_dir = Path(trained["stage2"]["out_dir"])
    from_release = HeadModel(seal_config(trained["model"]), trained["data"]["pool"])
    warm_start(from_release, out_dir / "best")  # the exported directory, adapter taps expanded
    best = torch.load(out_dir / "best_head.pt")
    loaded = from_release.state_dict()
    assert loaded.keys() == {k for k in best if not k.startswith("ctc.")}
    for name, value in loaded.items():
        assert torch.allclose(value, best[name], atol=1e-6), name


def test_a_missing_init_or_layer_targets_on_a_pooled_head_is_a_one_line_error(trained, tmp_path):
    from training import stage1
    from training.model import HeadModel, seal_config
    from training.train_common import warm_start

    head = HeadModel(seal_config(trained["model"]), trained["data"]["pool"])
    with pytest.raises(SystemExit, match=r"^error: init .*nope\.pt does not exist: run the stage that makes it first"):
        warm_start(head, tmp_path / "nope.pt")
    run = json.loads(json.dumps(trained))
    run["stage1"].update(out_dir=str(tmp_path / "s1"), w_layers=1.0)
    with pytest.raises(SystemExit, match="w_layers needs a token-level head"):
        stage1.train(run)


def test_the_gap_sets_swap_voices_or_texts_and_cache_clean_clips(trained, monkeypatch):
    from training import text_sources as ts
    from training.experiments import gap
    from training.data import load_clips
    from seal_rag.voices import Voice, espeak_voices, flite_voices

    monkeypatch.setattr(gap, "QUESTIONS", 4)
    data = trained["data"]
    val_plan = [json.loads(line) for line in (Path(data["cache_dir"]) / "plan_val.jsonl").open()]
    train_articles = {p.passage_id.split("#")[0] for p in ts.squad_passages(ts.squad_articles("train"))}
    labels = {s: {v.label for v in espeak_voices(s) + flite_voices(s)} for s in ("train", "val")}
    for name, (texts, voices) in gap.SETS.items():
        clips = load_clips(gap.make_set(data, name), "val")
        assert {Voice(**item['voice']).label for item in clips.items} <= labels[voices], name
        if texts == "val":
            assert [item["text"] for item in clips.items] == [p["text"] for p in val_plan]
        else:
            assert len(clips) == 4 and {item["passage_id"].split("#")[0] for item in clips.items} <= train_articles
        assert len(clips.audio) == len(clips) and clips.targets.shape == (len(clips), 384)


def test_lexicon_counts_validation_words_the_plan_never_spoke_and_splits_the_figures(trained, monkeypatch):
    from training.experiments import lexicon

    data = trained["data"]
    plan = {split: [json.loads(line)["text"] for line in (Path(data["cache_dir"]) / f"plan_{split}.jsonl").open()]
            for split in ("train", "val")}
    spoken = {w for text in plan["train"] for w in lexicon.words(text)}
    # Reading all 379k allowed texts costs half a minute; a known text makes the count exact instead.
    first_unheard = next(w for q in plan["val"] for w in lexicon.words(q) if w not in spoken)
    monkeypatch.setattr(lexicon, "available_texts", lambda: [first_unheard])
    c = lexicon.coverage(data)
    assert c["questions"] == len(plan["val"]) and c["unheard"]  # a few dozen training clips miss most words
    for word in c["unheard"]:
        assert word not in spoken and any(word in lexicon.words(q) for q in plan["val"])
    assert c["questions_with_unheard"] == sum(any(w not in spoken for w in lexicon.words(q)) for q in plan["val"])
    assert c["unheard_available"] == c["unheard"][first_unheard]  # every time the validation questions say it

    figures = lexicon.split_figures(data, Path(trained["stage2"]["out_dir"]) / "best", c["heard"])
    counts = {label.split(" | ")[0] for label in figures}
    assert len(figures) == 6 and sum(int(label.rsplit("(", 1)[1].rstrip(")")) for label in counts) == c["questions"]
    assert all(0 <= f["top1"] <= f["top10"] <= 1 for f in figures.values() if f["top1"] == f["top1"])  # NaN: an empty side


def test_bf16_training_steps_match_fp32_and_leave_evaluation_in_fp32(smoke):
    from training.model import HeadModel, seal_config
    from training.train_common import use_bf16

    torch.manual_seed(0)
    fp32 = HeadModel(seal_config(smoke["model"]), smoke["data"]["pool"])
    bf16 = HeadModel(seal_config(smoke["model"]), smoke["data"]["pool"], bf16=True)
    bf16.load_state_dict(fp32.state_dict())
    states, lengths = torch.randn(4, 60, 512), torch.tensor([60, 45, 30, 52])  # (batch, pooled positions, d_model)

    out = {name: model.train()(states, lengths) for name, model in (("fp32", fp32), ("bf16", bf16))}
    assert out["bf16"].dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(out["bf16"], out["fp32"]).min()
    assert 0.98 < cosine < 1.0  # bf16 really ran, and stays close
    out["bf16"].sum().backward()
    assert all(p.dtype == torch.float32 for p in bf16.parameters() if p.grad is not None)

    with torch.no_grad():  # validation and export run as the shipped model does: in fp32
        assert torch.equal(bf16.eval()(states, lengths), fp32.eval()(states, lengths))

    assert use_bf16({"bf16": False}) is False and use_bf16({"bf16": True}) is True
    with pytest.raises(SystemExit, match="bf16"):
        use_bf16({"bf16": "yes"})


def test_a_plan_on_disk_is_kept_and_extended_even_if_a_text_pool_changed(smoke, tmp_path):
    from training.cache import load_or_write_plan

    data = dict(smoke["data"], cache_dir=str(tmp_path))
    plan = load_or_write_plan(tmp_path, data, "train")
    # As on a machine where a newly installed Debian package added man pages to the prose pool.
    plan[0]["text"] = "A sentence that the pool no longer holds."
    (tmp_path / "plan_train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in plan))

    grown = dict(data, extend=[{"squad_question": 4}])
    grown_plan = load_or_write_plan(tmp_path, grown, "train")
    assert grown_plan[: len(plan)] == plan and [p["kind"] for p in grown_plan[len(plan):]] == ["squad_question"] * 4
    assert load_or_write_plan(tmp_path, data, "train") == plan  # the config it extends still sees its own plan
    other = dict(data, mix=dict(data["mix"], squad_sentence=data["mix"]["squad_sentence"] + 1))
    with pytest.raises(SystemExit, match="another plan"):
        load_or_write_plan(tmp_path, other, "train")


def test_wordnet_glosses_name_their_words_and_stay_out_of_the_prose():
    from seal_rag.sentences import speakable
    from training import text_sources as ts

    glosses = ts.wordnet_glosses()
    assert len(glosses) > 100_000 and all(g.kind == "wordnet" and speakable(g.text) for g in glosses)
    priestley = next(g.text for g in glosses if g.text.startswith("Priestley"))
    assert priestley.startswith("Priestley, Joseph Priestley: English chemist who isolated many gases")
    assert not any(re.search(r'[;:] ?"', g.text) or "_" in g.text for g in glosses)  # no examples, no WordNet underscores
    prose_files = {u.extra["file"] for u in ts.debian_prose()}
    assert prose_files and not any(re.search(r"\.\dWN", name) for name in prose_files)  # WordNet's man pages


def test_a_prose_pool_other_than_the_recipes_is_named_on_stderr(monkeypatch, capsys):
    # The pool comes from the machine's man pages and docs: another machine's makes another model.
    from training import text_sources as ts

    pool = [ts.Utterance("Another machine has other manuals.", "prose")]
    monkeypatch.setattr(ts, "debian_prose", lambda: pool)
    assert ts.checked_debian_prose() == pool
    assert "another prose pool than the recipe's (1 sentences" in capsys.readouterr().err
    monkeypatch.setattr(ts, "RECIPE_PROSE_DIGEST", ts.prose_digest(pool))
    assert ts.checked_debian_prose() == pool and capsys.readouterr().err == ""


@pytest.mark.timeout(600)  # trains, resumes, and validates two releases on the real path
def test_the_phoneme_recognizer_learns_resumes_and_joins_a_released_model(trained, below_top, tmp_path, capsys, monkeypatch):
    import os
    import shutil
    import warnings

    from seal_rag import SpeechEmbedding
    from seal_rag.errors import ModelLoadError
    from seal_rag.phonetic import phonemize
    from training import phonetic
    from training.data import load_clips

    run = json.loads(json.dumps(below_top))
    run["phonetic"] = dict(out_dir=str(tmp_path / "phonetic"), seed=0, steps=30, batch_size=8, lr=2e-3, warmup=3,
                           weight_decay=0.01, time_mask=0.0, hash_dim=256, idf_texts=2000, weight=0.5, threads=2,
                           log_interval=5, eval_interval=15, spelled_weight=0.6)
    saved = phonetic.save_checkpoint

    def keep_step_15(path, **state):  # what a run stopped at step 15 would have left
        saved(path, **state)
        if path.name == "ckpt.pt" and state["step"] == 15:
            shutil.copy(path, tmp_path / "ckpt_15.pt")

    monkeypatch.setattr(phonetic, "save_checkpoint", keep_step_15)
    phonetic.train(run)
    monkeypatch.undo()
    losses = [json.loads(line)["ctc"] for line in (tmp_path / "phonetic" / "log.jsonl").open()]
    assert np.mean(losses[-2:]) < 0.7 * losses[0]
    # Resumed from step 15, mid-epoch, the run ends where the uninterrupted one did, weight for weight.
    resumed = json.loads(json.dumps(run))
    resumed["phonetic"]["out_dir"] = str(tmp_path / "resumed")
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "phonetic" / "final_states", tmp_path / "resumed" / "final_states", copy_function=os.link)
    shutil.copy(tmp_path / "ckpt_15.pt", tmp_path / "resumed" / "ckpt.pt")
    phonetic.train(resumed)
    straight, again = (torch.load(tmp_path / name / "ckpt.pt", weights_only=False)["model"] for name in ("phonetic", "resumed"))
    assert all(torch.equal(straight[k], again[k]) for k in straight)
    run["phonetic"]["steps"] = 35  # a rerun resumes at step 30, not from scratch
    phonetic.train(run)
    assert [json.loads(line)["step"] for line in (tmp_path / "phonetic" / "log.jsonl").open()][-2:] == [30, 35]

    model_dir = tmp_path / "model"
    shutil.copytree(Path(trained["stage2"]["out_dir"]) / "best", model_dir)
    weights_before = (model_dir / "model.safetensors").read_bytes()
    bad = json.loads(json.dumps(run))
    bad["phonetic"]["decoding"] = "sofft"
    with pytest.raises(ModelLoadError, match="sofft"):  # refused before anything is written
        phonetic.release(bad, model_dir)
    assert (model_dir / "model.safetensors").read_bytes() == weights_before
    capsys.readouterr()
    phonetic.release(run, model_dir)
    # The status is the joined model's against the cascade on validation, not the semantic half's.
    said = re.search(r"validation Top-1: joined model ([\d.]+), cascade ([\d.]+): (\w+)", capsys.readouterr().out)
    joined, cascade, status = float(said[1]), float(said[2]), said[3]
    assert status == ("released" if joined >= cascade else "experimental")
    assert json.loads((model_dir / "config.json").read_text())["status"] == status
    assert not list(model_dir.glob("*.tmp*"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an experimental model warns on load
        model = SpeechEmbedding.from_pretrained(model_dir)
    best = torch.load(tmp_path / "phonetic" / "best.pt", weights_only=False)["model"]
    assert model.dim == model.config.dim + 256 and model.config.phonetic_weight == 0.5 and model.config.spelled_weight == 0.6
    assert all(torch.equal(model.phonetic.recognizer.state_dict()[k], v) for k, v in best.items())
    clips = load_clips(run["data"]["cache_dir"], "val").audio[:2]
    queries, passages = model.embed_clips(clips), model.embed_texts(["a passage", "another one"])
    assert queries.shape == (2, model.dim) and np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    # The joined cosine is the weighted sum of the two halves' cosines.
    d, text = model.config.dim, phonemize("a passage")
    phonetic_half = model.phonetic.vectorizer.vectors([text])[0]
    assert np.allclose(passages[0, d:], np.sqrt(0.5) * phonetic_half, atol=1e-6)

    # Which families each half heard: nothing to say for the usual run; a run that held flite
    # out says so, and training.unseen_voices benchmarks on flite only where no weighted half heard it.
    from training.unseen_voices import benchmark_roles, model_roles

    assert not (model_dir / "voices.json").exists()
    assert benchmark_roles(model_roles(model_dir), 0.5) == {"espeak": "train", "flite": "train", "piper": "val"}
    run["data"]["families"] = ["espeak"]
    phonetic.release(run, model_dir)
    roles = model_roles(model_dir)
    assert roles["phonetic"] == {"espeak": "train", "flite": "bench", "piper": "val"} and roles["semantic"]["flite"] == "train"
    assert benchmark_roles(roles, 0.5)["flite"] == "train"  # the semantic half, with weight, heard flite
    assert benchmark_roles(roles, 1.0) == {"espeak": "train", "flite": "bench", "piper": "val"}

    # A second run (another seed) released with the first as its ensemble: the model hears both.
    pair = json.loads(json.dumps(run))
    pair["phonetic"] |= dict(out_dir=str(tmp_path / "pair"), seed=1, steps=15, ensemble=[str(tmp_path / "phonetic")])
    del pair["data"]["families"]  # the first run's voices: members must share them
    (tmp_path / "pair").mkdir()
    shutil.copytree(tmp_path / "phonetic" / "final_states", tmp_path / "pair" / "final_states", copy_function=os.link)
    phonetic.train(pair)
    capsys.readouterr()
    phonetic.release(pair, model_dir)
    assert capsys.readouterr().out.count("released step") == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpeechEmbedding.from_pretrained(model_dir)
    assert model.config.phonetic_recognizers == 2
    members = [torch.load(tmp_path / name / "best.pt", weights_only=False)["model"] for name in ("pair", "phonetic")]
    for member, best in zip(model.phonetic.recognizer.members, members):
        assert all(torch.equal(member.state_dict()[k], v) for k, v in best.items())
    assert model.embed_clips(clips).shape == (2, model.dim)
    # A member that heard other families than the run released is refused before anything is written,
    # and so is an ensemble written as one path instead of a list of them.
    weights_before = (model_dir / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="ensemble must be a list"):
        phonetic.release(dict(pair, phonetic=dict(pair["phonetic"], ensemble=str(tmp_path / "phonetic"))), model_dir)
    with pytest.raises(SystemExit, match="names a run twice"):
        phonetic.release(dict(pair, phonetic=dict(pair["phonetic"], ensemble=[str(tmp_path / "pair")])), model_dir)
    pair["data"]["families"] = ["espeak"]
    with pytest.raises(SystemExit, match="other voice families"):
        phonetic.release(pair, model_dir)
    assert (model_dir / "model.safetensors").read_bytes() == weights_before


def test_a_clip_over_whisper_window_is_skipped_below_the_top_not_a_crash(tmp_path, capsys, monkeypatch):
    """Below the top a clip is one 30 s window of states; a longer one (a slow voice reading a long
    sentence) is skipped like an unsynthesizable text, and the shard keeps the rest."""
    from types import SimpleNamespace

    from seal_rag.augment import AugmentConfig
    from training import cache

    item = dict(text="A short one.", voice=dict(engine="espeak", name="en-us", variant=""), seed=1, index=0)
    long = dict(item, text=" ".join(["a sentence read slowly, word after word"] * 40), index=1)
    heard = []  # real speech from espeak-ng; Whisper's layers are stood in for (their cost is not the point)
    monkeypatch.setattr(cache.BelowTopEncoder, "__call__",
                        lambda self, clip: heard.append(clip.size) or np.zeros((clip.size // 320, 4), np.float32))
    encoder = cache.BelowTopEncoder.__new__(cache.BelowTopEncoder)
    text_model = SimpleNamespace(encode=lambda texts, **_: np.zeros((len(texts), 3), np.float32))
    cache.write_shard(tmp_path / "train_00000.npz", [item, long], encoder, text_model, 1, "train", AugmentConfig(),
                      SimpleNamespace(update=lambda n: None))
    with np.load(tmp_path / "train_00000.npz") as shard:
        assert shard["indices"].tolist() == [0] and int(shard["last_planned"]) == 1
    assert len(heard) == 1 and "skipping clip 1" in capsys.readouterr().out
