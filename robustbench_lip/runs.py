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


def run_dirs(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """Every immediate subfolder of `runs_dir` holding a config.json or a results/ folder, sorted."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and ((p / "config.json").exists() or (p / RESULTS_DIR).is_dir())
    )


def finished_runs(runs_dir: str | os.PathLike[str]) -> list[Path]:
    """The finished runs under `runs_dir`, sorted by name."""
    return [p for p in run_dirs(runs_dir) if is_finished(p)]

