"""Record files in today's format (v0, copied from a `make demo` run) load and render to every format.

The fixture `tests/fixtures/records_v0/<run>/` holds each run's `config.json` and its `results/`
records (train, certify, attack) exactly as the CLI wrote them. The table is checked against the
raw JSON of those files (read here with `json`, not through the report code).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.report import build_leaderboard, load_records, write_reports
from tests.helpers.paths import FIXTURES

FIXTURE = FIXTURES / "records_v0"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _runs() -> list[str]:
    return sorted(p.name for p in FIXTURE.iterdir() if (p / "results").is_dir())


def _raw(run: str, kind: str) -> list[dict[str, Any]]:
    """The run's records of one kind, newest first, straight from the files."""
    recs = [json.loads(p.read_text()) for p in sorted((FIXTURE / run / "results").glob(f"{kind}*.json"))]
    return sorted(recs, key=lambda r: r["created"], reverse=True)


@pytest.fixture(scope="module")
def lb() -> Any:
    return build_leaderboard(FIXTURE)


def test_fixture_is_complete() -> None:
    runs = _runs()
    assert len(runs) >= 2
    for run in runs:
        assert (FIXTURE / run / "config.json").is_file()
        assert _raw(run, "train") and _raw(run, "certify") and _raw(run, "attack"), run


def test_v0_records_load_without_skips() -> None:
    records, skipped = load_records(FIXTURE)
    assert skipped == []
    assert {r.run for r in records} == set(_runs())
    assert {r.kind for r in records} == {"train", "certify", "attack"}


def _close(a: Any, b: Any) -> bool:
    if b is None:
        return pd.isna(a)
    return not pd.isna(a) and math.isclose(float(a), float(b), rel_tol=0, abs_tol=0)


def test_v0_table_matches_the_record_files(lb: Any) -> None:
    t = lb.table.set_index("run")
    assert sorted(t.index) == _runs()
    for run in _runs():
        row = t.loc[run]
        train, cert = _raw(run, "train")[0], _raw(run, "certify")[0]
        assert row["λ"] == train["settings"]["lam"] and row["status"] == train["status"]
        assert row["arch"] == train["settings"]["model"] and row["dataset"] == train["settings"]["data"]
        for col, key in (("acc", "accuracy"), ("precision", "precision"), ("mIoU", "miou")):
            assert _close(row[col], train["final"].get(key)), (run, col)
        assert _close(row["L(A) upper"], cert["lipschitz"]["A"]["upper"])
        assert _close(row["L(A) lower"], cert["lipschitz"]["A"]["lower"])
        assert row["L(A) upper"] >= row["L(A) lower"]  # certified bound above the measured one
        _check_attacks(run, row)


def _check_attacks(run: str, row: pd.Series) -> None:
    """Each attack column holds the newest record's value; worst ≤ every attack at that norm and ε."""
    newest: dict[str, float] = {}
    accs: dict[tuple[str, str, str], list[float]] = {}
    sets = {rec["n"] for rec in _raw(run, "attack")}
    assert len(sets) == 1, run  # one sample set: the worst case is over every record
    (n,) = sets
    for rec in reversed(_raw(run, "attack")):  # oldest first: newer records overwrite
        default = {"classifier": "cls", "segmenter": "pixel"}[rec["task"]]
        metric = "pixel acc" if rec["levels"]["accuracy"] == "pixel" else "acc"
        for res in rec["results"]:
            if res["accuracy"] is None:
                continue
            eps = format_eps(float(res["eps"]))
            accs.setdefault((res["norm"], eps, metric), []).append(res["accuracy"])
            label = res["attack"] if rec["objective"] == default else f"{res['attack']}({rec['objective']})"
            if res["attack"] != "worst":
                newest[f"{label}_{res['norm']}@{eps} [custom, n={rec['n']}] {metric}"] = res["accuracy"]
    assert newest, run
    for col, v in newest.items():
        assert _close(row[col], v), (run, col)
    for (norm, eps, metric), values in accs.items():
        worst = row[f"worst_{norm}@{eps} [every attack, n={n}] {metric}"]
        assert worst <= min(values), (run, norm, eps, metric)


def test_v0_renders_to_every_format(lb: Any, tmp_path: Path) -> None:
    written = write_reports(lb, tmp_path)
    assert {"md", "csv", "json", "html"} <= set(written)
    pngs = [p for name, p in written.items() if name.endswith(".png")]
    assert pngs and all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)
    obj = json.loads((tmp_path / "leaderboard.json").read_text())
    assert [r["run"] for r in obj["rows"]] == lb.table["run"].tolist() and obj["skipped"] == []
    rows = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard.csv").read_text())))
    assert [r["run"] for r in rows] == lb.table["run"].tolist()
    # leaderboard.csv is the seed-aggregated table (one seed per run here: the run columns + `n seeds`);
    # the per-run table is leaderboard_runs.csv
    assert list(rows[0]) == list(lb.aggregated.columns) == _with_n_seeds(list(lb.columns))
    per_run = list(csv.DictReader(io.StringIO((tmp_path / "leaderboard_runs.csv").read_text())))
    assert list(per_run[0]) == lb.columns
    md = (tmp_path / "leaderboard.md").read_text()
    assert all(f"| {run} |" in md for run in _runs())
    page = (tmp_path / "leaderboard.html").read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert page.count("data:image/png;base64,") == len(pngs)
    assert all(f">{run}</td>" in page for run in _runs()) and "sortable" in page


def _with_n_seeds(columns: list[str]) -> list[str]:
    """The per-run columns with `n seeds` right after `seed` (one seed per row)."""
    at = columns.index("seed") + 1
    return [*columns[:at], "n seeds", *columns[at:]]
