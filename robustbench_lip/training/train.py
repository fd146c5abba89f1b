"""`train(config, run_dir)`: train with the Lipschitz penalty into a run folder, resuming or skipping.

    RUN/checkpoints/train_config.json, last.pt   the config and the resumable state (training/state.py)
    RUN/model.safetensors, config.json           the final model (checkpoint.save_model)
    RUN/results/train.json                       the TrainRecord: status, history (per epoch), final metrics

Each epoch (training/epoch.py) is followed by the held-out evaluation (training/evaluate.py), a
checkpoint and the record (status "running"); the last one saves the model and marks the record
"finished". Ctrl-C (KeyboardInterrupt; the CLI turns SIGTERM into one) marks it "interrupted", with
the epochs of the last checkpoint, and is re-raised. A run restarted after an interruption resumes
from the last epoch checkpoint and ends with the weights of an uninterrupted one (bit-identical on
the CPU). The library never prints: progress goes to an optional callback, messages to `logging`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from robustbench_lip.config import DatasetInfo, PenaltyConfig, TrainConfig
from robustbench_lip.device import preserved_rng, resolve_device, set_eval
from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.penalty import LipschitzPenalty
from robustbench_lip.records import RecordKind, TrainRecord, env_info, record_path, write_record
from robustbench_lip.runs import is_finished, read_train_record
from robustbench_lip.training import state
from robustbench_lip.training.epoch import Emit, Loop, NonFiniteLoss, run_epoch
from robustbench_lip.training.evaluate import FINAL_KEYS, constant_scores, evaluate, outputs_finite
from robustbench_lip.training.optim import make_optimizer, make_scheduler

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
"""Receives events: {"event": "start", "epochs", "start_epoch", "steps", "run"}, {"event": "step",
"epoch", "step", "steps", "loss", "penalty", "sigma", "images_per_s"}, {"event": "epoch", "epoch",
"epochs", "metrics"}, {"event": "end", "status"}."""


@dataclass
class TrainResult:
    """What `train` returns: the run folder, the train record it wrote (or found, when `skipped`
    because the run had finished before), and the record's status, history, final metrics,
    settings and wall time."""

    run_dir: Path
    record: TrainRecord
    skipped: bool = False

    @property
    def status(self) -> str:
        return self.record.status or ""

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.record.history or []

    @property
    def final(self) -> dict[str, Any]:
        return self.record.final or {}

    @property
    def settings(self) -> dict[str, Any]:
        return self.record.settings

    @property
    def wall_s(self) -> float:
        return self.record.wall_s


@dataclass
class Setup:
    """Datasets, model and the resolved penalty of a TrainConfig (built by `build`)."""

    model: nn.Module
    train_set: Any
    test_set: Any
    info: DatasetInfo
    penalty: PenaltyConfig  # target resolved

    @property
    def reg_target(self) -> str:
        return str(self.penalty.target)

    @cached_property
    def baseline(self) -> dict[str, float | None]:
        """The best constant prediction's accuracy and mIoU on the test set (one pass, then kept:
        every epoch's collapse check compares against it)."""
        return constant_scores(self.test_set)


def build(cfg: TrainConfig) -> Setup:
    """Datasets and a freshly initialised model (global RNG seeded by the caller); validates the
    combination (unknown names, reflection on a shape-changing model, masks for segmenters)."""
    from robustbench_lip.data import get_dataset
    from robustbench_lip.models import create_model_for

    train_set = get_dataset(cfg.data, "train", root=cfg.root, **cfg.data_options)
    test_set = get_dataset(cfg.data, "test", root=cfg.root, **cfg.data_options)
    info = train_set.info
    model = create_model_for(cfg.model, info, **cfg.model_options)
    mc = model.config
    penalty = cfg.penalty.resolved(bool(mc.reflection_defined))
    if penalty.target == "reflection" and not mc.reflection_defined:
        raise RlipError(
            f"--reg-target reflection needs a model whose output shape equals its input shape; "
            f"{cfg.model} ({mc.task}) maps {tuple(mc.input_size)} to another shape; use --reg-target A"
        )
    if mc.task != "classification" and not info.has_masks:
        raise RlipError(f"{cfg.model} is a {mc.task} model and needs masks, but {cfg.data} has none")
    return Setup(model=model, train_set=train_set, test_set=test_set, info=info, penalty=penalty)


