"""The phonetic half: a CTC phoneme recognizer on Whisper's states, and the IDF of phoneme n-grams.

    python -m training.phonetic --config training/configs/seal-base-minilm-6-phonetic.toml            # train (resumable)
    python -m training.phonetic --config training/configs/seal-base-minilm-6-phonetic.toml --release seal_rag/models/seal-base-minilm

It trains on a cache made with `[data] below_top = 1` (full-rate states one layer short of
the top: `sh training/run_cache.sh <config>`); Whisper's frozen top layer runs over it once,
into `<out_dir>/final_states/` (resumable, about 12 min on one core). The targets are espeak-ng's phonemes of each clip's transcript. The IDF is fitted on the
phonemes of every text training may use. Validation: phoneme error rate on the validation
clips, and retrieval by the phonetic half alone (validation questions against the 1,551
paragraphs), which picks the best step. `--release` adds the best recognizer and the IDF to a
model directory and sets `phonetic_weight`, the phonetic half's share of the cosine, to
`[phonetic] weight`, and how queries read the recognizer to `[phonetic] decoding` and its settings.
With `[phonetic] ensemble` (other runs' out_dirs), their best recognizers join this run's and the
model hears them together (`seal_rag.phonetic.RecognizerEnsemble`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from seal_rag.atomic_file import atomic_path
from seal_rag.config import SealConfig
from seal_rag.phonetic import PHONEMES, PhonemeRecognizer, PhoneticVectorizer, phonemize
from seal_rag.safe_text import for_terminal
from seal_rag.voices import TRAINING_FAMILIES, family_roles

from . import text_sources as ts
from .cache import _training_pools
from .config import command_line, load_config, make_folder, parse_command_line, require, run_command
from .data import cached_shards, completed_shards, length_bucketed_batches, load_clips
from .evaluate import rank_metrics
from .model import EncoderTop
from .train_common import Logger, learning_rate, load_checkpoint, record_voices, save_checkpoint, seed_everything, use_bf16


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(b) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1]))
    return row[len(b)]


def fit_idf(out_dir: Path, dim: int, max_texts: int | None = None) -> PhoneticVectorizer:
    """The IDF over every allowed training text (332,000 sentences; an even spread of
    `max_texts` of them for a smoke run), fitted once and kept in `out_dir`."""
    path = out_dir / f"idf_{dim}.npy"
    if path.is_file():
        return PhoneticVectorizer(np.load(path))
    texts = sorted({u.text for make in _training_pools().values() for u in make()})
    if max_texts:
        texts = texts[:: max(1, len(texts) // max_texts)]
    vectorizer = PhoneticVectorizer.fit([phonemize(t) for t in texts], dim)
    np.save(path, vectorizer.idf)
    return vectorizer


def write_final_states(data: dict, top: EncoderTop, final_dir: Path) -> None:
    """Run Whisper's frozen top layer once over every cached shard (`cache_dir` holds the states
    below it) and keep the full-rate final states in `final_dir`, shard by shard: a killed run
    resumes at the first missing shard. It halves the cost of a training step."""
    final_dir.mkdir(parents=True, exist_ok=True)
    source = Path(data["cache_dir"]).expanduser()
    for plan in source.glob("plan_*.jsonl"):
        shutil.copy(plan, final_dir / plan.name)
    names = cached_shards(source, "val") + completed_shards(data, "train")
    for name in tqdm([n for n in names if not (final_dir / n).is_file()], desc="Whisper's top layer", unit="shard"):
        with np.load(source / name) as shard:
            arrays = {k: shard[k] for k in shard.files}
        lengths = arrays["lengths"]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        final = [None] * len(lengths)
        order = np.argsort(lengths)  # batches of similar length pad little
        with torch.no_grad():
            for start in range(0, len(order), 16):
                chosen = order[start : start + 16]
                states = torch.zeros(len(chosen), int(lengths[chosen].max()), arrays["states"].shape[1])
                for row, i in enumerate(chosen):
                    states[row, : lengths[i]] = torch.from_numpy(arrays["states"][offsets[i] : offsets[i + 1]].astype(np.float32))
                out, _ = top(states, torch.from_numpy(lengths[chosen]).long())
                for row, i in enumerate(chosen):
                    final[i] = out[row, : lengths[i]].numpy().astype(np.float16)
        arrays["states"] = np.concatenate(final)
        with atomic_path(final_dir / name) as partial:
            np.savez(partial, **arrays)


class PhoneticValidation:
    """Validation clips' phoneme error rate, and phonetic retrieval among all 1,551 paragraphs."""

    def __init__(self, final_dir: Path):
        self.clips = load_clips(final_dir, "val")
        passages = ts.squad_passages(ts.squad_articles("train") + ts.squad_articles("val"))
        index = {p.passage_id: i for i, p in enumerate(passages)}
        self.gold = np.array([index[item["passage_id"]] for item in self.clips.items])
        self.targets = [phonemize(item["text"]) for item in self.clips.items]
        self.passage_phonemes = [phonemize(p.text) for p in passages]

    @torch.no_grad()
    def decode(self, model: PhonemeRecognizer) -> list[str]:
        model.eval()
        out = []
        for start in range(0, len(self.clips), 32):
            states, lengths = self.clips.batch(range(start, min(start + 32, len(self.clips))))
            out += model.decode(*model(states, lengths))
        model.train()
        return out

    def __call__(self, model: PhonemeRecognizer, vectorizer: PhoneticVectorizer) -> dict[str, float]:
        heard = self.decode(model)
        errors = sum(edit_distance(h, t) for h, t in zip(heard, self.targets))
        scores = vectorizer.vectors(heard) @ vectorizer.vectors(self.passage_phonemes).T
        return {"per": errors / sum(map(len, self.targets)), **rank_metrics(scores, self.gold)}


