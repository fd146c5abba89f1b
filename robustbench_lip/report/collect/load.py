"""Finding and loading the result records under a runs folder.

Every `RUN/results/*.json` is read (a run is any folder holding a `results/` folder, at any depth).
Files that are not valid records — invalid JSON, no `kind`, an unknown kind, missing payload keys —
are skipped with a logged warning and returned as SkippedFile; nothing here crashes on a foreign file.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lip.records import RESULTS_DIR
from robustbench_lip.report.collect.fields import record_created, record_kind, validate
from robustbench_lip.runs import require_runs_dir, run_dirs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedFile:
    """A file under a results/ folder that was not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadedRecord:
    """A valid record and where it came from."""

    path: Path
    run: str
    kind: str
    record: dict[str, Any]

    @property
    def created(self) -> _dt.datetime:
        return record_created(self.record)


def find_result_dirs(runs_dir: Path) -> list[Path]:
    """The `results/` folder of every run under runs_dir (`robustbench_lip.runs.run_dirs`), sorted."""
    return [d / RESULTS_DIR for d in run_dirs(runs_dir) if (d / RESULTS_DIR).is_dir()]


def _read(path: Path) -> tuple[Any, str | None]:
    """(parsed JSON, None) or (None, why it is not a usable record)."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable: {e}"
    except json.JSONDecodeError as e:
        return None, f"invalid JSON ({e.msg} at line {e.lineno})"
    return rec, validate(rec)


def load_records(runs_dir: str | os.PathLike[str]) -> tuple[list[LoadedRecord], list[SkippedFile]]:
    """Read every `results/*.json` under `runs_dir`.

    Returns (valid records sorted by run then file name, skipped files with reasons). Each skipped
    file is also logged as a warning. A missing `runs_dir` is an RlipError.
    """
    root = require_runs_dir(runs_dir)
    records: list[LoadedRecord] = []
    skipped: list[SkippedFile] = []
    for results in find_result_dirs(root):
        run_dir = results.parent
        run = run_dir.relative_to(root).as_posix() if run_dir != root else root.resolve().name
        for path in sorted(results.glob("*.json")):
            if path.name.startswith("."):
                continue
            rec, reason = _read(path)
            if reason is not None:
                logger.warning("skipping %s: %s", path, reason)
                skipped.append(SkippedFile(path, reason))
                continue
            records.append(LoadedRecord(path, run, record_kind(rec), rec))
    return records, skipped


def newest_first(recs: Sequence[LoadedRecord]) -> list[LoadedRecord]:
    """The records, newest first (`created`, then file name)."""
    return sorted(recs, key=lambda r: (r.created, r.path.name), reverse=True)
