"""Pick the best run by validation MRR, evaluate it on the real inference path, and ship it.

    python -m training.release --config training/configs/base.toml [--dest seal_rag/models/seal-base-minilm]

Candidates are every `<out_dir>/best` of stage 1, stage 2 and the ablation runs. The chosen
model is evaluated through `SpeechEmbedding.embed_clips` (fp32 torch encoder, full rate) on
the validation audio, next to the cascade and the text oracle on the same clips, and copied
with a model card (`README.md`) that states data, voices, commands, wall time and figures.
Held-out sets are never read.
"""

from __future__ import annotations

import collections
import json
import shutil
import time
import tomllib
from pathlib import Path

import torch

from seal_rag.atomic_file import atomic_path
from seal_rag.safe_text import for_terminal
from seal_rag.voices import BENCH_VARIANTS, ESPEAK_ACCENTS, FLITE_VOICES, VAL_VARIANTS

from .config import command_line, load_config, make_folder, parse_command_line, require, run_command
from .data import load_clips, planned_size, shard_ranges
from .evaluate import Validation, format_row
from .text_sources import VAL_ARTICLES
from .train_common import record_voices

REPO = Path(__file__).resolve().parents[1]


def run_summary(out_dir: Path) -> dict | None:
    checkpoint = out_dir / "ckpt.pt"
    if not (out_dir / "best").is_dir() or not checkpoint.is_file():
        return None
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    log = [json.loads(line) for line in (out_dir / "log.jsonl").open()]
    return dict(out_dir=out_dir, best=state["best"], step=state["step"], shards=state["shards"], config=state["config"],
                wall=log[-1]["time"] - log[0]["time"] if len(log) > 1 else 0.0, name=Path(state["config"]["_path"]).stem)


def candidate_runs(config: dict, explicit: list[str] | None = None) -> list[Path]:
    """The run directories to choose from: `explicit`, or the config's two stages and every
    ablation run, each once (an ablation config's stages are also under ablations/)."""
    if explicit:
        return list(dict.fromkeys(Path(p).expanduser() for p in explicit))
    cache_dir = Path(config["data"]["cache_dir"]).expanduser()
    stages = [Path(require(config, stage, ("out_dir",))["out_dir"]).expanduser() for stage in ("stage1", "stage2")]
    runs = stages + sorted((cache_dir / "ablations").glob("*"))
    return list(dict.fromkeys(runs))


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--runs", nargs="*", default=None, help="run out_dirs to choose from (default: base + ablations)")
    parser.add_argument("--dest", default=str(REPO / "seal_rag" / "models" / "seal-base-minilm"))
    parser.add_argument("--allow-worse", action="store_true", help="ship the best run here even if an earlier card's run scored higher")
    args = parse_command_line(parser)
    torch.set_num_threads(2)
    config = load_config(args.config)
    cache_dir = Path(require(config, "data", ("cache_dir",))["cache_dir"]).expanduser()
    runs = candidate_runs(config, args.runs)
    summaries = [s for s in map(run_summary, runs) if s]
    if not summaries:
        raise SystemExit(f"error: none of the {len(runs)} run directories holds a finished run (ckpt.pt and best/); train one first")
    best = max(summaries, key=lambda s: s["best"]["mrr"])
    print(f"chosen: {for_terminal(best['out_dir'])} (val MRR {best['best']['mrr']:.3f})")
    card = Path(args.dest) / "README.md"
    earlier = earlier_rows(card, summaries)
    beaten_by = better_earlier_row(earlier, best["best"]["mrr"])
    if beaten_by and not args.allow_worse:  # e.g. a new machine, whose runs so far are only ablations
        raise SystemExit(f"error: a run of an earlier card beat the best run here (val MRR {best['best']['mrr']:.3f}): {beaten_by}; "
                         "re-make that run, or pass --allow-worse to ship this one anyway")

    from seal_rag import SpeechEmbedding

    validation = Validation(cache_dir, config["data"].get("val_corpus", "all"))
    start = time.time()
    released = validation.evaluate_embedding(SpeechEmbedding.from_pretrained(best["out_dir"] / "best"))["speech"]
    print(format_row("released model, fp32 encoder", released), f"[{time.time() - start:.0f} s]")
    cascade, oracle, untrained = validation.evaluate_cascade(), validation.evaluate_oracle(), validation.evaluate_untrained()

    dest = Path(args.dest)
    make_folder(dest, "--dest")
    ship(best["out_dir"] / "best", dest, released["top1"] >= cascade["top1"])
    record_voices(dest, "semantic", config["data"])
    if written_by_hand(card):
        print(f"kept {for_terminal(card)}: its model card is written by hand (update its figures from the lines above)")
    else:
        clips = load_clips(cache_dir, "train", best["shards"])
        card.write_text(model_card(config, best, summaries, earlier, clips, released, cascade, oracle,
                                   untrained, len(validation.clips), len(validation.passages)) + hand_written(card))
    print(f"released to {for_terminal(dest)}")


