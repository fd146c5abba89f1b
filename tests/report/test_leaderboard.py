"""The leaderboard: hand-written records → table, sorting, empty cells, slopes, reports and plots."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from robustbench_lip.errors import RlipError
from robustbench_lip.report import (
    COLUMN_DOCS,
    FIXED_COLUMNS,
    LAM,
    build_leaderboard,
    column_doc,
    fit_loglog,
    key_columns,
    legend,
    load_records,
    make_plots,
    parse_formats,
    sort_table,
    write_reports,
)
from robustbench_lip.report.render import render_csv, render_html, render_markdown, to_json_obj
from tests.helpers.records import write_result as _write

C_UP, K_UP = 2.0, -0.5  # L(A) upper = C_UP · λ^K_UP
C_LO, K_LO = 0.5, -0.25  # L(A) lower = C_LO · λ^K_LO
SHAPES_LAMS = (0.0, 1e-4, 1e-3, 1e-2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _train(
    run_dir: Path,
    *,
    arch: str,
    data: str,
    lam: float,
    target: str,
    seed: int,
    final: dict[str, Any],
    wall_s: float,
) -> None:
    settings = {"lam": lam, "reg_target": target, "seed": seed, "epochs": 3, "model": arch, "data": data}
    payload = {"status": "finished", "history": [], "final": final}
    _write(
        run_dir,
        "train",
        "train",
        arch=arch,
        data=data,
        settings=settings,
        payload=payload,
        created="2026-11-24T01:00:00+00:00",
        wall_s=wall_s,
    )


def _certify(
    run_dir: Path,
    name: str,
    *,
    arch: str,
    data: str,
    up: float | None,
    lo: float | None,
    created: str,
    r: dict[str, Any] | None = None,
    fne: bool | None = None,
    cert_acc: dict[str, float] | None = None,
    cert_miou: dict[str, float] | None = None,
) -> None:
    payload = {
        "lipschitz": {"A": {"upper": up, "lower": lo, "lower_mean": lo, "converged": True}, "R": r},
        "fne": {"violated": fne} if fne is None else {"violated": fne, "verdict": "violated" if fne else "x"},
        "certified_accuracy": cert_acc,
        "certified_miou": cert_miou,
        "unsupported_ops": [],
        "clean": {"accuracy": 0.111, "precision": 0.222, "miou": None},
    }
    _write(
        run_dir, name, "certify", arch=arch, data=data, settings={"n": 8}, payload=payload, created=created
    )


def _attack(
    run_dir: Path,
    name: str,
    *,
    arch: str,
    data: str,
    results: list[dict[str, Any]],
    created: str,
    clean: dict[str, Any] | None = None,
    task: str = "classifier",
    objective: str | None = None,
) -> None:
    """An attack record shaped like attacks.evaluate's payload (task, objective, levels)."""
    level = "image" if task == "classifier" else "pixel"
    payload = {
        "clean": clean or {"accuracy": 0.9, "precision": 0.8, "miou": None},
        "results": results,
        "task": task,
        "objective": objective or ("cls" if task == "classifier" else "pixel"),
        "levels": {"accuracy": level, "precision": level, "miou": "pixel"},
        "n": 64,
    }
    _write(
        run_dir,
        name,
        "attack",
        arch=arch,
        data=data,
        settings={"name": name},
        payload=payload,
        created=created,
    )


def _res(
    attack: str,
    eps: float,
    acc: float,
    prec: float,
    miou: float | None = None,
    norm: str = "linf",
    steps: int = 10,
) -> dict[str, Any]:
    return {
        "attack": attack,
        "norm": norm,
        "eps": eps,
        "steps": steps,
        "accuracy": acc,
        "precision": prec,
        "miou": miou,
    }


