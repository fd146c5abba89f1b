"""Finding and loading the result records under a runs folder.

Every `RUN/results/*.json` is read (a run is any folder holding a `results/` folder, at any depth)
into its typed record and payload (records.schema, records.payloads). Files that are not valid
records — invalid JSON, no `kind`, an unknown kind, a payload of the wrong structure — are skipped
with a logged warning and returned as SkippedFile; nothing here crashes on a foreign file.
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

from robustbench_lip.errors import RlipError
from robustbench_lip.records import RESULTS_DIR, Record, record_from_dict
from robustbench_lip.records.payloads import Payload
from robustbench_lip.report.collect.fields import created_time, get
from robustbench_lip.runs import require_runs_dir, run_dirs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedFile:
    """A file under a results/ folder that was not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadedRecord:
    """A valid record (typed envelope and payload) and where it came from."""

    path: Path
    run: str
    record: Record
    payload: Payload
    wall_s: Any = None  # as stored (None when missing; the typed record reads a missing one as 0)

    @property
    def kind(self) -> str:
        """train | certify | attack | eval."""
        return self.record.kind.value

    @property
    def created(self) -> _dt.datetime:
        return created_time(self.record.created)

    @property
    def arch(self) -> Any:
        """The envelope's model architecture (`model.arch`), unchecked."""
        return get(self.record.model, "arch")

    @property
    def dataset(self) -> Any:
        """The envelope's dataset name (`dataset.name`), unchecked."""
        return get(self.record.dataset, "name")

    @property
    def other_data(self) -> bool:
        """Whether an evaluation was measured on data other than its run's own (`settings.other_data`,
        written by `--other-data`; evaluations.data_check)."""
        return get(self.record.settings, "other_data") is True


def find_result_dirs(runs_dir: Path) -> list[Path]:
    """The `results/` folder of every run under runs_dir (`robustbench_lip.runs.run_dirs`), sorted."""
    return [d / RESULTS_DIR for d in run_dirs(runs_dir) if (d / RESULTS_DIR).is_dir()]


def read_loaded(path: Path, run: str) -> LoadedRecord | SkippedFile:
    """The record at `path` of run `run`, or why it is not a usable record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        return SkippedFile(path, f"unreadable: {e}")
    except json.JSONDecodeError as e:
        return SkippedFile(path, f"invalid JSON ({e.msg} at line {e.lineno})")
    try:
        record = record_from_dict(data)
        return LoadedRecord(path, run, record, record.typed(), data.get("wall_s"))
    except RlipError as e:
        return SkippedFile(path, str(e))


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
            got = read_loaded(path, run)
            if isinstance(got, SkippedFile):
                logger.warning("skipping %s: %s", path, got.reason)
                skipped.append(got)
            else:
                records.append(got)
    return records, skipped


def newest_first(recs: Sequence[LoadedRecord]) -> list[LoadedRecord]:
    """The records, newest first (`created`, then file name)."""
    return sorted(recs, key=lambda r: (r.created, r.path.name), reverse=True)