def record_settings(cfg: TrainConfig, penalty: PenaltyConfig) -> dict[str, Any]:
    """The `settings` of the train record: the flat config without the device; target, root (absolute)
    and augmentation resolved (`augment`: whether flip/crop ran; `augmentation`: every transform
    applied, in order)."""
    from robustbench_lip.training.losses import augmentation, use_augment

    d = cfg.to_dict()
    d.pop("device", None)
    d["reg_target"] = penalty.target
    d["root"] = str(Path(cfg.root).resolve()) if cfg.root else None  # certify/attack find it here
    d["augment"] = use_augment(cfg)
    d["augmentation"] = augmentation(cfg)
    return d


def train(cfg: TrainConfig, run_dir: str | Path, progress: ProgressFn | None = None) -> TrainResult:
    """Train (or resume, or skip when finished) the run `cfg` in `run_dir`; see the module docstring.

    Raises RlipError for bad input (before anything is written) and when the loss or the weights
    become non-finite (the last good checkpoint is kept, train.json says "failed").
    """
    run_dir = Path(run_dir)
    existing = state.prepare_run_dir(run_dir, cfg)
    if existing and is_finished(run_dir):
        log.info("%s: already finished, skipped", run_dir)
        return _skipped(run_dir)
    device = resolve_device(cfg.device)
    amp = bool(cfg.amp) if cfg.amp is not None else device.type == "cuda"
    with preserved_rng():
        torch.manual_seed(cfg.seed)
        setup = build(cfg)  # validates before anything is written
        session = _Session(cfg, run_dir, setup, device, amp)
        return session.run(progress or (lambda _e: None))


def _skipped(run_dir: Path) -> TrainResult:
    rec = read_train_record(run_dir) or {"kind": RecordKind.TRAIN.value, "status": "finished"}
    return TrainResult(run_dir=run_dir, record=cast(TrainRecord, TrainRecord.from_dict(rec)), skipped=True)


def _final(history: list[dict[str, Any]]) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {k: last.get(k) for k in FINAL_KEYS}