def _shapes_lam_name(lam: float) -> str:
    return f"shapes/mr-lam{lam:g}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder: 4 mResNet runs on shapes (λ = 0, 1e-4, 1e-3, 1e-2; L = c·λ^k), one U-Net run on
    lesions, one run with only an attack record, plus broken / foreign files and a record-less folder."""
    root = tmp_path_factory.mktemp("lb") / "runs"
    arch = "mresnet18_tiny"
    for i, lam in enumerate(SHAPES_LAMS):
        rd = root / _shapes_lam_name(lam)
        _train(
            rd,
            arch=arch,
            data="shapes",
            lam=lam,
            target="A",
            seed=0,
            final={"accuracy": 0.9 - 0.1 * i, "precision": 0.85 - 0.1 * i, "miou": None},
            wall_s=10.0 + i,
        )
        up = 1000.0 if lam == 0 else C_UP * lam**K_UP
        lo = 50.0 if lam == 0 else C_LO * lam**K_LO
        _certify(
            rd,
            "certify-aaa",
            arch=arch,
            data="shapes",
            up=up,
            lo=lo,
            created="2026-11-24T02:00:00+00:00",
            cert_acc={"0": 0.9 - 0.1 * i, "0.5": 0.1 * i},
        )
        if lam == 1e-2:
            continue  # this run has no attack record
        _attack(
            rd,
            "attack-old",
            arch=arch,
            data="shapes",
            created="2026-11-24T03:00:00+00:00",
            results=[_res("pgd", 8 / 255, 0.30 + 0.01 * i, 0.25), _res("fgsm", 8 / 255, 0.40, 0.35, steps=1)],
        )
    # λ = 1e-3: a newer attack record re-runs pgd@8/255 (newest wins) and adds pgd@2/255 and a "worst" entry
    rd = root / _shapes_lam_name(1e-3)
    _attack(
        rd,
        "attack-new",
        arch=arch,
        data="shapes",
        created="2026-11-24T04:00:00+00:00",
        results=[
            _res("pgd", 8 / 255, 0.20, 0.15),
            _res("pgd", 2 / 255, 0.60, 0.55),
            _res("worst", 8 / 255, 0.10, 0.12),
        ],
    )
    # broken and foreign files in the λ = 1e-4 run
    bad = root / _shapes_lam_name(1e-4) / "results"
    (bad / "attack-partial.json").write_text('{"kind": "attack", "results": [')
    (bad / "notes.json").write_text(json.dumps({"hello": 1}))
    (bad / "other.json").write_text(json.dumps({"kind": "benchmark", "x": 1}))
    (bad / "certify-nolip.json").write_text(json.dumps({"kind": "certify", "fne": {}}))
    # a U-Net segmenter on lesions, penalty on R, with mIoU, an R bound and an FNE verdict
    ud = root / "lesions/unet"
    _train(
        ud,
        arch="unet_tiny",
        data="lesions",
        lam=1e-3,
        target="R",
        seed=1,
        final={"accuracy": 0.7, "precision": 0.65, "miou": 0.55},
        wall_s=20.0,
    )
    _certify(
        ud,
        "certify-bbb",
        arch="unet_tiny",
        data="lesions",
        up=40.0,
        lo=4.0,
        fne=True,
        r={"upper": 81.0, "upper_kind": "trivial", "lower": 1.5},
        cert_miou={"0.1": 0.3},
        created="2026-11-24T02:00:00+00:00",
    )
    _attack(
        ud,
        "attack-ccc",
        arch="unet_tiny",
        data="lesions",
        created="2026-11-24T03:00:00+00:00",
        results=[_res("segpgd", 4 / 255, 0.5, 0.45, 0.35), _res("cospgd", 4 / 255, 0.6, 0.40, 0.30)],
        clean={"accuracy": 0.95, "precision": 0.9, "miou": 0.55},  # pixel-level
        task="segmenter",
    )
    # λ = 0: a later record attacks the classifier's CAM mask pixels (objective "pixel"): its own column
    _attack(
        root / _shapes_lam_name(0.0),
        "attack-pix",
        arch=arch,
        data="shapes",
        created="2026-11-24T05:00:00+00:00",
        results=[_res("pgd", 8 / 255, 0.25, 0.2)],
        objective="pixel",
    )
    # a run with no train record: clean metrics fall back to the attack record's
    od = root / "orphan"
    _attack(
        od,
        "attack-ddd",
        arch="mresnet18_tiny",
        data="shapes",
        created="2026-11-24T03:00:00+00:00",
        results=[_res("pgd", 8 / 255, 0.05, 0.04)],
        clean={"accuracy": 0.42, "precision": 0.41, "miou": None},
    )
    # a folder with a model but no results: not a row
    (root / "empty").mkdir()
    (root / "empty" / "config.json").write_text("{}")
    return root


def _row(lb_table: pd.DataFrame, run: str) -> pd.Series:
    sel = lb_table[lb_table["run"] == run]
    assert len(sel) == 1, run
    return sel.iloc[0]


def test_load_skips_broken_and_foreign_files_with_warnings(
    runs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="robustbench_lip.report"):
        records, skipped = load_records(runs)
    reasons = {s.path.name: s.reason for s in skipped}
    assert set(reasons) == {"attack-partial.json", "notes.json", "other.json", "certify-nolip.json"}
    assert "invalid JSON" in reasons["attack-partial.json"]
    assert "no 'kind'" in reasons["notes.json"]
    assert "unknown kind" in reasons["other.json"]
    assert "lipschitz" in reasons["certify-nolip.json"]
    assert sum("skipping" in r.message for r in caplog.records) == 4
    assert {r.run for r in records} == {_shapes_lam_name(lam) for lam in SHAPES_LAMS} | {
        "lesions/unet",
        "orphan",
    }


def test_missing_runs_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RlipError, match="not found"):
        build_leaderboard(tmp_path / "nope")


def test_table_values(runs: Path) -> None:
    t = build_leaderboard(runs).table
    assert len(t) == 6
    assert list(t.columns[: len(FIXED_COLUMNS)]) == list(FIXED_COLUMNS)
    r = _row(t, _shapes_lam_name(1e-3))
    assert (r["arch"], r["dataset"], r[LAM], r["target"], r["seed"], r["epochs"], r["status"]) == (
        "mresnet18_tiny",
        "shapes",
        1e-3,
        "A",
        0,
        3,
        "finished",
    )
    assert r["acc"] == pytest.approx(0.7) and r["precision"] == pytest.approx(0.65)  # train final wins
    assert math.isnan(r["mIoU"])
    assert r["L(A) upper"] == pytest.approx(C_UP * 1e-3**K_UP)
    assert r["L(A) lower"] == pytest.approx(C_LO * 1e-3**K_LO)
    assert r["L(A) gap"] == pytest.approx(r["L(A) upper"] / r["L(A) lower"])
    assert r["train s"] == pytest.approx(12.0)
    assert r["cert acc@0"] == pytest.approx(0.7) and r["cert acc@0.5"] == pytest.approx(0.2)
    # newest record wins for pgd@8/255; the older fgsm is kept (union); worst = min incl. the "worst" entry
    assert r["pgd_linf@8/255 [custom, n=64] acc"] == pytest.approx(0.20)
    assert r["pgd_linf@2/255 [custom, n=64] acc"] == pytest.approx(0.60)
    assert r["fgsm_linf@8/255 [custom, n=64] acc"] == pytest.approx(0.40)
    assert r["worst_linf@8/255 [every attack, n=64] acc"] == pytest.approx(0.10)
    assert r["worst_linf@8/255 [every attack, n=64] prec"] == pytest.approx(0.12)
    # worst without a "worst" entry = min over attacks
    r0 = _row(t, _shapes_lam_name(0.0))
    # not overwritten by the other objective
    assert r0["pgd_linf@8/255 [custom, n=64] acc"] == pytest.approx(0.30)
    assert r0["pgd(pixel)_linf@8/255 [custom, n=64] acc"] == pytest.approx(0.25)
    assert r0["worst_linf@8/255 [every attack, n=64] acc"] == pytest.approx(min(0.30, 0.40, 0.25))
    assert r0[LAM] == 0.0 and r0["L(A) upper"] == 1000.0
    # the segmenter: R bound, FNE verdict, mIoU columns, certified mIoU
    u = _row(t, "lesions/unet")
    assert (u["target"], u["FNE"], u["L(R) lower"], u["L(R) upper"]) == ("R", "violated", 1.5, 81.0)
    assert u["mIoU"] == pytest.approx(0.55) and u["cert mIoU@0.1"] == pytest.approx(0.3)
    assert u["worst_linf@4/255 [every attack, n=64] mIoU"] == pytest.approx(0.30)
    assert u["segpgd_linf@4/255 [custom, n=64] mIoU"] == pytest.approx(0.35)
    # a segmenter's attacked accuracy is pixel-level: its own columns, never mixed with image accuracy
    assert u["segpgd_linf@4/255 [custom, n=64] pixel acc"] == pytest.approx(0.5)
    assert u["worst_linf@4/255 [every attack, n=64] pixel acc"] == pytest.approx(0.5)
    assert (
        "segpgd_linf@4/255 [custom, n=64] acc" not in t.columns
        and "worst_linf@4/255 [every attack, n=64] acc" not in t.columns
    )
    assert u["acc"] == pytest.approx(0.7)  # image-level, from the train record
    # no train record: identity from the envelope, clean metrics from the attack record
    o = _row(t, "orphan")
    assert (o["arch"], o["dataset"], o["acc"], o["status"]) == ("mresnet18_tiny", "shapes", 0.42, None)
    assert pd.isna(o[LAM]) and pd.isna(o["seed"]) and pd.isna(o["train s"]) and pd.isna(o["L(A) upper"])


def test_pixel_level_clean_metrics_do_not_fill_image_columns(tmp_path: Path) -> None:
    rd = tmp_path / "runs" / "seg"
    _attack(
        rd,
        "attack-s",
        arch="unet_tiny",
        data="lesions",
        created="2026-11-24T03:00:00+00:00",
        results=[_res("segpgd", 2 / 255, 0.8, 0.7, 0.6)],
        clean={"accuracy": 0.97, "precision": 0.9, "miou": 0.7},
        task="segmenter",
    )
    r = build_leaderboard(tmp_path / "runs").table.iloc[0]
    assert pd.isna(r["acc"]) and pd.isna(r["precision"]) and r["mIoU"] == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("fne", "shown"),
    [
        ({"violated": True, "verdict": "violated", "min_value": -0.2}, "violated"),
        ({"violated": False, "verdict": "not violated on tested points"}, "no violation found"),
        ({"violated": False, "verdict": "certified"}, "certified"),
        ({"violated": None, "verdict": "undefined (output shape differs from input shape)"}, "undefined"),
        ({"violated": False}, "no violation found"),
        ({"violated": None}, None),
        (None, None),
    ],
)
def test_fne_verdicts(tmp_path: Path, fne: dict[str, Any] | None, shown: str | None) -> None:
    rd = tmp_path / "runs" / "r"
    payload = {
        "lipschitz": {"A": {"upper": 2.0, "lower": 1.0}, "R": None},
        "fne": fne,
        "certified_pixel_accuracy": {"36/255": 0.5, "0": 0.9},
    }
    _write(
        rd,
        "certify-1",
        "certify",
        arch="unet_tiny",
        data="lesions",
        settings={},
        payload=payload,
        created="2026-11-24T02:00:00+00:00",
    )
    t = build_leaderboard(tmp_path / "runs").table
    assert t["FNE"][0] == shown
    assert t["cert pixel acc@36/255"][0] == 0.5 and t["cert pixel acc@0"][0] == 0.9
    assert column_doc("cert pixel acc@36/255").startswith("Certified pixel accuracy")


def test_missing_cells_are_empty_not_zero(runs: Path, tmp_path: Path) -> None:
    lb = build_leaderboard(runs)
    run = _shapes_lam_name(1e-2)  # no attack record
    attack_cols = [c for c in lb.columns if "_linf@" in c]
    assert attack_cols
    r = _row(lb.table, run)
    assert all(pd.isna(r[c]) for c in attack_cols)
    assert pd.isna(r["mIoU"]) and pd.isna(r["L(R) lower"]) and r["FNE"] is None
    # the mresnet rows carry no R bound → FNE stays empty; cert mIoU exists only for the U-Net
    assert lb.table["cert mIoU@0.1"].notna().sum() == 1

    # CSV: empty fields
    rows = {d["run"]: d for d in csv.DictReader(io.StringIO(render_csv(lb)))}
    assert all(rows[run][c] == "" for c in [*attack_cols, "mIoU", "FNE", "L(R) lower"])
    assert rows[run]["L(A) upper"] != ""
    # JSON: null
    obj = json.loads(json.dumps(to_json_obj(lb)))
    jrow = next(d for d in obj["rows"] if d["run"] == run)
    assert all(jrow[c] is None for c in [*attack_cols, "mIoU", "FNE"])
    # the main table aggregates seeds: `seed` lists them as text; the per-run rows keep the integer
    assert jrow["seed"] == "0" and jrow["n seeds"] == 1 and jrow[LAM] == 1e-2
    per_run = to_json_obj(lb, runs=True)["rows"]
    assert next(d for d in per_run if d["run"] == run)["seed"] == 0
    # Markdown: empty cells in that row
    md = render_markdown(lb)
    full = md.split("## All columns")[1]  # the full table (the summary above holds key columns only)
    header = next(line for line in full.splitlines() if line.startswith("| run |"))
    names = [h.strip() for h in header.strip("|").split(" | ")]
    assert names == _with_n_seeds(list(lb.columns))  # one seed per row: + `n seeds`
    line = next(line for line in full.splitlines() if line.startswith(f"| {run} |"))
    cells = [c.strip() for c in line.strip()[2:-2].split(" | ")]
    assert len(cells) == len(names)
    by_name = dict(zip(names, cells, strict=True))
    assert all(by_name[c] == "" for c in [*attack_cols, "mIoU", "FNE"])
    assert by_name["L(A) upper"] == f"{C_UP * 1e-2**K_UP:.4g}" and by_name[LAM] == "0.01"


def test_sorting(runs: Path) -> None:
    lb = build_leaderboard(runs, sort="L(A) upper")
    ups = lb.table["L(A) upper"]
    known = ups[ups.notna()].tolist()
    assert known == sorted(known)
    assert ups.isna().tolist() == [False] * len(known) + [True] * (len(ups) - len(known))  # empty last
    desc = sort_table(lb.table, "precision", descending=True)["precision"].dropna().tolist()
    assert desc == sorted(desc, reverse=True)
    assert sort_table(lb.table, "lam")[LAM].dropna().tolist() == sorted(lb.table[LAM].dropna())
    assert sort_table(lb.table, "l(a) UPPER")["run"].tolist() == lb.table["run"].tolist()  # case-insensitive
    with pytest.raises(RlipError, match=r"unknown column 'nope'; valid columns: run, arch"):
        build_leaderboard(runs, sort="nope")
    # default order: dataset, arch, λ
    d = build_leaderboard(runs).table
    assert d["dataset"].tolist()[0] == "lesions"
    shapes_lams = d.loc[d["arch"] == "mresnet18_tiny", LAM].dropna().tolist()
    assert shapes_lams == sorted(shapes_lams)


def test_dataset_filter(runs: Path) -> None:
    lb = build_leaderboard(runs, dataset="LESIONS")
    assert lb.table["run"].tolist() == ["lesions/unet"]
    # dynamic columns emptied by the filter are dropped
    assert "pgd_linf@8/255 [custom, n=64] acc" not in lb.columns
    assert set(lb.attacks["run"]) == {"lesions/unet"}
    with pytest.raises(RlipError, match="datasets found: lesions, shapes"):
        build_leaderboard(runs, dataset="coco")


def test_slopes_match_the_closed_form(runs: Path) -> None:
    lb = build_leaderboard(runs)
    fits = {(s.arch, s.bound): s for s in lb.slopes}
    up, lo = fits[("mresnet18_tiny", "upper")], fits[("mresnet18_tiny", "lower")]
    assert up.slope == pytest.approx(K_UP) and up.intercept == pytest.approx(math.log10(C_UP))
    assert lo.slope == pytest.approx(K_LO) and lo.intercept == pytest.approx(math.log10(C_LO))
    assert up.n == 3 and up.lam_min == 1e-4 and up.lam_max == 1e-2  # λ = 0 excluded
    assert up.r2 == pytest.approx(1.0)
    # the U-Net group has a single λ: null slope, still listed
    u = fits[("unet_tiny", "upper")]
    assert u.slope is None and u.n == 1
    js = to_json_obj(lb)["slopes"]
    assert {(s["arch"], s["bound"]): s["slope"] for s in js}[("mresnet18_tiny", "upper")] == pytest.approx(
        K_UP
    )
    assert {(s["arch"], s["bound"]): s["slope"] for s in js}[("unet_tiny", "lower")] is None


@pytest.mark.parametrize(("c", "k"), [(3.0, -1.0), (0.01, 0.7), (5.0, 0.0)])
def test_fit_loglog_closed_form(c: float, k: float) -> None:
    lam = np.logspace(-6, -1, 6)
    slope, intercept, _ = fit_loglog([*lam, 0.0], [*(c * lam**k), 123.0])  # λ = 0 dropped
    assert slope == pytest.approx(k, abs=1e-9) and intercept == pytest.approx(math.log10(c))
    assert fit_loglog([1e-3, 1e-3], [1.0, 2.0]) == (None, None, None)  # one distinct λ


def test_noisy_slope_is_least_squares() -> None:
    rng = np.random.default_rng(0)
    x = np.linspace(-5, -1, 9)
    y = 1.3 - 0.4 * x + rng.normal(0, 0.05, x.size)
    slope, intercept, r2 = fit_loglog(10**x, 10**y)
    ref_slope, ref_int = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    assert slope == pytest.approx(ref_slope) and intercept == pytest.approx(ref_int)
    assert r2 is not None and 0.9 < r2 < 1.0


def test_column_docs_cover_every_column(runs: Path) -> None:
    lb = build_leaderboard(runs)
    for c in lb.columns:
        assert column_doc(c), c
    assert "worst" in column_doc("worst_linf@8/255 [every attack, n=64] acc") and "8/255" in column_doc(
        "pgd_linf@8/255 [custom, n=64] acc"
    )
    assert all(d for d in COLUMN_DOCS.values())
    assert "identity coefficient" in column_doc("L(R) upper").lower()
    leg = legend(lb.columns)
    assert set(leg) >= {
        "run",
        "L(A) upper",
        "<attack>_<norm>@<ε> [<protocol>, n=<n>] acc",
        "<attack>_<norm>@<ε> [<protocol>, n=<n>] pixel acc",
        "<attack>(<objective>)_<norm>@<ε> [<protocol>, n=<n>] <metric>",
        "worst_<norm>@<ε> [every attack, n=<n>] <metric>",
        "cert acc@<ε>",
        "cert mIoU@<ε>",
    }
    assert set(leg) <= set(COLUMN_DOCS) and "cert pixel acc@<ε>" not in leg  # only patterns present
    assert f"- `cert acc@<ε>`: {COLUMN_DOCS['cert acc@<ε>']}" in render_markdown(lb)
    obj = to_json_obj(lb)
    assert set(obj) >= {"columns", "rows", "slopes", "generated", "column_docs"}
    # the main JSON holds the seed-aggregated table (here: the per-run columns plus `n seeds`)
    agg_cols = list(lb.aggregated.columns)
    assert obj["columns"] == agg_cols == _with_n_seeds(list(lb.columns))
    assert set(obj["column_docs"]) == set(agg_cols) and all(obj["column_docs"].values())


def test_key_columns_pick_the_largest_budget(runs: Path) -> None:
    cols = key_columns(build_leaderboard(runs).table)
    assert cols[:4] == ["run", "arch", "dataset", LAM]
    assert (
        "worst_linf@8/255 [every attack, n=64] acc" in cols
        and "worst_linf@2/255 [every attack, n=64] acc" not in cols
    )


@pytest.fixture(scope="module")
def plots(runs: Path) -> dict[str, bytes]:
    return make_plots(build_leaderboard(runs))


def test_plots_are_pngs(plots: dict[str, bytes]) -> None:
    assert set(plots) == {
        "lipschitz_vs_lambda.png",
        "precision_vs_lambda.png",
        "attacked_vs_eps.png",
        "tradeoff.png",
    }
    assert all(p.startswith(PNG_MAGIC) for p in plots.values())


def test_html_is_self_contained(runs: Path, plots: dict[str, bytes]) -> None:
    lb = build_leaderboard(runs)
    page = render_html(lb, plots)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and 'src="http' not in page and "@import" not in page
    assert page.count("data:image/png;base64,") == len(plots) == 4
    for run in lb.table["run"]:
        assert f">{run}</td>" in page
    assert page.count("<tr>") >= len(lb) + 1 and "<script>" in page and "sortable" in page
    assert 'data-v=""' in page  # empty cells stay empty (no 0 filled in)


def test_write_reports(runs: Path, tmp_path: Path, plots: dict[str, bytes]) -> None:
    out = tmp_path / "reports"
    lb = build_leaderboard(runs)
    written = write_reports(lb, out, "md,json", plots=plots)
    assert set(written) == {
        "md",
        "json",
        "runs.json",  # the per-run rows, next to the seed-aggregated leaderboard.json
        "lipschitz_vs_lambda.png",
        "precision_vs_lambda.png",
        "attacked_vs_eps.png",
        "tradeoff.png",
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written.values())  # no temp files
    assert all((out / name).read_bytes() == png for name, png in plots.items())
    md = (out / "leaderboard.md").read_text()
    assert "![" in md and "(lipschitz_vs_lambda.png)" in md
    assert json.loads((out / "leaderboard.json").read_text())["rows"][0]["run"] == lb.table["run"][0]
    assert write_reports(lb, tmp_path / "np", ["csv"], plots=False) == {
        "csv": tmp_path / "np" / "leaderboard.csv",
        "runs.csv": tmp_path / "np" / "leaderboard_runs.csv",
    }


def test_write_reports_is_atomic(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "reports"
    out.mkdir()
    (out / "leaderboard.html").write_text("old page")
    lb = build_leaderboard(runs)

    def boom(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr("robustbench_lip.report.render.html.render_html", boom)
    with pytest.raises(RuntimeError):
        write_reports(lb, out, "html", plots=False)
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.html"]
    assert (out / "leaderboard.html").read_text() == "old page"


def test_empty_and_bad_formats(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    lb = build_leaderboard(tmp_path / "runs")
    assert lb.table.empty and list(lb.table.columns) == list(FIXED_COLUMNS) and lb.slopes == []
    with pytest.raises(RlipError, match="no runs"):
        write_reports(lb, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert parse_formats(" MD, csv,md ") == ["md", "csv"]
    with pytest.raises(RlipError, match="unknown format 'pdf'; choose from md, csv, json, html"):
        parse_formats("md,pdf")
    with pytest.raises(RlipError, match="no format"):
        parse_formats([])


def test_plots_with_only_lambda_zero_and_no_attacks(tmp_path: Path) -> None:
    rd = tmp_path / "runs" / "only0"
    _train(
        rd,
        arch="mresnet18_tiny",
        data="shapes",
        lam=0.0,
        target="A",
        seed=0,
        final={"accuracy": 0.5, "precision": 0.4, "miou": None},
        wall_s=1.0,
    )
    _certify(
        rd,
        "certify-1",
        arch="mresnet18_tiny",
        data="shapes",
        up=30.0,
        lo=2.0,
        created="2026-11-24T02:00:00+00:00",
    )
    lb = build_leaderboard(tmp_path / "runs")
    assert lb.slopes == []  # no λ > 0: nothing to fit
    plots = make_plots(lb)
    assert set(plots) == {"lipschitz_vs_lambda.png", "precision_vs_lambda.png", "tradeoff.png"}
    assert "No group has runs with λ > 0" in render_markdown(lb, list(plots))


def _with_n_seeds(columns: list[str]) -> list[str]:
    """The per-run columns with `n seeds` right after `seed` (one seed per row)."""
    at = columns.index("seed") + 1
    return [*columns[:at], "n seeds", *columns[at:]]
