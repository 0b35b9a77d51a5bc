"""What stage 1 and stage 2 share: seeding, the optimizer and schedule, checkpoints, logging.

A checkpoint (`ckpt.pt` in the run's `out_dir`) holds the model, the optimizer, the step,
the config, the shard list the run trains on, the best validation figures so far and the
best weights. Rerunning the same command resumes from it.

A stage's `bf16` option (`"auto"` unless set) trains the head under bfloat16 autocast where the
CPU computes bf16 natively; elsewhere it is emulated and slower than fp32 (see `use_bf16`).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from seal_rag.atomic_file import atomic_path
from seal_rag.safe_text import for_terminal
from seal_rag.voices import FAMILY_ROLES, TRAINING_FAMILIES, family_roles

from .config import command_line, load_config, parse_command_line, positive_int, require


def seed_everything(seed: int) -> random.Random:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return random.Random(seed)


def use_bf16(section: dict) -> bool:
    """A stage's `bf16` option: true, false, or "auto" (the default) for `seal_rag.adapt.bf16_is_native()`."""
    choice = section.get("bf16", "auto")
    if choice == "auto":
        from seal_rag.adapt import bf16_is_native

        return bf16_is_native()
    if not isinstance(choice, bool):
        raise SystemExit(f'error: bf16 = {choice!r} in the config: use true, false or "auto"')
    return choice


def make_optimizer(model: torch.nn.Module, section: dict, train_scaling: bool) -> torch.optim.Optimizer:
    # Biases and norm gains are not decayed; the scaling layer is trained only if asked,
    # because it is shared with the text tower: moving it moves every indexed passage too.
    # Tuned text-model and Whisper layers are pretrained, so they learn at `reader_lr_scale`
    # and `encoder_lr_scale` of the head's rate.
    model.scaling.requires_grad_(train_scaling)
    scales = {"head.reader.tuned.": section.get("reader_lr_scale", 1.0), "encoder_top.": section.get("encoder_lr_scale", 1.0)}

    def scale_of(name: str) -> float:
        return next((scale for prefix, scale in scales.items() if name.startswith(prefix)), 1.0)

    groups = []
    for lr_scale in dict.fromkeys([1.0, *scales.values()]):  # the head's group first, as checkpoints expect
        chosen = [(n, p) for n, p in model.named_parameters() if p.requires_grad and scale_of(n) == lr_scale]
        for decayed in (True, False):
            params = [p for n, p in chosen if (p.ndim >= 2) == decayed]
            if params:
                groups.append({"params": params, "weight_decay": section["weight_decay"] if decayed else 0.0, "lr_scale": lr_scale})
    return torch.optim.AdamW(groups, lr=section["lr"], betas=(0.9, 0.98))


def learning_rate(step: int, section: dict) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    peak, warmup, total = section["lr"], section["warmup"], section["steps"]
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(path: Path, **state) -> None:
    with atomic_path(path) as partial:  # a kill during the save leaves the previous checkpoint
        torch.save(state, partial)