def ship(run: Path, dest: Path, beats_cascade: bool) -> None:
    """Copy a run's exported model into `dest`, each file whole (a stop mid-copy leaves the old
    one): the weights first, then the config that describes them, so no reader sees the new
    config over the old weights. A model that does not beat the cascade on validation ships as
    "experimental": it warns on load."""
    from seal_rag import SealConfig

    with atomic_path(dest / "model.safetensors") as partial:
        shutil.copyfile(run / "model.safetensors", partial)
        partial.chmod(0o644)  # safetensors writes 0600; a shipped file must be readable by every user
    shipped = SealConfig.load(run / "config.json")
    shipped.status = "released" if beats_cascade else "experimental"
    shipped.save(dest / "config.json")


HAND_WRITTEN = "## Notes (written by hand"
RUNS_HEADER = "| run | Top-1 | Top-10 | MRR | best step / steps | wall |"


def earlier_rows(card: Path, summaries: list[dict]) -> list[str]:
    """Rows of the previous card's run table whose runs are not on this machine: a cache lost
    with its machine should not take the record of what was tried with it."""
    text = card.read_text() if card.is_file() else ""
    if RUNS_HEADER not in text:
        return []
    table = text[text.index(RUNS_HEADER):].split("\n\n")[0].splitlines()[2:]
    here = {f"({s['out_dir'].name})" for s in summaries}
    return [row for row in table if not any(name in row for name in here)]


def better_earlier_row(rows: list[str], mrr: float) -> str | None:
    """The earlier card's row with the highest validation MRR (its fourth column), if above `mrr`."""
    scored = [(float(row.split("|")[4]), row) for row in rows]
    top = max(scored, default=None)
    return top[1] if top and top[0] > mrr else None


def recipe(run_config: dict, out_dir: Path) -> list[str]:
    """The stage commands that make the run in `out_dir`, in order. A stage's `init` is made
    first, by the config that sets the out_dir holding it (in that file, not by inheritance);
    where the recipe's flat configs and an experiment's both set it, by the recipe's."""
    producers = {}
    experiments = sorted((REPO / "training" / "experiments" / "configs").rglob("*.toml"))
    for path in experiments + sorted((REPO / "training" / "configs").rglob("*.toml")):
        own = tomllib.loads(path.read_text())
        for stage in ("stage1", "stage2"):
            if "out_dir" in own.get(stage, {}):
                producers[Path(own[stage]["out_dir"]).expanduser()] = (path.relative_to(REPO), stage)

    def chain(config_path: Path, stage: str) -> list[str]:
        init = load_config(REPO / config_path)[stage].get("init")
        if not init:
            return [f"python -m training.{stage} --config {config_path}"]
        made_by = producers.get(Path(init).expanduser().parent)
        before = chain(*made_by) if made_by else [f"# first make {init} (no committed config makes it)"]
        return before + [f"python -m training.{stage} --config {config_path}"]

    config_path = Path(run_config["_path"])
    config_path = config_path.relative_to(REPO) if config_path.is_relative_to(REPO) else config_path
    stage = "stage1" if Path(run_config["stage1"]["out_dir"]).expanduser() == out_dir else "stage2"
    return list(dict.fromkeys(chain(config_path, stage)))  # each command once, first use kept


