"""Run folders and checkpoint state: what a run folder may hold, saving and resuming training.

    RUN/checkpoints/train_config.json   the TrainConfig (marks the folder as an rlip run)
    RUN/checkpoints/last.pt             model + optimizer + scheduler + scaler + penalty + RNG state,
                                        history, epoch, wall time

Resuming restores all of it, so that a resumed run ends with the weights of an uninterrupted one
(bit-identical on the CPU): the data order and augmentation of each epoch are seeded by
(seed, epoch), the rest of the randomness is in the saved states.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lip.config import TrainConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_path, atomic_write_json, read_json, to_json
from robustbench_lip.lipschitz.penalty import LipschitzPenalty
from robustbench_lip.runs import read_train_record

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
CONFIG_MARKER = "train_config.json"
LAST = "last.pt"


def marker(run_dir: Path) -> Path:
    """The config file that marks a folder as an rlip run."""
    return run_dir / CHECKPOINTS / CONFIG_MARKER


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS / LAST


def is_rlip_run(run_dir: Path) -> bool:
    """Whether the folder was made by `train` (has the config marker or a train record)."""
    return marker(run_dir).is_file() or read_train_record(run_dir) is not None


def json_roundtrip(d: dict[str, Any]) -> dict[str, Any]:
    """d as it reads back from JSON (tuples → lists, plain types)."""
    return json.loads(to_json(d))


def _saved_settings(path: Path) -> dict[str, Any]:
    """The saved config in its current flat form (an older or unreadable one: as stored)."""
    old = read_json(path)
    try:
        return json_roundtrip(TrainConfig.from_dict(old).to_dict())
    except RlipError:
        return old if isinstance(old, dict) else {}


def prepare_run_dir(run_dir: Path, cfg: TrainConfig) -> bool:
    """Check `run_dir` may hold this run; True when it already holds this run (resume/skip).

    A non-empty folder that is not an rlip run, or an rlip run with other settings, is an RlipError
    and nothing in it is touched.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RlipError(f"{run_dir} is a file, not a run folder; choose another --out")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return False
    if not is_rlip_run(run_dir):
        raise RlipError(f"{run_dir} already holds files that are not an rlip run; choose another --out")
    if not marker(run_dir).is_file():
        raise RlipError(f"{run_dir} holds an rlip run without its training config; choose another --out")
    old = _saved_settings(marker(run_dir))
    new = json_roundtrip(cfg.to_dict())
    diff = sorted(k for k in set(old) | set(new) if k != "device" and old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise RlipError(
            f"{run_dir} holds a run with other settings ({k}: {old.get(k)!r} there, {new.get(k)!r} now); "
            "choose another --out"
        )
    return True


def write_marker(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write_json(marker(run_dir), cfg.to_dict())


@dataclass
class Trainables:
    """Everything whose state a checkpoint holds, besides the global RNG."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    penalty: LipschitzPenalty


@dataclass
class Progress:
    """Where training stands: epochs done, their metrics, wall time of earlier sessions."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_before: float = 0.0


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, parts: Trainables, progress: Progress, wall_s: float) -> None:
    """Write the checkpoint of `parts` after epoch `progress.epoch` (atomically)."""
    state = {
        "epoch": progress.epoch,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "penalty": parts.penalty.state_dict(),
        "rng": rng_state(),
        "history": json_roundtrip({"h": progress.history})["h"],
        "wall_s": wall_s,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint is the user's to remove
        raise RlipError(f"cannot read the training checkpoint {path}: {e}; delete it to restart") from None


def resume(path: Path, parts: Trainables) -> Progress:
    """Restore `parts` and the global RNG from the checkpoint at `path`; the progress it records."""
    state = load_checkpoint(path)
    parts.model.load_state_dict(state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    parts.penalty.load_state_dict(state["penalty"])
    set_rng_state(state["rng"])
    return Progress(
        epoch=int(state["epoch"]), history=list(state["history"]), wall_before=float(state.get("wall_s", 0.0))
    )
