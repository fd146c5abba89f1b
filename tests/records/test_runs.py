"""runs.run_dirs: the one rule for finding runs, used by zoo status, certify, attack and the report."""

from __future__ import annotations

import json
from pathlib import Path

from robustbench_lip.records import RESULTS_DIR
from robustbench_lip.report.collect.load import find_result_dirs
from robustbench_lip.runs import finished_runs, run_dirs


def _run(path: Path, *, finished: bool = True, config: bool = True) -> Path:
    (path / RESULTS_DIR).mkdir(parents=True)
    if config:
        (path / "config.json").write_text("{}")
        (path / "model.safetensors").write_bytes(b"")
    status = "finished" if finished else "running"
    (path / RESULTS_DIR / "train.json").write_text(json.dumps({"kind": "train", "status": status}))
    return path


def test_run_dirs_any_depth_sorted(tmp_path: Path) -> None:
    a = _run(tmp_path / "shapes" / "b_run")
    b = _run(tmp_path / "shapes" / "a_run")
    c = _run(tmp_path / "top_run", finished=False)
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    _run(tmp_path / ".hidden" / "run")
    # a run's own subfolders are not searched for runs
    _run(tmp_path / "top_run" / "nested")
    assert run_dirs(tmp_path) == [b, a, c]
    assert finished_runs(tmp_path) == [b, a]


def test_runs_dir_itself_and_missing(tmp_path: Path) -> None:
    run = _run(tmp_path / "r")
    assert run_dirs(run) == [run]
    assert run_dirs(tmp_path / "nope") == []


def test_symlinked_folders_not_followed(tmp_path: Path) -> None:
    real = _run(tmp_path / "elsewhere" / "r")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "link").symlink_to(real.parent, target_is_directory=True)
    assert run_dirs(runs) == []


def test_report_finds_the_same_runs(tmp_path: Path) -> None:
    _run(tmp_path / "d" / "r1")
    _run(tmp_path / "r2")
    (tmp_path / "cfg_only").mkdir()
    (tmp_path / "cfg_only" / "config.json").write_text("{}")
    with_results = [d / RESULTS_DIR for d in run_dirs(tmp_path) if (d / RESULTS_DIR).is_dir()]
    assert find_result_dirs(tmp_path) == with_results
    assert [p.parent.name for p in find_result_dirs(tmp_path)] == ["r1", "r2"]
