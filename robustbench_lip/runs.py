"""Run directories: the one rule for finding runs (`run_dirs`) and which are finished.

A run directory holds `model.safetensors` + `config.json` (the model), `checkpoints/` (training
state, for resuming) and `results/*.json` (records). It is finished when `results/train.json`
exists with `"status": "finished"`. Whether a run already has an evaluation is
`robustbench_lip.records.is_recorded`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from robustbench_lip.errors import RlipError
from robustbench_lip.records import RESULTS_DIR

TRAIN_RECORD = "train.json"


def read_train_record(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's train record, or None when missing or unreadable."""
    path = Path(run_dir) / RESULTS_DIR / TRAIN_RECORD
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def is_finished(run_dir: str | os.PathLike[str]) -> bool:
    """True when the run has a model and a train record with status "finished"."""
    rec = read_train_record(run_dir)
    return (
        rec is not None
        and rec.get("status") == "finished"
        and (Path(run_dir) / "config.json").is_file()
        and (Path(run_dir) / "model.safetensors").is_file()
    )


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a folder holding a config.json or a results/ folder."""
    p = Path(path)
    return p.is_dir() and ((p / "config.json").is_file() or (p / RESULTS_DIR).is_dir())


def require_runs_dir(runs_dir: str | os.PathLike[str]) -> Path:
    """`runs_dir` as a Path; RlipError "runs folder not found" when it is not a folder (every command
    that walks a runs folder says so the same way)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise RlipError(f"runs folder not found: {root} (pass --runs-dir DIR, or a MODEL)")
    return root


def run_dirs(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """Every run folder under `runs_dir`, at any depth, sorted; `runs_dir` itself may be a run.

    A run folder holds a config.json or a results/ folder (`is_run_dir`). The walk does not
    descend into a run, into hidden folders, nor through symlinked folders, so
    `runs/<run>` and `runs/<dataset>/<run>` layouts are both found. Every command (train status,
    certify, attack, leaderboard) finds runs with this one rule.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found: list[Path] = []
    for here, dirs, _files in os.walk(root):
        dirs.sort()
        if is_run_dir(here):
            found.append(Path(here))
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found)


def finished_runs(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """The finished runs under `runs_dir`, sorted by name."""
    return [p for p in run_dirs(runs_dir) if is_finished(p)]

