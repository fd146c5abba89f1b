"""The leaderboard's model-family column comes from the model registry, not from run names."""

from __future__ import annotations

from pathlib import Path

from robustbench_lip.records import make_record, write_record
from robustbench_lip.report import build_leaderboard
from robustbench_lip.report.columns import FAMILY, FIXED_COLUMNS


def _run(runs: Path, name: str, arch: str) -> None:
    settings = {"lam": 0.0, "reg_target": "A", "seed": 0, "epochs": 1, "model": arch, "data": "shapes"}
    payload = {"status": "finished", "history": [], "final": {"accuracy": 0.5}}
    rec = make_record("train", model={"arch": arch}, dataset={"name": "shapes"}, settings=settings,
                      payload=payload, wall_s=1.0)  # fmt: skip
    write_record(runs / name / "results" / "train.json", rec)


def test_family_column_from_the_registry(tmp_path: Path) -> None:
    # run names say the opposite of the architecture: the column must follow the architecture
    _run(tmp_path, "constrained-looking", "mresnet18_tiny")
    _run(tmp_path, "penalty-looking", "lipresnet18_tiny")
    _run(tmp_path, "foreign", "pt2")
    t = build_leaderboard(tmp_path).table.set_index("run")
    assert FAMILY in FIXED_COLUMNS
    assert t.at["constrained-looking", FAMILY] == "penalty"
    assert t.at["penalty-looking", FAMILY] == "constrained"
    assert t.at["foreign", FAMILY] is None or t.at["foreign", FAMILY] != t.at["foreign", FAMILY]  # empty
