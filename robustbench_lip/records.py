"""Result records: one JSON file per (run, evaluation), the source of truth for the leaderboard.

A record is a dict with the envelope keys `kind` ("train" | "certify" | "attack" | "eval"),
`model` (ModelConfig dict), `dataset` (DatasetInfo dict or null), `settings` (what was asked),
`env` ({rlip, torch, device}), `created` (ISO-8601, UTC) and `wall_s` (seconds), plus the kind's
own payload keys at the top level (e.g. `lipschitz`, `fne` for certify; `clean`, `results` for
attack; `history`, `final` for train). Numbers are numbers; a missing value is null, never 0.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from robustbench_lip import __version__
from robustbench_lip.io import atomic_write_json, to_json

RESULTS_DIR = "results"
KINDS: tuple[str, ...] = ("train", "certify", "attack", "eval")
ENVELOPE_KEYS: tuple[str, ...] = ("kind", "model", "dataset", "settings", "env", "created", "wall_s")


def env_info(device: str | torch.device = "cpu") -> dict[str, str]:
    """Versions and device of this process."""
    return {"rlip": __version__, "torch": torch.__version__, "device": str(device)}


def now_iso() -> str:
    """The current UTC time, ISO-8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def settings_key(settings: dict[str, Any]) -> str:
    """A stable 10-hex-digit key of a settings dict (same settings → same key)."""
    canon = json.dumps(json.loads(to_json(settings)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:10]


def make_record(
    kind: str,
    *,
    model: dict[str, Any] | None,
    dataset: dict[str, Any] | None,
    settings: dict[str, Any],
    payload: dict[str, Any],
    wall_s: float,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Assemble a record: the envelope plus `payload` keys at the top level."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    clash = set(payload) & set(ENVELOPE_KEYS)
    if clash:
        raise ValueError(f"payload keys clash with the envelope: {sorted(clash)}")
    rec: dict[str, Any] = {
        "kind": kind,
        "model": model,
        "dataset": dataset,
        "settings": settings,
        "env": env_info(device),
        "created": now_iso(),
        "wall_s": float(wall_s),
    }
    rec.update(payload)
    return rec


def record_path(run_dir: str | os.PathLike[str], kind: str, settings: dict[str, Any] | None = None) -> Path:
    """`RUN/results/KIND.json`, or `RUN/results/KIND-<settings_key>.json` when settings are given."""
    name = kind if settings is None else f"{kind}-{settings_key(settings)}"
    return Path(run_dir) / RESULTS_DIR / f"{name}.json"


def write_record(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write a record atomically (temporary name, then rename); returns its path."""
    return atomic_write_json(path, record)
