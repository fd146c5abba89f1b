"""A leaderboard metric added from outside the package, in this one file, through the registry.

The toy metric: the mean local Jacobian norm the lower-bound search saw (`lipschitz.A.lower_mean` of a
certify record; an estimate, ≤ the witnessed lower bound's maximum). It must appear in the table, the
written CSV / JSON / Markdown (with its doc) and `rlip leaderboard`'s files, hold exactly the record's
value, and stay empty (never 0) for a run without it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.errors import RlipError
from robustbench_lip.records.payloads import CertifyPayload, Payload
from robustbench_lip.report import build_leaderboard, column_doc, legend
from robustbench_lip.report.metrics import LEADERBOARD_METRICS, LeaderboardMetric, register_metric
from robustbench_lip.report.render.headers import column_group
from tests.helpers.paths import FIXTURES

NAME = "L(A) lower mean"
DOC = "Mean local Jacobian norm of A over the lower-bound search's points (estimate; toy metric)."


def _lower_mean(p: Payload) -> Any:
    assert isinstance(p, CertifyPayload)
    bound = p.lipschitz.A if p.lipschitz is not None else None
    return bound.lower_mean if bound is not None else None


TOY = LeaderboardMetric(NAME, DOC, "certify", _lower_mean, group="Lipschitz estimates")


@pytest.fixture
def toy() -> Iterator[LeaderboardMetric]:
    register_metric(TOY)
    yield TOY
    LEADERBOARD_METRICS.unregister(NAME)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Today's records (one run with a Lipschitz and a smoothed certificate) and the v0 records."""
    root = tmp_path / "runs"
    for fixture in ("records_v1", "records_v0"):
        shutil.copytree(FIXTURES / fixture, root, dirs_exist_ok=True)
    return root


def _expected(runs: Path) -> dict[str, float | None]:
    """Each run's value straight from its Lipschitz certify record's JSON (one per run here)."""
    out: dict[str, float | None] = {}
    for p in runs.glob("*/results/certify*.json"):
        rec = json.loads(p.read_text())
        if rec.get("certificate", "lipschitz") == "lipschitz":
            out[p.parent.parent.name] = rec["lipschitz"]["A"].get("lower_mean")
    return out


def _check(got: dict[str, Any], expected: dict[str, float | None]) -> None:
    """Cell by cell: the record's number exactly, an empty cell (NaN or "") where it has none."""
    assert set(got) == set(expected)
    for run, v in expected.items():
        cell = got[run]
        if v is None:
            assert cell == "" or pd.isna(cell), run
        else:
            assert float(cell) == pytest.approx(v, rel=1e-15), run


def test_registered_metric_is_a_leaderboard_column_with_its_doc(toy: LeaderboardMetric, runs: Path) -> None:
    expected = _expected(runs)
    assert len(expected) == 3 and sum(v is not None and v > 0 for v in expected.values()) == 2
    lb = build_leaderboard(runs)
    assert NAME in lb.table.columns and NAME in lb.aggregated.columns
    _check(dict(zip(lb.table["run"], lb.table[NAME], strict=True)), expected)
    assert column_doc(NAME) == DOC and legend(lb.columns)[NAME] == DOC
    assert column_group(NAME) == ("Lipschitz estimates", NAME)


def test_registered_metric_reaches_the_cli_reports(
    toy: LeaderboardMetric, runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["leaderboard", "-r", str(runs), "-o", str(out), "--no-plots"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    _check({r["run"]: r[NAME] for r in rows}, _expected(runs))
    obj = json.loads((out / "leaderboard.json").read_text())
    assert obj["column_docs"][NAME] == DOC
    assert f"`{NAME}`: {DOC}" in (out / "leaderboard.md").read_text()


def test_registered_metric_is_named_in_the_cli_help(toy: LeaderboardMetric) -> None:
    wide = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}
    text = " ".join(CliRunner().invoke(app, ["leaderboard", "--help"], env=wide).stdout.split())
    assert f"Registered metrics: {NAME}." in text


def test_without_registration_the_help_names_no_metric() -> None:
    text = CliRunner().invoke(app, ["leaderboard", "--help"], env={"COLUMNS": "400"}).stdout
    assert "Registered metrics" not in text


def test_a_run_without_the_value_gets_an_empty_cell(toy: LeaderboardMetric, runs: Path) -> None:
    for p in runs.glob("tiny-shapes*/results/certify*.json"):
        rec = json.loads(p.read_text())
        del rec["lipschitz"]["A"]["lower_mean"]
        p.write_text(json.dumps(rec))
    t = build_leaderboard(runs).table
    _check(dict(zip(t["run"], t[NAME], strict=True)), _expected(runs))
    assert t[NAME].isna().sum() == 2  # the lesions run's null and the shapes run's missing key


def test_without_registration_there_is_no_such_column(runs: Path) -> None:
    assert NAME not in LEADERBOARD_METRICS
    assert NAME not in build_leaderboard(runs).table.columns and column_doc(NAME) == ""


def test_registering_a_name_twice_is_an_error_unless_replacing(toy: LeaderboardMetric) -> None:
    with pytest.raises(RlipError, match="already registered"):
        register_metric(TOY)
    other = LeaderboardMetric(NAME, "replaced", "certify", _lower_mean)
    assert register_metric(other, replace=True) is other and column_doc(NAME) == "replaced"
    assert LEADERBOARD_METRICS.names().count(NAME) == 1


@pytest.mark.parametrize(
    ("name", "kind", "match"),
    [("L(A) upper", "certify", "shadow"), ("cert acc@36/255", "certify", "shadow"), ("x", "bogus", "kind")],
)
def test_a_metric_may_not_shadow_a_built_in_column(name: str, kind: str, match: str) -> None:
    with pytest.raises(RlipError, match=match):
        register_metric(LeaderboardMetric(name, "d", kind, _lower_mean))
    assert name not in LEADERBOARD_METRICS
