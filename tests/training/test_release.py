"""training.release's model card: the recipe it prints and the run rows it keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import load_config
from training.release import HAND_WRITTEN, RUNS_HEADER, better_earlier_row, candidate_runs, earlier_rows, recipe, written_by_hand

REPO = Path(__file__).resolve().parents[2]
# Every committed config that trains stages (the phonetic step trains none).
CONFIGS = [path for folder in ("training/configs", "training/experiments/configs")
           for path in sorted((REPO / folder).rglob("*.toml")) if "stage2" in load_config(path)]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_committed_config_has_a_recipe_that_makes_its_inits_first(path):
    config = load_config(path)
    commands = recipe(config, Path(config["stage2"]["out_dir"]).expanduser())
    assert commands[-1] == f"python -m training.stage2 --config {path.relative_to(REPO)}"
    assert len(commands) == len(set(commands))


def test_a_continued_stage_2_is_preceded_by_the_runs_it_continues():
    # An experiment continues the recipe's runs, which the recipe's flat configs make.
    config = load_config(REPO / "training" / "experiments" / "configs" / "more_token_long.toml")
    assert recipe(config, Path(config["stage2"]["out_dir"]).expanduser()) == [
        "python -m training.stage1 --config training/configs/seal-base-minilm-1-pooled.toml",
        "python -m training.stage1 --config training/configs/seal-base-minilm-2-token.toml",
        "python -m training.stage2 --config training/configs/seal-base-minilm-2-token.toml",
        "python -m training.stage2 --config training/experiments/configs/more_token_long.toml",
    ]


def test_the_released_run_s_recipe_is_the_flat_configs_in_order():
    config = load_config(REPO / "training" / "configs" / "seal-base-minilm-5-more-glosses.toml")
    steps = ["1-pooled", "2-token", "3-reader", "4-glosses", "5-more-glosses"]
    assert recipe(config, Path(config["stage2"]["out_dir"]).expanduser()) == [
        f"python -m training.stage{stage} --config training/configs/seal-base-minilm-{step}.toml"
        for step in steps for stage in ((1,) if step == "1-pooled" else (1, 2))]


def test_rows_of_runs_no_longer_on_disk_are_kept(tmp_path):
    card = tmp_path / "README.md"
    card.write_text(f"intro\n\n{RUNS_HEADER}\n|---|\n| a (a_s2) | 0.1 |\n| b (b_s1) | 0.2 |\n\n## Data\n| not a run |\n")
    assert earlier_rows(card, [dict(out_dir=Path("/cache/a_s2"))]) == ["| b (b_s1) | 0.2 |"]
    assert earlier_rows(tmp_path / "missing.md", []) == []


def test_an_earlier_card_run_that_scored_higher_is_named():
    rows = ["| a (a_s2) | 0.090 | 0.300 | 0.162 | 500/500 | 5 min |", "| b (b_s1) | 0.050 | 0.220 | 0.110 | 9000/10000 | 35 min |"]
    assert better_earlier_row(rows, 0.150) == rows[0]
    assert better_earlier_row(rows, 0.164) is None
    assert better_earlier_row([], 0.0) is None


def test_an_init_no_committed_config_makes_is_named_in_the_recipe(tmp_path):
    init = tmp_path / "mine" / "best_head.pt"
    (tmp_path / "mine.toml").write_text(f'inherit = "{REPO / "training" / "configs" / "base.toml"}"\n[stage2]\ninit = "{init}"\n')
    config = load_config(tmp_path / "mine.toml")
    commands = recipe(config, Path(config["stage2"]["out_dir"]).expanduser())
    assert commands[0] == f"# first make {init} (no committed config makes it)"
    assert commands[1] == f"python -m training.stage2 --config {tmp_path / 'mine.toml'}"


def test_each_candidate_run_is_listed_once(tmp_path):
    # An ablation config's own stages live under ablations/ too; listed twice, they made
    # duplicate rows in the card's run table.
    for name in ("a_s1", "a_s2", "b_s2"):
        (tmp_path / "ablations" / name).mkdir(parents=True)
    config = {"data": {"cache_dir": str(tmp_path)},
              "stage1": {"out_dir": str(tmp_path / "ablations" / "a_s1")}, "stage2": {"out_dir": str(tmp_path / "ablations" / "a_s2")}}
    runs = candidate_runs(config)
    assert runs == [tmp_path / "ablations" / n for n in ("a_s1", "a_s2", "b_s2")]
    assert candidate_runs(config, [str(tmp_path / "x"), str(tmp_path / "x")]) == [tmp_path / "x"]


def test_a_card_names_its_shards_as_ranges_and_caches_before_each_config_whose_data_changes(tmp_path):
    from training.data import shard_numbers, shard_ranges
    from training.release import with_cache_commands

    names = [f"train_{k:05d}.npz" for k in [*range(80), *range(207, 255)]]
    assert shard_ranges(names) == "0:80,207:255"
    assert shard_numbers(shard_ranges(names)) == {*range(80), *range(207, 255)}

    smoke = Path(__file__).resolve().parents[2] / "training" / "configs" / "smoke.toml"
    (tmp_path / "a.toml").write_text(f'inherit = "{smoke}"\n')
    (tmp_path / "b.toml").write_text('inherit = "a.toml"\n[stage1]\nsteps = 5\n')  # same data as a
    (tmp_path / "c.toml").write_text('inherit = "a.toml"\n[data]\nshards = "0:1"\n')  # other data
    steps = [f"python -m training.stage{s} --config {tmp_path / c}" for s, c in [(1, "a.toml"), (1, "b.toml"), (2, "c.toml")]]
    recipe = with_cache_commands(steps)
    # The cache command for c comes after b's stage: caching c's plan may refill a's last shard.
    assert [recipe[1], recipe[2], recipe[4]] == steps
    assert recipe[0].startswith(f"sh training/run_cache.sh {tmp_path / 'a.toml'} ")
    assert recipe[3].startswith(f"sh training/run_cache.sh {tmp_path / 'c.toml'} ")
    assert len(recipe) == 5


def test_voices_json_records_each_half_s_families_so_flite_can_benchmark_the_joined_vector(tmp_path):
    """training.release (semantic half) and training.phonetic --release each note which families
    their half heard; a model whose halves both held flite out may be benchmarked on flite with weight."""
    from training.train_common import record_voices
    from training.unseen_voices import benchmark_roles, model_roles

    record_voices(tmp_path, "semantic", {})  # trained as shipped: nothing to note
    assert not (tmp_path / "voices.json").exists()
    record_voices(tmp_path, "semantic", {"families": ["espeak"]})
    assert benchmark_roles(model_roles(tmp_path), 0.9)["flite"] == "train"  # the phonetic half still as shipped
    record_voices(tmp_path, "phonetic", {"families": ["espeak", "piper"]})
    roles = model_roles(tmp_path)
    assert roles["semantic"] == {"espeak": "train", "flite": "bench", "piper": "val"}
    assert roles["phonetic"] == {"espeak": "train", "flite": "bench", "piper": "train"}
    assert benchmark_roles(roles, 0.9) == {"espeak": "train", "flite": "bench", "piper": "train"}


def test_a_model_that_spells_its_semantic_half_is_benchmarked_on_what_its_recognizer_never_heard(tmp_path):
    """The shipped semantic half heard flite; a recognizer that did not, in a model that spells its
    served semantic half, may be benchmarked on flite, scoring only what does not read that half."""
    from training.train_common import record_voices
    from training.unseen_voices import benchmark_roles, model_roles

    record_voices(tmp_path, "phonetic", {"families": ["espeak", "piper"]})
    roles = model_roles(tmp_path)
    assert roles["semantic"]["flite"] == "train"
    assert benchmark_roles(roles, 0.9)["flite"] == "train"  # the speech tower's half is served
    assert benchmark_roles(roles, 0.9, spelled_weight=0.7) == {"espeak": "train", "flite": "bench", "piper": "train"}


def test_a_hand_written_model_card_is_kept(tmp_path):
    # The shipped card gives figures no release computes: `training.release` must not replace it.
    assert written_by_hand(REPO / "seal_rag" / "models" / "seal-base-minilm" / "README.md")
    generated = tmp_path / "generated.md"
    generated.write_text(f"# a model\n\n{RUNS_HEADER}\n|---|\n")
    with_tail = tmp_path / "tail.md"
    with_tail.write_text(f"# a model\n\n{HAND_WRITTEN})\nnotes\n")
    assert not written_by_hand(generated) and not written_by_hand(with_tail) and not written_by_hand(tmp_path / "none.md")


@pytest.mark.parametrize("engines", [("espeak",), ("espeak", "flite")])
def test_the_generated_card_names_the_voices_and_encoder_the_run_had(monkeypatch, engines):
    import numpy as np

    import training.release as release

    monkeypatch.setattr(release, "recipe", lambda config, out_dir: ["python -m training.stage1 --config x.toml"])
    monkeypatch.setattr(release, "with_cache_commands", lambda steps: steps)

    class Clips:
        items = [dict(kind="prose", voice=dict(engine=engine, name="v", variant="")) for engine in engines]
        lengths, shards = np.array([50 * 3600] * len(engines)), ["train_00000.npz"]

        def __len__(self):
            return len(self.items)

    figures = dict(top1=0.1, top10=0.2, mrr=0.15)
    best = dict(config=dict(model=dict(trainable_encoder_layers=1)), out_dir=Path("/runs/a"), best=dict(figures, step=3),
                step=5, wall=60, name="a")
    card = release.model_card(dict(_path="x.toml", data=dict(pool=2, below_top=1)), best, [best], [], Clips(),
                              figures, figures, figures, figures, 400, 1551)
    assert "Whisper-base encoder (its top 1 layer tuned)" in card
    assert f"({len(engines)}.0 h of speech)" in card  # full-rate lengths below the top: 50 a second, not pooled
    assert ("flite, every voice: never heard" in card) == ("flite" not in engines)
    assert ("and\nflite kal" in card) == ("flite" in engines)


def test_a_release_ships_the_weights_then_their_config_whole(tmp_path):
    from seal_rag import SealConfig
    from training.release import ship

    run, dest = tmp_path / "best", tmp_path / "model"
    run.mkdir(), dest.mkdir()
    SealConfig(mlp_hidden=64).save(run / "config.json")
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "model.safetensors").chmod(0o600)
    ship(run, dest, beats_cascade=False)
    assert (dest / "model.safetensors").read_bytes() == b"weights" and (dest / "model.safetensors").stat().st_mode & 0o777 == 0o644
    shipped = SealConfig.load(dest / "config.json")
    assert shipped.mlp_hidden == 64 and shipped.status == "experimental"
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.safetensors"]  # no scratch file left