def written_by_hand(card: Path) -> bool:
    """Whether `card` is a model card this command did not write (no runs table, no hand-written
    tail): the shipped model's is, with figures no release computes (unseen voices, the cascade as served)."""
    text = card.read_text() if card.is_file() else ""
    return bool(text) and RUNS_HEADER not in text and HAND_WRITTEN not in text


def hand_written(card: Path) -> str:
    """The card's sections written by hand (from HAND_WRITTEN on), kept across releases."""
    text = card.read_text() if card.is_file() else ""
    return "\n" + text[text.index(HAND_WRITTEN):] if HAND_WRITTEN in text else ""


def with_cache_commands(steps: list[str]) -> list[str]:
    """The recipe's stage commands with `run_cache.sh` before the first stage of each config whose
    training data (plan size, `[data] shards`) differs from the last one cached. Caching a larger
    plan refills the smaller plan's last, partial shard, so each config must train before the
    next one caches."""
    out, cached = [], None
    for line in steps:
        if "--config " in line:
            config = line.split("--config ", 1)[1]
            data = load_config(REPO / config)["data"]
            wanted = (planned_size(data, "train"), data.get("shards"))
            if wanted != cached:
                out.append(f"sh training/run_cache.sh {config}      # resumable; stop any time")
                cached = wanted
        out.append(line)
    return out


