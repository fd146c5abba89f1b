"""Seed aggregation: runs that differ only in their seed → mean ± sample std (numpy, ddof = 1) and n."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robustbench_lip.report import build_leaderboard, write_reports
from robustbench_lip.report.render import render_csv, render_html, render_markdown, to_json_obj
from tests.helpers.records import ARCH, LAMS, SEEDS, VALUES
from tests.helpers.records import seed_run as _run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 seeds × 2 λ of one spec, plus one run whose lr differs (its own group, one seed)."""
    root = tmp_path_factory.mktemp("seeds") / "runs"
    for lam in LAMS:
        for s in SEEDS:
            _run(root, lam, s)
    _run(root, 0.0, 0, lr=0.1, spec="other")
    return root


def _truth(lam: float, k: int, seeds: tuple[int, ...] = SEEDS) -> tuple[float, float]:
    v = np.array([VALUES[(lam, s)][k] for s in seeds])
    return float(np.mean(v)), float(np.std(v, ddof=1))


def _group(t: pd.DataFrame, lam: float) -> pd.Series:
    sel = t[(t["λ"] == lam) & (t["n seeds"] == 3)]
    assert len(sel) == 1
    return sel.iloc[0]


def test_mean_std_n_match_numpy(runs: Path) -> None:
    lb = build_leaderboard(runs)
    assert len(lb.table) == 7  # per-run rows untouched
    agg = lb.aggregated
    assert len(agg) == 3 and sorted(agg["n seeds"].tolist()) == [1, 3, 3]
    for lam in LAMS:
        g = _group(agg, lam)
        assert g["run"] == f"sp-{ARCH}-lam{lam:g}-s*" and g["seed"] == "0,1,2"
        for col, k in (("acc", 0), ("L(A) upper", 1)):
            mean, std = _truth(lam, k)
            assert g[col] == pytest.approx(mean, rel=1e-12)
            assert g[f"{col} std"] == pytest.approx(std, rel=1e-12)
        # L(A) lower = upper / 4 for every seed: mean and std scale with it
        assert g["L(A) lower std"] == pytest.approx(_truth(lam, 1)[1] / 4, rel=1e-12)
    # λ = 1e-2: seed 2 has no attack record → mean / std over seeds 0, 1 and n = 2
    g = _group(agg, 1e-2)
    mean, std = _truth(1e-2, 2, (0, 1))
    assert g["pgd_linf@8/255 [custom, n=64] acc"] == pytest.approx(mean)
    assert g["pgd_linf@8/255 [custom, n=64] acc std"] == pytest.approx(std)
    assert (
        g["pgd_linf@8/255 [custom, n=64] acc n"] == 2
        and _group(agg, 0.0)["pgd_linf@8/255 [custom, n=64] acc n"] == 3
    )
    assert "acc n" not in agg.columns  # every seed has a clean accuracy: n says nothing more than n seeds
    # a single-run group: its value, std empty (not 0)
    single = agg[agg["n seeds"] == 1].iloc[0]
    assert single["run"] == f"other-{ARCH}-lam0-s0" and single["seed"] == "0"
    assert single["acc"] == VALUES[(0.0, 0)][0] and pd.isna(single["acc std"])


def test_machine_readable_and_display_formats(runs: Path, tmp_path: Path) -> None:
    lb = build_leaderboard(runs)
    mean, std = _truth(0.0, 0)
    rows = list(csv.DictReader(io.StringIO(render_csv(lb))))
    row = next(r for r in rows if r["n seeds"] == "3" and r["λ"] == "0.0")
    assert float(row["acc"]) == pytest.approx(mean) and float(row["acc std"]) == pytest.approx(std)
    assert next(r for r in rows if r["n seeds"] == "1")["acc std"] == ""  # n = 1: empty, not 0
    assert len(list(csv.DictReader(io.StringIO(render_csv(lb, runs=True))))) == 7
    obj = json.loads(json.dumps(to_json_obj(lb)))
    j = next(r for r in obj["rows"] if r["n seeds"] == 3 and r["λ"] == 0.0)
    assert j["acc"] == pytest.approx(mean) and j["acc std"] == pytest.approx(std)
    assert next(r for r in obj["rows"] if r["n seeds"] == 1)["acc std"] is None
    assert obj["column_docs"]["acc std"].startswith("Sample std")
    # Markdown / HTML: one cell `mean ± std`, `(n=k)` where only some seeds have the value
    md = render_markdown(lb)
    assert f"{mean:.4g} ±\u00a0{std:.2g}" in md and "(n=2)" in md and "| acc std |" not in md
    page = render_html(lb)
    assert f"{mean:.4g} ±\u00a0{std:.2g}" in page and "Per-run rows" in page
    written = write_reports(lb, tmp_path / "rep", "csv,json", plots=False)
    per_run = json.loads(written["runs.json"].read_text())["rows"]
    assert sorted((r["λ"], r["seed"]) for r in per_run if r["run"].startswith("sp-")) == sorted(
        (lam, s) for lam in LAMS for s in SEEDS
    )


def test_one_seed_per_group_keeps_the_per_run_numbers(runs: Path, tmp_path: Path) -> None:
    root = tmp_path / "one"
    for lam in LAMS:
        _run(root, lam, 0)
    lb = build_leaderboard(root)
    agg, per_run = lb.aggregated, lb.table
    assert [c for c in agg.columns if c != "n seeds"] == list(per_run.columns)
    assert not [c for c in agg.columns if c.endswith((" std", " n"))]
    numeric = [c for c in per_run.columns if pd.api.types.is_float_dtype(per_run[c])]
    pd.testing.assert_frame_equal(agg[numeric], per_run[numeric])
    assert agg["run"].tolist() == per_run["run"].tolist()