def load_checkpoint(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None


def warm_start(model: torch.nn.Module, path: str | Path) -> None:
    """Load a head saved by an earlier run (`best_head.pt`, its last step's `ckpt.pt`, or a
    released model directory such as a run's `best/`) into `model`.

    Stage 1's training-only CTC branch stays behind, and so does an attention pooling that a
    token-level head replaces with the text model's reading. Context layers the earlier head
    did not have keep their identity start (see seal_rag.speech_tower.ContextLayers), and
    text-model and Whisper layers it did not tune start as the pretrained ones, so the new head begins
    exactly where the old one ended. Any other mismatch is an error.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise SystemExit(f"error: init {for_terminal(path)} does not exist: run the stage that makes it first (training/README.md gives the order)")
    left_behind = ("ctc.", "head.attention.") if model.config.token_level else ("ctc.",)
    if path.is_dir():
        saved = model.load_released(path)
    elif path.name == "ckpt.pt":  # where a run ended, which need not be its best step
        saved = load_checkpoint(path)["model"]
    else:
        saved = torch.load(path)
    state = {k: v for k, v in saved.items() if not k.startswith(left_behind)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("head.context.", "ctc.", "head.reader.tuned.", "encoder_top."))]
    if missing or unexpected:
        raise SystemExit(f"error: init {for_terminal(path)} does not fit this config's [model] ({len(missing)} weights missing, {len(unexpected)} "
                         f"unexpected, e.g. {(missing or unexpected)[0]!r}): start from a run of the same architecture")
    print(f"initialised from {for_terminal(path)}")


class Logger:
    """Prints one line per log interval with speed and time left, and appends it to log.jsonl."""

    def __init__(self, out_dir: Path, total_steps: int, start_step: int):
        self.path = out_dir / "log.jsonl"
        self.total, self.start_step, self.start = total_steps, start_step, time.time()

    def __call__(self, step: int, **values) -> None:
        done = step + 1 - self.start_step
        per_step = (time.time() - self.start) / max(1, done)
        eta = per_step * (self.total - step - 1)
        text = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"step {step + 1}/{self.total} {text} | {per_step:.2f} s/step, ETA {eta / 60:.1f} min", flush=True)
        with self.path.open("a") as f:
            f.write(json.dumps(dict(step=step + 1, time=time.time(), **values)) + "\n")


class Run:
    """One stage's training loop: resume, step, log, validate, checkpoint, export the best.

    `new_epoch()` returns the epoch's batches (lists of indices) and `batch_loss(batch)`
    returns the loss to minimise plus named parts to log. Everything a resumed run needs to
    continue exactly (model, optimizer, step, both RNGs, the rest of the epoch) is in ckpt.pt.
    """

    def __init__(self, stage: str, config: dict, section: dict, model, optimizer, rng: random.Random,
                 shards: list, validation, checkpoint: dict | None):
        self.stage, self.config, self.section = stage, config, section
        self.model, self.optimizer, self.rng, self.shards, self.validation = model, optimizer, rng, shards, validation
        self.out_dir = Path(section["out_dir"]).expanduser()
        self.step, self.best, self.order = 0, {"mrr": -1.0}, []
        if checkpoint:
            try:
                model.load_state_dict(checkpoint["model"])
            except RuntimeError:  # the weights' names or shapes differ from this config's
                raise SystemExit(f"error: {for_terminal(self.out_dir / 'ckpt.pt')} was trained with other [model] settings: restore them, "
                                 "or give this run a new out_dir") from None
            optimizer.load_state_dict(checkpoint["optimizer"])
            self.step, self.best = checkpoint["step"], checkpoint["best"]
            rng.setstate(checkpoint["rng"])
            torch.set_rng_state(checkpoint["torch_rng"])
            self.order = checkpoint.get("order", [])
            print(f"resumed at step {self.step}")

    def validate(self) -> dict:
        figures = self.validation.evaluate_head(self.model)
        print(f"  val top1 {figures['top1']:.3f} top10 {figures['top10']:.3f} mrr {figures['mrr']:.3f} cos {figures['cos']:.3f}")
        if figures["mrr"] > self.best["mrr"]:
            self.best = dict(figures, step=self.step)
            torch.save(self.model.state_dict(), self.out_dir / "best_head.pt")
        return figures

    def save(self) -> None:
        save_checkpoint(self.out_dir / "ckpt.pt", model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                        step=self.step, config=self.config, shards=self.shards, best=self.best, rng=self.rng.getstate(),
                        torch_rng=torch.get_rng_state(), order=self.order)

    def train(self, new_epoch, batch_loss, export) -> dict:
        section, model, optimizer = self.section, self.model, self.optimizer
        logger = Logger(self.out_dir, section["steps"], self.step)
        while self.step < section["steps"]:
            model.train()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(self.step, section) * group.get("lr_scale", 1.0)
            if not self.order:
                self.order = new_epoch()
            loss, parts = batch_loss(self.order.pop())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            self.step += 1

            if self.step % section["log_interval"] == 0:
                logger(self.step - 1, loss=loss.item(), **{k: v.item() for k, v in parts.items()},
                       lr=optimizer.param_groups[0]["lr"])
            if self.step % section["eval_interval"] == 0 or self.step == section["steps"]:
                figures = self.validate()
                logger(self.step - 1, **{f"val_{k}": v for k, v in figures.items()})
                self.save()
        self.save()

        model.load_state_dict(torch.load(self.out_dir / "best_head.pt"))
        export(model, self.out_dir / "best")
        print(f"{self.stage} done: best val {self.best} -> {for_terminal(self.out_dir / 'best')}")
        return self.best


def main(train, description: str) -> None:
    """The command line both stages share: --config, and --threads to override data.threads."""
    parser = command_line(description)
    parser.add_argument("--threads", type=positive_int, default=None, help="override data.threads (torch CPU threads)")
    args = parse_command_line(parser)
    config = load_config(args.config)
    if args.threads:
        require(config, "data", ())["threads"] = args.threads
    start = time.time()
    train(config)
    print(f"wall time {time.time() - start:.0f} s")


def record_voices(model_dir: Path, half: str, data: dict) -> None:
    """Note in `model_dir`'s `voices.json` which families `half` ("phonetic" or "semantic") heard,
    from the run's `[data] families`. training.unseen_voices benchmarks only on a family neither
    half with weight heard. Written when a run held a family out, or the file is there already
    (the other half's roles kept); a model trained as shipped needs none."""
    roles = family_roles(data.get("families", TRAINING_FAMILIES))
    path = model_dir / "voices.json"
    if not path.is_file() and roles == FAMILY_ROLES:
        return
    both = json.loads(path.read_text()) if path.is_file() else {"phonetic": dict(FAMILY_ROLES), "semantic": dict(FAMILY_ROLES)}
    both[half] = roles
    path.write_text(json.dumps(both, indent=1) + "\n")