# What train() reads, checked at its start (some only at the first batch or the release).
REQUIRED = {
    "phonetic": ("out_dir", "seed", "steps", "lr", "warmup", "eval_interval", "batch_size", "hash_dim", "weight",
                 "weight_decay", "time_mask", "log_interval"),
    "data": ("cache_dir",),
}


def train(config: dict) -> Path:
    section, data = (require(config, table, keys) for table, keys in REQUIRED.items())
    if data.get("below_top") != 1:
        raise SystemExit("error: the phoneme recognizer reads full-rate states: use a cache made with [data] below_top = 1")
    torch.set_num_threads(section.get("threads", 1))
    out_dir = Path(section["out_dir"]).expanduser()
    make_folder(out_dir, "[phonetic] out_dir")
    rng = seed_everything(section["seed"])
    vectorizer = fit_idf(out_dir, section["hash_dim"], section.get("idf_texts"))
    final_dir = out_dir / "final_states"
    write_final_states(data, EncoderTop(config.get("model", {}).get("whisper_model", "whisper-base"), 1, 0, 1).eval(), final_dir)
    model = PhonemeRecognizer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=section["lr"], weight_decay=section["weight_decay"])
    checkpoint = load_checkpoint(out_dir / "ckpt.pt")
    shards = checkpoint["shards"] if checkpoint else completed_shards(data, "train")
    clips = load_clips(final_dir, "train", shards)
    labels = [torch.tensor([PHONEMES.index(c) for c in phonemize(item["text"])]) for item in clips.items]
    validation = PhoneticValidation(final_dir)
    step, best = 0, {"mrr": -1.0}
    batches: list[list[int]] = []  # the rest of the epoch, last batch first
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step, best = checkpoint["step"], checkpoint["best"]
        rng.setstate(checkpoint["rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        batches = checkpoint.get("order", [])  # a run stopped mid-epoch goes on with that epoch, as uninterrupted
    bf16 = use_bf16(section)
    log = Logger(out_dir, section["steps"], step)
    while step < section["steps"]:
        if not batches:
            batches = length_bucketed_batches(list(range(len(clips))), clips.lengths, section["batch_size"], rng)
        batch = batches.pop()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, section)
        states, lengths = clips.batch(batch, section["time_mask"], rng)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, steps = model(states, lengths)
        targets = [labels[i] for i in batch]
        loss = torch.nn.functional.ctc_loss(
            logits.float().log_softmax(-1).transpose(0, 1), torch.cat(targets), steps,
            torch.tensor([len(t) for t in targets]), blank=model.blank, zero_infinity=True)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % section["log_interval"] == 0:
            log(step, ctc=loss.item())
        step += 1
        if step % section["eval_interval"] == 0 or step == section["steps"]:
            figures = validation(model, vectorizer)
            print(f"validation at step {step}: " + " ".join(f"{k} {v:.4f}" for k, v in figures.items()), flush=True)
            with (out_dir / "validation.jsonl").open("a") as f:
                f.write(json.dumps(dict(step=step, **figures)) + "\n")
            if figures["mrr"] > best["mrr"]:
                best = dict(step=step, **figures)
                save_checkpoint(out_dir / "best.pt", model=model.state_dict(), best=best)
            save_checkpoint(out_dir / "ckpt.pt", model=model.state_dict(), optimizer=optimizer.state_dict(), step=step,
                            best=best, shards=shards, rng=rng.getstate(), torch_rng=torch.get_rng_state(), order=batches,
                            config=config)
    print(f"best: {best}")
    return out_dir


def best_recognizers(config: dict) -> list[tuple[Path, dict]]:
    """(out_dir, best.pt) of this run, then of each run in `[phonetic] ensemble`, in that order.

    Every member must have heard the same voice families as this run (`voices.json` records this
    run's, and an unseen-family benchmark is honest only if no member heard that family) and be the
    same recognizer on the same encoder's states."""
    section, data = config["phonetic"], config["data"]
    others = section.get("ensemble", [])
    if not isinstance(others, list) or not all(isinstance(run, str) for run in others):
        raise SystemExit('error: [phonetic] ensemble must be a list of out_dirs, such as ["~/.cache/seal_rag/training/run"]')
    runs = [Path(section["out_dir"]).expanduser()] + [Path(run).expanduser() for run in others]
    if len({run.resolve() for run in runs}) < len(runs):
        raise SystemExit("error: [phonetic] ensemble names a run twice (or this run's own out_dir): name each once")
    roles = family_roles(data.get("families", TRAINING_FAMILIES))
    found = []
    for run in runs:
        best = load_checkpoint(run / "best.pt")
        if best is None:
            raise SystemExit(f"error: no {for_terminal(run / 'best.pt')}: train that run first (python -m training.phonetic --config ...)")
        if run != runs[0]:
            trained = load_checkpoint(run / "ckpt.pt")
            if trained is None:
                raise SystemExit(f"error: no {for_terminal(run / 'ckpt.pt')}: which voices {for_terminal(run)} heard is unknown; train it with training.phonetic")
            if family_roles(trained["config"]["data"].get("families", TRAINING_FAMILIES)) != roles:
                raise SystemExit(f"error: {for_terminal(run)} heard other voice families than this run ([data] families): "
                                 "an ensemble's members must share them, or no family is left unseen to benchmark on")
            if _encoder(trained["config"]) != _encoder(config) or _shapes(best) != _shapes(found[0][1]):
                raise SystemExit(f"error: {for_terminal(run)} trained another recognizer (encoder or sizes) than this run's: "
                                 "an ensemble's members hear the same encoder's states")
        found.append((run, best))
    return found


def _encoder(config: dict) -> str:
    return config.get("model", {}).get("whisper_model", "whisper-base")


def _shapes(best: dict) -> dict:
    return {name: tuple(weight.shape) for name, weight in best["model"].items()}


def recognizer_weights(bests: list[dict]) -> dict[str, torch.Tensor]:
    """The recognizers' weights as the model file names them: one keeps `phonetic.recognizer.*`,
    an ensemble's members are `phonetic.recognizer.members.<i>.*` (`seal_rag.phonetic.PhoneticHalf`)."""
    if len(bests) == 1:
        return {f"phonetic.recognizer.{k}": v.contiguous() for k, v in bests[0]["model"].items()}
    return {f"phonetic.recognizer.members.{i}.{k}": v.contiguous() for i, best in enumerate(bests) for k, v in best["model"].items()}


def release(config: dict, model_dir: Path) -> None:
    """Add the best recognizer(s) and the IDF to `model_dir` (its other weights stay as they are),
    then set the model's status from the joined model against the cascade on validation."""
    section, data = (require(config, table, keys) for table, keys in REQUIRED.items())
    out_dir = Path(section["out_dir"]).expanduser()
    runs = best_recognizers(config)
    idf_path = out_dir / f"idf_{section['hash_dim']}.npy"
    if not idf_path.is_file():
        raise SystemExit(f"error: no {for_terminal(idf_path)}: [phonetic] hash_dim differs from the run's; release with the config it trained with")
    weights = {k: v for k, v in load_file(model_dir / "model.safetensors").items() if not k.startswith("phonetic.")}
    weights |= recognizer_weights([best for _, best in runs])
    weights["phonetic.idf"] = torch.from_numpy(np.load(idf_path))
    # How queries read the recognizer (chosen on the piper validation family, training/unseen_voices.py).
    # `replace` checks the values as loading would (a misspelt decoding fails here, not at `ask`).
    settings = {f"phonetic_{key}": section[key] for key in ("temperature", "top_k", "min_prob", "min_insert") if key in section}
    settings |= {"spelled_weight": section["spelled_weight"]} if "spelled_weight" in section else {}
    model_config = dataclasses.replace(SealConfig.load(model_dir / "config.json"), phonetic_dim=section["hash_dim"],
                                       phonetic_weight=section["weight"], phonetic_decoding=section.get("decoding", "greedy"),
                                       phonetic_recognizers=len(runs), status="experimental", **settings)
    # The weights first, whole (a stop mid-write leaves the old file), then the config that describes them.
    with atomic_path(model_dir / "model.safetensors") as partial:
        save_file(weights, partial, metadata={"format": "pt"})
        partial.chmod(0o644)  # safetensors writes 0600; a shipped file must be readable by every user
    model_config.save(model_dir / "config.json")
    record_voices(model_dir, "phonetic", data)
    joined, cascade = validate_release(model_dir, data)
    model_config.status = "released" if joined["top1"] >= cascade["top1"] else "experimental"
    model_config.save(model_dir / "config.json")
    print(f"validation Top-1: joined model {joined['top1']:.3f}, cascade {cascade['top1']:.3f}: {model_config.status}")
    for run, best in runs:
        print(f"released step {best['best']['step']} of {for_terminal(run)} into {for_terminal(model_dir)}: {best['best']}")


def validate_release(model_dir: Path, data: dict) -> tuple[dict, dict]:
    """Validation figures of the model in `model_dir` (the real path: its fp32 encoder on the
    validation audio) and of the cascade, as `training.release` compares the semantic half alone."""
    import warnings

    from seal_rag import SpeechEmbedding

    from .evaluate import Validation

    validation = Validation(data["cache_dir"], data.get("val_corpus", "all"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it loads as experimental until these figures say otherwise
        model = SpeechEmbedding.from_pretrained(model_dir)
    return validation.evaluate_embedding(model)["speech"], validation.evaluate_cascade()


def main() -> None:
    parser = command_line(__doc__)
    parser.add_argument("--release", type=Path, help="a model directory to add the phonetic half to")
    args = parse_command_line(parser)
    config = load_config(args.config)
    if args.release:
        release(config, args.release)
    else:
        train(config)


if __name__ == "__main__":
    run_command(main)
