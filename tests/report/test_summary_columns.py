"""The summary shows what the toolkit is for (issue 26): certified accuracy / mIoU at the main radius
beside clean and attacked, L(A) upper and lower, in Markdown, HTML and the terminal; run names stay
whole; piped terminal tables are never cut."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.records import make_record, write_record
from robustbench_lip.report import build_leaderboard
from robustbench_lip.report.columns import MAIN_RADIUS, key_columns
from robustbench_lip.report.render.html import render_html
from robustbench_lip.report.render.markdown import render_markdown

LONG = "a-rather-long-sweep-name_mresnet18_w8-lam0.0001-s0-with-a-tail"


def _rec(run: Path, kind: str, name: str, data: str, task: str, payload: dict[str, Any]) -> None:
    settings = {"lam": 1e-4, "seed": 0, "data": data, "model": "m"} if kind == "train" else {"n": 8}
    rec = make_record(kind, model={"arch": "m", "task": task}, dataset={"name": data}, settings=settings,
                      payload=payload, wall_s=1.0)  # fmt: skip
    write_record(run / "results" / f"{name}.json", rec)


def _run(runs: Path, name: str, data: str, task: str, cert: dict[str, dict[str, float]]) -> None:
    final = {"accuracy": 0.9, "precision": 0.8, "miou": 0.5 if task == "segmentation" else None}
    _rec(runs / name, "train", "train", data, task, {"status": "finished", "history": [], "final": final})
    bound = {"upper": 12.5, "lower": 3.25, "lower_mean": 3.0, "converged": True}
    payload = {"lipschitz": {"A": bound}, "fne": {"violated": None}, "unsupported_ops": [], **cert,
               "clean": {"accuracy": 0.9, "precision": 0.8, "miou": None}}  # fmt: skip
    _rec(runs / name, "certify", "certify-a", data, task, payload)


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    _run(runs, LONG, "shapes", "classification",
         {"certified_accuracy": {"36/255": 0.4375, "72/255": 0.25}})  # fmt: skip
    _run(runs, "seg-unet-lam0-s0", "lesions", "segmentation",
         {"certified_miou": {"36/255": 0.3125, "108/255": 0.125}})  # fmt: skip
    return runs


def test_summary_columns_carry_the_certified_figures(runs: Path) -> None:
    lb = build_leaderboard(runs)
    cols = key_columns(lb.aggregated)
    acc, miou = f"cert acc@{MAIN_RADIUS}", f"cert mIoU@{MAIN_RADIUS}"
    assert MAIN_RADIUS == "36/255" and acc in cols and miou in cols
    assert cols.index("acc") < cols.index(acc) < cols.index("L(A) upper") < cols.index("L(A) lower")
    assert "cert acc@72/255" not in cols and "cert mIoU@108/255" not in cols
    summary = render_markdown(lb).split("## All columns")[0]
    assert acc in summary and miou in summary and "0.4375" in summary and "0.3125" in summary
    page = render_html(lb)
    head = page.split("<h2>All columns</h2>")[0]
    assert f'title="{acc}:' in head and f'title="{miou}:' in head and "0.4375" in head
    # run names stay whole: the sticky run column does not wrap
    assert re.search(r"table\.lb td:first-child[^}]*white-space:nowrap", page.replace("\n", ""))


def test_piped_terminal_tables_are_not_cut(runs: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["leaderboard", "--runs-dir", str(runs), "--out", str(tmp_path / "rep"),
                                 "--no-plots", "--format", "md"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert LONG in r.output and "…" not in r.output and "left out" not in r.output
    assert f"cert acc@{MAIN_RADIUS}" in r.output and "0.4375" in r.output


def test_piped_sweep_table_is_not_cut(capsys: pytest.CaptureFixture[str]) -> None:
    from robustbench_lip.cli.zoo import _print_table, runs_table

    row = {"name": LONG * 2, "lam": 1e-4, "seed": 0, "status": "finished", "epochs_done": 3, "epochs": 3,
           "accuracy": 0.987654, "precision": 0.876543, "miou": 0.765432, "sigma_A_max": 12.3456,
           "sigma_R_max": None, "wall_s": 12.0}  # fmt: skip
    _print_table(runs_table([row], "sweep"))
    out = capsys.readouterr().out
    assert LONG * 2 in out and "…" not in out and "0.988" in out and "time s" in out
