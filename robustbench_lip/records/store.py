"""Where records live and how they are written and read.

Each run folder holds its records in `RUN/results/`: `train.json` (one per run), and one
`KIND-<settings key>.json` per evaluation (certify, attack, eval), the key being a hash of the
record's `settings`. Files are written atomically (temporary name, then rename).

The "already recorded" rule, used by every command that skips work: an evaluation of a run is
recorded when the run has a record of that kind whose settings have the same settings key —
the file `KIND-<key>.json` or, if it was renamed, any readable `KIND*.json` whose `settings`
hash to the key. Different settings (another ε, target, n, seed, ...) are a new evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_write_json, to_json
from robustbench_lip.records.schema import Record, record_from_dict

log = logging.getLogger(__name__)

RESULTS_DIR = "results"


def settings_key(settings: dict[str, Any]) -> str:
    """A stable 10-hex-digit key of a settings dict (same settings → same key; key order free)."""
    canon = json.dumps(json.loads(to_json(settings)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:10]


def record_path(run_dir: str | os.PathLike[str], kind: str, settings: dict[str, Any] | None = None) -> Path:
    """`RUN/results/KIND.json`, or `RUN/results/KIND-<settings_key>.json` when settings are given."""
    name = kind if settings is None else f"{kind}-{settings_key(settings)}"
    return Path(run_dir) / RESULTS_DIR / f"{name}.json"


def write_record(path: str | os.PathLike[str], record: dict[str, Any] | Record) -> Path:
    """Write a record (a dict or a typed Record) atomically; returns its path."""
    data = record.to_dict() if isinstance(record, Record) else record
    return atomic_write_json(path, data)


def read_record_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object of a record file; RlipError when unreadable or not an object."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise RlipError(f"cannot read record {p}: {e.strerror or e}") from None
    except ValueError as e:
        raise RlipError(f"record {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise RlipError(f"record {p} is not a JSON object")
    return data


def read_record(path: str | os.PathLike[str]) -> Record:
    """The typed record stored at `path` (any kind, any schema version up to the current one)."""
    return record_from_dict(read_record_dict(path))


def is_recorded(run_dir: str | os.PathLike[str], kind: str, settings: dict[str, Any]) -> bool:
    """Whether `run_dir` already has a `kind` record with these settings (the module's rule)."""
    if record_path(run_dir, kind, settings).is_file():
        return True
    key = settings_key(settings)
    for p in sorted((Path(run_dir) / RESULTS_DIR).glob(f"{kind}*.json")):
        try:
            rec = read_record_dict(p)
        except RlipError as e:
            log.warning("skipping %s: %s", p, e)
            continue
        s = rec.get("settings")
        if rec.get("kind") == kind and isinstance(s, dict) and settings_key(s) == key:
            return True
    return False
