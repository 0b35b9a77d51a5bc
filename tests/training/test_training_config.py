"""The recipe's flat configs are the experiment chains that made the shipped model, resolved."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from training.config import load_config, run_command

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "training" / "configs"
EXPERIMENTS = REPO / "training" / "experiments" / "configs"

# Each step of `make train`, in order: its flat config, and the experiment config it was run as.
RECIPE = [
    ("seal-base-minilm-1-pooled.toml", "more.toml"),
    ("seal-base-minilm-2-token.toml", "more_token.toml"),
    ("seal-base-minilm-3-reader.toml", "reader_tuned2_less_mse.toml"),
    ("seal-base-minilm-4-glosses.toml", "wordnet.toml"),
    ("seal-base-minilm-5-more-glosses.toml", "wordnet_more.toml"),
    ("seal-base-minilm-6-phonetic.toml", "phonetic.toml"),
]
# Sections of an experiment's chain that its flat config leaves out. The phonetic step reads
# [data] and [augment] (its cache), [phonetic], and of [model] only `whisper_model`; its chain
# (phonetic.toml -> top1.toml) also holds top1's [model], [stage1] and [stage2], an experiment
# that tuned Whisper's top layer, which nothing runs with the flat file.
LEFT_OUT = {"seal-base-minilm-6-phonetic.toml": {"model", "stage1", "stage2"}}
# No path is renamed: the recipe's runs keep their out_dirs, cache_dirs and inits, which the
# experiments under training/experiments/configs continue from.


@pytest.mark.parametrize("flat, chain", RECIPE, ids=[flat for flat, _ in RECIPE])
def test_each_recipe_step_is_its_experiment_config_resolved(flat, chain):
    assert "inherit" not in tomllib.loads((CONFIGS / flat).read_text())
    new, old = load_config(CONFIGS / flat), load_config(EXPERIMENTS / chain)
    del new["_path"], old["_path"]
    left_out = LEFT_OUT.get(flat, set())
    assert set(old) - set(new) == left_out and set(new) <= set(old)
    assert new == {section: values for section, values in old.items() if section not in left_out}
    if "model" in left_out:
        assert "whisper_model" not in old["model"]  # what training.phonetic reads of [model]


def test_each_semantic_step_continues_the_head_of_the_step_before():
    steps = [load_config(CONFIGS / flat) for flat, _ in RECIPE if "stage1" in load_config(CONFIGS / flat)]
    assert "init" not in steps[0]["stage1"]
    for before, step in zip(steps, steps[1:]):
        # an init is a run's best_head.pt, ckpt.pt or exported best/
        assert Path(step["stage1"]["init"]).parent in {Path(before["stage1"]["out_dir"]), Path(before["stage2"]["out_dir"])}
        assert Path(step["stage2"]["init"]).parent == Path(step["stage1"]["out_dir"])


def test_make_train_runs_the_flat_configs_in_recipe_order_and_they_are_all_of_training_configs():
    target = (REPO / "Makefile").read_text().split("\ntrain:", 1)[1].split("\n\n", 1)[0]
    named = list(dict.fromkeys(re.findall(r"\$\(RECIPE\)(-[\w-]+\.toml)", target)))
    assert ["seal-base-minilm" + suffix for suffix in named] == [flat for flat, _ in RECIPE]
    assert {p.name for p in CONFIGS.glob("*.toml")} == {flat for flat, _ in RECIPE} | {"base.toml", "smoke.toml"}


def test_make_train_noflite_is_the_recipe_s_recognizer_with_espeak_and_piper_released_into_the_shipped_files():
    """Issue 32's chain: the recipe's recognizer step, identical but for espeak-ng and piper speaking
    every clip, twice the clips (60,000) and its paths moved out of the shipped recipe's cache,
    released into a copy of the shipped model's files (whose served semantic half is spelled,
    learned from no voice)."""
    import json

    target = (REPO / "Makefile").read_text().split("\ntrain-noflite:", 1)[1].split("\n\n", 1)[0]
    makefile = (REPO / "Makefile").read_text()
    assert "NOFLITE_PHONETIC = training/experiments/configs/phonetic_espeak_piper_60k.toml" in makefile
    assert "--release $(NOFLITE_DIR)" in target and "seal_rag/models/seal-base-minilm/model.safetensors" in target
    ours = load_config(EXPERIMENTS / "phonetic_espeak_piper_60k.toml")
    recipe = load_config(CONFIGS / "seal-base-minilm-6-phonetic.toml")
    assert ours["data"].pop("families") == ["espeak", "piper"] and ours["phonetic"]["spelled_weight"] > 0
    assert (ours["data"].pop("shards"), recipe["data"].pop("shards")) == ("0:60,207:267", "0:30,207:237")
    for config in (ours, recipe):
        config.pop("_path"), config["data"].pop("cache_dir"), config["phonetic"].pop("out_dir")
    assert "top1" not in json.dumps(ours) and json.dumps(ours, sort_keys=True) == json.dumps(recipe, sort_keys=True)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")) + sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_committed_config_loads_and_passes_the_checks(path):
    config = load_config(path)
    assert config["data"]["cache_dir"] and ("stage2" in config or "phonetic" in config)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "does not exist"),
        ("folder", "is a folder"),
        ("steps = = 3\n", "is not valid TOML"),
        (b"\xff\xfe bad", "cannot be read (not UTF-8 text)"),
    ],
)
def test_a_bad_config_is_a_one_line_error(tmp_path, content, expected):
    path = tmp_path / "run.toml"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as stop:
        load_config(path)
    message = str(stop.value.code)
    assert message.startswith(f"error: config {path} ") and expected in message
    assert "\n" not in message


def test_a_missing_parent_config_is_named_with_the_file_that_inherits_it(tmp_path):
    (tmp_path / "child.toml").write_text('inherit = "gone.toml"\n')
    with pytest.raises(SystemExit) as stop:
        load_config(tmp_path / "child.toml")
    assert str(stop.value.code).startswith(f"error: config {tmp_path / 'gone.toml'} (inherited by {tmp_path / 'child.toml'}) does not exist")


def one_line_error(path: Path) -> str:
    with pytest.raises(SystemExit) as stop:
        load_config(path)
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.mark.parametrize("files", [{"a.toml": "b.toml", "b.toml": "a.toml"}, {"a.toml": "a.toml"}, {"a.toml": "./a.toml"}])
def test_an_inherit_loop_is_named_not_a_recursion_error(tmp_path, files):
    for name, parent in files.items():
        (tmp_path / name).write_text(f'inherit = "{parent}"\n')
    assert "already in its chain of inherits: break the loop" in one_line_error(tmp_path / "a.toml")


def test_an_inherit_that_is_not_a_file_name_is_named(tmp_path):
    (tmp_path / "a.toml").write_text("inherit = 1\n")
    assert "sets inherit = 1: give the inherited config's file name" in one_line_error(tmp_path / "a.toml")


def write_over_base(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'inherit = "{CONFIGS / "base.toml"}"\n{text}')
    return path


@pytest.mark.parametrize("text, expected", [
    # an unknown key, which would be ignored and the run would train on the inherited value
    ("[data]\nshard_sise = 8\n", "sets data.shard_sise, which no training command reads: did you mean shard_size?"),
    ("[stage1]\nstepz = 3\n", "sets stage1.stepz, which no training command reads: did you mean steps?"),
    ("[[data.extend]]\nwordnt = 3\n", "sets data.extend.wordnt, which no training command reads: did you mean wordnet?"),
    ("[stage3]\nsteps = 3\n", "sets stage3, which no training command reads"),
    ("[model]\nadaptr_kernel = 8\n", "sets model.adaptr_kernel, which no training command reads: did you mean adapter_kernel?"),
    # a wrong type or range, which would fail deep in torch (or be read as true)
    ("data = 3\n", "sets data = 3: make it a [data] table"),
    ("[data]\ncache_dir = 5\n", "sets data.cache_dir = 5: make it a string"),
    ("[data]\npool = 0\n", "sets data.pool = 0: make it a whole number above 0"),
    ("[data]\nmix = 3\n", "sets data.mix = 3: make it a [data.mix] table"),
    ("[data.extend]\nprose = 3\n", "sets data.extend = {'prose': 3}: make it a list of [[data.extend]] tables"),
    ('[model]\nadapter_dim = "64"\n', "sets model.adapter_dim = '64': make it a whole number from 1 to 1,000,000"),
    ("[model]\nmlp_hidden = -5\n", "sets model.mlp_hidden = -5: make it a whole number from 1 to 1,000,000"),
    ("[model]\ncontext_layers = 1000001\n", "sets model.context_layers = 1000001: make it a whole number from 0 to 1,000,000"),
    ("[model]\nmax_seconds = inf\n", "sets model.max_seconds = inf: make it a number, 0 or more"),
    ("[phonetic]\ntemperature = nan\n", "sets phonetic.temperature = nan: make it a number above 0"),
    ("[augment]\nsnr_db = [30, 5]\n", "sets augment.snr_db = [30, 5]: make it a list of two numbers, low then high"),
    ("[model]\ntoken_level = 1\n", "sets model.token_level = 1: make it true or false"),
    ('[model]\npooling = "max"\n', "has a [model] seal-rag cannot build: pooling must be 'mean' or 'attention'"),
    ('[stage1]\nsteps = "30"\n', "sets stage1.steps = '30': make it a whole number above 0"),
    ("[stage1]\nbatch_size = 0\n", "sets stage1.batch_size = 0: make it a whole number above 0"),
    ("[stage1]\nsteps = 30.0\n", "sets stage1.steps = 30.0: make it a whole number above 0"),
    ("[stage2]\nhard_negatives = 1\n", "sets stage2.hard_negatives = 1: make it true or false"),
    ("[augment]\np_noise = 1.5\n", "sets augment.p_noise = 1.5: make it a number from 0 to 1"),
])
def test_a_bad_setting_is_named(tmp_path, text, expected):
    assert expected in one_line_error(write_over_base(tmp_path, text))


def test_a_whole_number_is_accepted_for_a_number(tmp_path):
    assert load_config(write_over_base(tmp_path, "[stage1]\nlr = 1\n"))["stage1"]["lr"] == 1


def test_every_augmentation_setting_is_accepted(tmp_path):
    text = "[augment]\nrt60 = [0.2, 0.6]\nsnr_db = [5, 30]\ngain_db = [-18, 6]\nwarp = [0.9, 1.1]\nmax_silence = 0.1\n"
    assert load_config(write_over_base(tmp_path, text))["augment"]["max_silence"] == 0.1


def test_escape_sequences_in_a_config_name_are_shown_escaped(tmp_path):
    from training.config import require

    path = write_over_base(tmp_path, "")
    hostile = path.rename(tmp_path / "run\x1b[2J.toml")
    assert "gone\\x1b[2J.toml does not exist" in one_line_error(tmp_path / "gone\x1b[2J.toml")
    config = load_config(hostile)
    del config["stage1"]
    with pytest.raises(SystemExit) as stop:
        require(config, "stage1", ())
    assert "\x1b" not in str(stop.value.code) and "run\\x1b[2J.toml has no [stage1] table" in str(stop.value.code)


@pytest.mark.parametrize("stop, code", [(lambda: (_ for _ in ()).throw(KeyboardInterrupt), 130),
                                        (lambda: os.kill(os.getpid(), signal.SIGTERM), 143)])
def test_a_stopped_training_command_says_how_to_resume(capsys, stop, code):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as ended:
        run_command(stop)
    assert ended.value.code == code
    assert "run the same command again to resume" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("module", ["training.stage1", "training.cache", "training.release", "training.phonetic"])
def test_training_commands_name_a_missing_config(tmp_path, module):
    missing = tmp_path / "nope.toml"
    done = subprocess.run([sys.executable, "-m", module, "--config", str(missing)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: config {missing} does not exist: give a .toml file (the recipe's are in training/configs/)"
