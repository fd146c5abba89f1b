"""`rlip leaderboard` through CliRunner: files written atomically, terminal output, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.records import make_record, write_record

LAMS = (0.0, 1e-3, 1e-2, 1e-1)


def _write(run_dir: Path, name: str, kind: str, settings: dict[str, Any], payload: dict[str, Any]) -> None:
    rec = make_record(
        kind,
        model={"arch": "mresnet18_tiny"},
        dataset={"name": "shapes"},
        settings=settings,
        payload=payload,
        wall_s=2.5,
    )
    write_record(run_dir / "results" / f"{name}.json", rec)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four runs with L(A) upper = 3·λ^-0.5 and lower = λ^-0.2 (λ > 0); the λ = 0.1 run has no attack."""
    root = tmp_path_factory.mktemp("cli") / "runs"
    for lam in LAMS:
        rd = root / f"lam{lam:g}"
        settings = {
            "lam": lam,
            "reg_target": "A",
            "seed": 0,
            "epochs": 1,
            "model": "mresnet18_tiny",
            "data": "shapes",
        }
        final = {"accuracy": 0.8, "precision": 0.75 - lam, "miou": None}
        _write(rd, "train", "train", settings, {"status": "finished", "history": [], "final": final})
        up, lo = (500.0, 20.0) if lam == 0 else (3.0 * lam**-0.5, lam**-0.2)
        lip = {"A": {"upper": up, "lower": lo}, "R": None}
        _write(rd, "certify-x", "certify", {"n": 4}, {"lipschitz": lip, "fne": {"violated": None}})
        if lam != 1e-1:
            res = [
                {
                    "attack": "pgd",
                    "norm": "linf",
                    "eps": 8 / 255,
                    "steps": 5,
                    "accuracy": 0.2 + lam,
                    "precision": 0.1,
                    "miou": None,
                }
            ]
            _write(rd, "attack-y", "attack", {"eps": "8/255"}, {"clean": final, "results": res, "n": 64})
    (root / "lam0" / "results" / "broken.json").write_text("{not json")
    return root


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_writes_all_reports(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    res = CliRunner().invoke(app, ["leaderboard", "--runs-dir", str(runs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert _files(out) == sorted(
        [
            "leaderboard.md",
            "leaderboard.csv",
            "leaderboard.json",
            "leaderboard.html",
            "leaderboard_runs.csv",  # per-run rows next to the seed-aggregated tables
            "leaderboard_runs.json",
            "lipschitz_vs_lambda.png",
            "precision_vs_lambda.png",
            "attacked_vs_eps.png",
            "tradeoff.png",
        ]
    )  # exactly these: no temporary files left behind
    for run in ("lam0", "lam0.001", "lam0.1"):
        assert run in res.output
    assert "Slope of log10 L(A)" in res.output and "-0.500" in res.output and "-0.200" in res.output
    assert "1 file(s) skipped" in res.output and "broken.json" in res.output
    obj = json.loads((out / "leaderboard.json").read_text())
    assert {s["bound"]: round(s["slope"], 9) for s in obj["slopes"]} == {"upper": -0.5, "lower": -0.2}
    row = next(r for r in obj["rows"] if r["run"] == "lam0.1")
    assert (
        row["pgd_linf@8/255 [custom, n=64] acc"] is None
        and row["worst_linf@8/255 [every attack, n=64] acc"] is None
    )
    html = (out / "leaderboard.html").read_text()
    assert "https://" not in html and "http://" not in html and html.count("data:image/png;base64,") == 4


def test_format_sort_and_dataset(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["leaderboard", "-r", str(runs), "-o", str(out), "--format", "csv,json", "--no-plots"]
    res = CliRunner().invoke(app, [*args, "--sort", "precision", "--desc", "--dataset", "shapes"])
    assert res.exit_code == 0, res.output
    assert _files(out) == [
        "leaderboard.csv",
        "leaderboard.json",
        "leaderboard_runs.csv",
        "leaderboard_runs.json",
    ]
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    precisions = [r["precision"] for r in rows]
    assert precisions == sorted(precisions, reverse=True) and rows[0]["run"] == "lam0"
    csv_lines = (out / "leaderboard.csv").read_text().splitlines()
    assert csv_lines[1].startswith("lam0,") and len(csv_lines) == 1 + len(LAMS)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sort", "nope"], "unknown column 'nope'; valid columns: run, arch, dataset"),
        (["--format", "md,pdf"], "unknown format 'pdf'; choose from md, csv, json, html"),
        (["--dataset", "coco"], "no runs on dataset 'coco'; datasets found: shapes"),
    ],
)
def test_bad_options_are_one_line_errors(runs: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "r"
    res = CliRunner().invoke(app, ["leaderboard", "-r", str(runs), "-o", str(out), *extra])
    assert res.exit_code == 1
    assert message in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if "error:" in line]) == 1
    assert not out.exists()  # nothing written


def test_no_runs_is_exit_1(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    res = CliRunner().invoke(app, ["leaderboard", "-r", str(tmp_path / "runs"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 1 and "no runs with result records" in res.output
    res = CliRunner().invoke(
        app, ["leaderboard", "-r", str(tmp_path / "missing"), "-o", str(tmp_path / "out")]
    )
    assert res.exit_code == 1 and "runs folder not found" in res.output
    assert not (tmp_path / "out").exists()


def test_unwritable_out_is_one_line_error(runs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(app, ["leaderboard", "-r", str(runs), "-o", str(blocker / "sub"), "--no-plots"])
    assert res.exit_code == 1 and "cannot" in res.output and "Traceback" not in res.output
