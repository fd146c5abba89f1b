"""Writing the reports: `leaderboard.<fmt>` per format and the PNG plots, each file atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from robustbench_lip.report.build import Leaderboard
from robustbench_lip.report.plots import make_plots
from robustbench_lip.report.render import csv as csv_render
from robustbench_lip.report.render import html as html_render
from robustbench_lip.report.render import json as json_render
from robustbench_lip.report.render import markdown as md_render

FORMATS: tuple[str, ...] = ("md", "csv", "json", "html")
REPORT_STEM = "leaderboard"
#: The per-run (per-seed) rows, written next to the CSV and JSON reports.
RUNS_STEM = "leaderboard_runs"


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """`"md,csv"` (or a list) → ["md", "csv"]; unknown or empty is an RlipError."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        f = item.strip().lower()
        if f not in FORMATS:
            raise RlipError(f"unknown format {item.strip()!r}; choose from {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise RlipError(f"no format given; choose from {', '.join(FORMATS)}")
    return out


def _write_format(lb: Leaderboard, fmt: str, path: Path, pngs: dict[str, bytes]) -> Path:
    if fmt == "md":
        return atomic_write_text(path, md_render.render_markdown(lb, list(pngs)))
    if fmt == "csv":
        return atomic_write_text(path, csv_render.render_csv(lb))
    if fmt == "json":
        return atomic_write_json(path, json_render.to_json_obj(lb))
    return atomic_write_text(path, html_render.render_html(lb, pngs))


def write_reports(
    lb: Leaderboard,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = FORMATS,
    plots: bool | dict[str, bytes] = True,
) -> dict[str, Path]:
    """Write `leaderboard.<fmt>` for each format and the PNG plots into `out_dir`, each atomically; with
    csv / json also `leaderboard_runs.<csv|json>` (one row per run, keys "runs.csv" / "runs.json").

    plots: True renders them (`make_plots`), False writes none, a dict {file name: PNG bytes} writes
    those. Returns {format or plot file name: path}. An empty leaderboard is an RlipError."""
    fmts = parse_formats(formats)
    if lb.table.empty:
        raise RlipError(f"no runs with records under {lb.runs_dir}; nothing to write")
    out = Path(out_dir)
    written: dict[str, Path] = {}
    pngs = make_plots(lb) if plots is True else (dict(plots) if plots else {})
    for name, png in pngs.items():
        written[name] = atomic_write_bytes(out / name, png)
    for f in fmts:
        written[f] = _write_format(lb, f, out / f"{REPORT_STEM}.{f}", pngs)
    if "csv" in fmts:
        text = csv_render.render_csv(lb, runs=True)
        written["runs.csv"] = atomic_write_text(out / f"{RUNS_STEM}.csv", text)
    if "json" in fmts:
        obj = json_render.to_json_obj(lb, runs=True)
        written["runs.json"] = atomic_write_json(out / f"{RUNS_STEM}.json", obj)
    return written