def model_card(config, best, summaries, earlier, clips, released, cascade, oracle, untrained, n_val, n_passages) -> str:
    kinds = collections.Counter(item["kind"] for item in clips.items)
    engines = collections.Counter(item["voice"]["engine"] for item in clips.items)
    voices = len({json.dumps(item["voice"], sort_keys=True) for item in clips.items})
    # Cached lengths count pooled positions, or full-rate ones (50 a second) below the top.
    hours = float(clips.lengths.sum()) * (1 if config["data"].get("below_top") else config["data"]["pool"]) / 50 / 3600
    rows = "\n".join(
        f"| {s['name']} ({s['out_dir'].name}) | {s['best']['top1']:.3f} | {s['best']['top10']:.3f} | {s['best']['mrr']:.3f} "
        f"| {s['best'].get('step', '?')}/{s['step']} | {s['wall'] / 60:.0f} min |"
        for s in sorted(summaries, key=lambda s: -s["best"]["mrr"]))
    if earlier:
        rows += "\n" + "\n".join(earlier)
    architecture = best["config"]["model"]
    context = architecture.get("context_layers", 0)
    layers = f"{context} transformer layer{'s' if context > 1 else ''} -> " if context else ""
    tuned = architecture.get("tuned_reader_layers", 0)
    reader = f"MiniLM, its bottom {tuned} layers tuned in the speech tower's own copy," if tuned else "the frozen MiniLM"
    pooling = (f"{reader} reading the positions as tokens (token_level), its mean pool" if architecture.get("token_level")
               else f"{architecture.get('pooling', 'attention')} pooling")
    trainable = architecture.get("trainable_encoder_layers", 0)
    encoder = f"its top {trainable} layer{'s' if trainable > 1 else ''} tuned" if trainable else "frozen"
    flite = (f", and\nflite {', '.join(FLITE_VOICES['train'])}" if engines.get("flite") else "")
    steps = recipe(best["config"], best["out_dir"])
    commands = "\n".join(with_cache_commands(steps))
    return f"""# seal-base-minilm

Speech tower for seal-rag: Whisper-base encoder ({encoder}) -> Conv1D adapter -> {layers}MLP ->
{pooling} -> shared scaling, aligned with all-MiniLM-L6-v2. Trained with `training/` (SEAL stage 1
MSE alignment, then stage 2 InfoNCE with mined hard negatives, CoSENT and MSE, as weighted in its
config). Only the trained parts (the head{" and the tuned MiniLM layers" if tuned else ""}) are stored here; the base models come from their PyPI packages.

**Status: {"released" if released["top1"] >= cascade["top1"] else "experimental, below the cascade"}.**
{"" if released["top1"] >= cascade["top1"] else "It retrieves much better than the untrained tower but does not generalise well enough yet. For real use prefer the cascade (`seal_rag.cascade.CascadeEmbedding`, `--mode cascade`) until a later release."}

## Validation (our own split; no held-out set was used for anything)

{n_val} questions of SQuAD training articles kept out of all training text ({", ".join(VAL_ARTICLES)}),
spoken by validation voices only (clean TTS), each retrieving its paragraph among {n_passages} paragraphs
of the 38 SQuAD training articles.

| model, same clips | Top-1 | Top-10 | MRR |
|---|---|---|---|
| text oracle (MiniLM on the true question) | {oracle['top1']:.3f} | {oracle['top10']:.3f} | {oracle['mrr']:.3f} |
| cascade: faster-whisper base int8 beam 5, then MiniLM | {cascade['top1']:.3f} | {cascade['top10']:.3f} | {cascade['mrr']:.3f} |
| untrained speech tower (random head) | {untrained['top1']:.3f} | {untrained['top10']:.3f} | {untrained['mrr']:.3f} |
| **this model** (fp32 torch encoder, as shipped) | {released['top1']:.3f} | {released['top10']:.3f} | {released['mrr']:.3f} |

Runs tried (validation on cached CTranslate2-int8 encoder states; best step chosen by MRR; rows
below the first {len(summaries)} are kept from earlier cards, their runs' checkpoints being gone):

| run | Top-1 | Top-10 | MRR | best step / steps | wall |
|---|---|---|---|---|---|
{rows}

## Data

{len(clips)} synthetic clips ({hours:.1f} h of speech) from {"the first " if shard_ranges(clips.shards) == f"0:{len(clips.shards)}" else ""}{len(clips.shards)} shards of
the training plan ({shard_ranges(clips.shards)}): {", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))}.
Texts: SQuAD v1.1 dev `train_articles` minus the 4 validation articles (questions and paragraph
sentences), MedQuAD questions and answer sentences, sentences of Debian man pages and
/usr/share/doc{", and WordNet's glosses" if kinds.get("wordnet") else ""}. Voices: {voices} distinct voices ({", ".join(f"{k} {v}" for k, v in sorted(engines.items()))}),
from espeak-ng accents {", ".join(ESPEAK_ACCENTS["train"])} with all but 16 `+variant`s{flite}, with random speed and pitch; augmentation: synthetic-RIR
reverberation, telephone band, coloured noise at 5-30 dB SNR, gain, leading/trailing silence.
Held out of training: espeak {", ".join(ESPEAK_ACCENTS["val"])} and variants {", ".join(VAL_VARIANTS)}
{f'and flite {", ".join(FLITE_VOICES["val"])} ' if flite else ""}(validation); espeak {", ".join(ESPEAK_ACCENTS["bench"])},
variants {", ".join(BENCH_VARIANTS)}{f' and flite {", ".join(FLITE_VOICES["bench"])}' if flite else ""} (never used: kept
for the benchmark){"" if flite else "; flite, every voice: never heard, kept as a synthesizer family to benchmark on"}. See `seal_rag/voices.py`.

## Reproduce

```
{commands}
python -m training.release --config {config["_path"]}
```
Chosen run: `{best['name']}`, {best['out_dir']}. Architecture: `config.json`.
"""


if __name__ == "__main__":
    run_command(main)