class _Session:
    """One training session of a run: the trainables (restored from the checkpoint if any), the
    record writer and the epoch loop."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, setup: Setup, device: torch.device, amp: bool):
        self.cfg, self.run_dir, self.setup, self.device = cfg, run_dir, setup, device
        self.settings = record_settings(cfg, setup.penalty)
        model = setup.model.to(device)
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.optim)
        n_train = len(setup.train_set)
        drop_last = n_train > cfg.batch_size
        steps = n_train // cfg.batch_size if drop_last else 1
        self.parts = state.Trainables(
            model=model,
            optimizer=opt,
            scheduler=make_scheduler(opt, cfg.optim, steps * cfg.epochs),
            scaler=torch.amp.GradScaler(device.type, enabled=amp),
            penalty=LipschitzPenalty(setup.penalty, seed=cfg.seed),
        )
        self.loop = Loop(cfg, self.parts, setup.train_set, device, amp, drop_last, steps)
        self.ckpt = state.checkpoint_path(run_dir)
        if self.ckpt.is_file():
            self.progress = state.resume(self.ckpt, self.parts)
            log.info("%s: resuming after epoch %d", run_dir, self.progress.epoch)
        else:
            self.progress = state.Progress()
            state.write_marker(run_dir, cfg)
        self.t0 = time.perf_counter()

    def wall_s(self) -> float:
        return self.progress.wall_before + time.perf_counter() - self.t0

    def record(self, status: str, error: str | None = None, epochs: int | None = None) -> TrainRecord:
        """Write results/train.json with this status and the history so far (its first `epochs`
        entries when given); returns the record."""
        history = list(self.progress.history)[:epochs]
        rec = TrainRecord(
            model=self.parts.model.config.to_dict(),
            dataset=self.setup.info.to_dict(),
            settings=self.settings,
            env=env_info(self.device),
            wall_s=self.wall_s(),
            status=status,
            history=history,
            final=_final(history),
            penalty=self.parts.penalty.config.to_dict(),
            error=error,
        )
        write_record(record_path(self.run_dir, RecordKind.TRAIN.value), rec)
        return rec

    def fail(self, what: str, emit: Emit | None) -> RlipError:
        """Record the failure `what` (the last good checkpoint stays) and return the error to raise."""
        h = self.progress.history
        saved = f"epoch {h[-1]['epoch']}" if h else "none yet"
        msg = (
            f"training diverged: {what}; the last good checkpoint ({saved}) is kept in "
            f"{self.run_dir / state.CHECKPOINTS}; lower --lr or --lam"
        )
        self.record("failed", error=msg)
        if emit is not None:
            emit({"event": "end", "status": "failed"})
        return RlipError(msg)

    def run(self, emit: Emit) -> TrainResult:
        cfg = self.cfg
        start = {"event": "start", "epochs": cfg.epochs, "start_epoch": self.progress.epoch}
        emit({**start, "steps": self.loop.steps, "run": str(self.run_dir)})
        self.saved = self.progress.epoch  # epochs in the checkpoint on disk
        try:
            for epoch in range(self.progress.epoch, cfg.epochs):
                self.epoch(epoch, emit)
            return self.finish(emit)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM turned into one by the CLI
            self.record("interrupted", epochs=self.saved)
            log.debug("%s: interrupted; the checkpoint of epoch %d is kept", self.run_dir, self.saved)
            emit({"event": "end", "status": "interrupted"})
            raise

    def epoch(self, epoch: int, emit: Emit) -> None:
        """Train, evaluate, checkpoint and record epoch `epoch` (0-based)."""
        cfg, parts = self.cfg, self.parts
        try:
            stats = run_epoch(self.loop, epoch, emit)
        except NonFiniteLoss as e:
            where = f"epoch {e.epoch}, step {e.step}"
            what = f"non-finite loss at {where} (loss {e.loss:.4g}, penalty {e.penalty:.4g})"
            raise self.fail(what, emit) from None
        if not all(bool(torch.isfinite(p).all()) for p in parts.model.parameters()):
            raise self.fail(f"non-finite weights after epoch {epoch + 1}", None)
        if not outputs_finite(parts.model, self.setup.test_set, self.device):
            raise self.fail(f"non-finite eval-mode outputs after epoch {epoch + 1}", None)
        last = epoch + 1 == cfg.epochs
        iters = max(cfg.sigma_iters, cfg.sigma_final_iters) if last else cfg.sigma_iters
        setup = self.setup
        metrics = evaluate(
            parts.model, setup.test_set, setup.info, self.device, cfg.sigma_points, iters, setup.baseline
        )
        row = {"epoch": epoch + 1, "lr": stats.lr, **stats.metrics(), **metrics}
        self.progress.history.append(row)
        self.progress.epoch = epoch + 1
        log.info(
            "%s epoch %d/%d: loss %.4f penalty %.4g acc %s σA max %s",
            self.run_dir.name,
            epoch + 1,
            cfg.epochs,
            row["train_loss"],
            row["train_penalty"],
            _fmt(metrics["accuracy"]),
            _fmt(metrics["sigma_A_max"]),
        )
        state.save_checkpoint(self.ckpt, parts, self.progress, self.wall_s())
        self.saved = epoch + 1
        self.record("running")
        emit({"event": "epoch", "epoch": epoch + 1, "epochs": cfg.epochs, "metrics": row})

    def finish(self, emit: Emit) -> TrainResult:
        """Save the model, write the finished record."""
        from robustbench_lip.modelio import save_model

        final = _final(self.progress.history)
        summary = {"settings": self.settings, "final": final, "epochs": self.cfg.epochs}
        set_eval(self.parts.model)
        training = state.json_roundtrip(summary)
        save_model(self.parts.model, self.run_dir, dataset=self.setup.info, training=training)
        rec = self.record("finished")
        emit({"event": "end", "status": "finished"})
        return TrainResult(run_dir=self.run_dir, record=rec)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
