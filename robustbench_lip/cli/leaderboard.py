"""`rlip leaderboard`: collect the runs' result records into tables, plots and a self-contained HTML page.

Exit codes: 0 on success; 1 on a user error (unknown --sort column, unknown --format, unknown
--dataset) and when the runs folder holds no usable record at all (nothing to report is an error,
so a script notices a wrong --runs-dir). Files that are not valid records are skipped with a warning.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from robustbench_lip.cli.common import console, handle_errors, live_help
from robustbench_lip.errors import RlipError

if TYPE_CHECKING:  # pandas and the report package load in the command body (fast --help)
    import pandas as pd

SORT_HELP = "Sort by this column (e.g. 'L(A) upper', lam, precision)."

#: Which summary columns are text (left-aligned); the others are numbers.
_TEXT_COLUMNS = ("run", "arch", "dataset", "target", "status", "FNE", "seed")


def _fit_width(cols: list[str], frame: pd.DataFrame, width: int) -> list[str]:
    """The columns of `cols` that fit in `width` characters, the most important first, in `cols` order."""
    from robustbench_lip.report.columns import ACC, LA_LO, LA_UP, LAM, LR_LO, MIOU, PREC, ColumnKey
    from robustbench_lip.report.seeds import display_rows

    # which columns to keep first when the terminal is narrow; then the worst-case and certified ones
    priority = ("run", LAM, PREC, LA_UP, LA_LO, ACC, "arch", "dataset", MIOU, LR_LO)
    rows = display_rows(frame, cols)
    need = {c: max([len(c), *(len(r[i]) for r in rows)]) + 3 for i, c in enumerate(cols)}
    worst = [c for c in cols if (k := ColumnKey.parse(c)) and k.kind in ("worst", "cert")]
    first = [c for c in priority[:5] if c in cols] + worst + [c for c in priority[5:] if c in cols]
    order = first + [c for c in cols if c not in first]
    kept: set[str] = set()
    used = 1
    for c in order:
        if used + need[c] <= width or not kept:
            kept.add(c)
            used += need[c]
    return [c for c in cols if c in kept]


@handle_errors
def leaderboard(
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", "-r", help="Folder holding the runs (each with results/*.json).")
    ] = Path("zoo/runs"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the reports and plots.")] = Path(
        "reports"
    ),
    formats: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="Report formats, comma-separated: md,csv,json,html (default: all)."
        ),
    ] = None,
    sort: Annotated[
        str | None,
        typer.Option("--sort", "-s", help=SORT_HELP),
    ] = None,
    descending: Annotated[bool, typer.Option("--desc", help="Sort in descending order.")] = False,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Only runs on this dataset.")] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write the PNG plots.")] = True,
) -> None:
    """Build the leaderboard from the result records under --runs-dir and write it to --out."""
    from robustbench_lip.report import (
        FORMATS,
        LAM,
        SLOPE_HEADER,
        build_leaderboard,
        parse_formats,
        slopes_rows,
        write_reports,
    )
    from robustbench_lip.report.seeds import display_columns, display_rows, has_seed_groups, summary_columns

    fmts = parse_formats(formats if formats is not None else FORMATS)
    lb = build_leaderboard(runs_dir, dataset=dataset, sort=sort, descending=descending)
    if lb.table.empty:
        raise RlipError(
            f"no runs with result records under {runs_dir} ({len(lb.skipped)} file(s) skipped); "
            "train and evaluate some first (rlip zoo train, rlip certify, rlip attack)"
        )
    written = write_reports(lb, out, fmts, plots=plots)

    agg = lb.aggregated
    summary = summary_columns(agg)
    cols = _fit_width(summary, agg, console.width)
    groups = f", {len(agg)} row(s) averaging seeds" if has_seed_groups(agg) else ""
    table = Table(title=f"Leaderboard — {len(lb)} run(s) from {runs_dir}{groups}")
    for c in cols:
        numeric = c not in _TEXT_COLUMNS
        table.add_column(c, justify="right" if numeric else "left", no_wrap=True)
    for row in display_rows(agg, cols):
        table.add_row(*row)
    console.print(table)
    if len(cols) < len(summary):
        console.print(
            f"[dim]{len(summary) - len(cols)} summary column(s) left out to fit the terminal "
            "(a wider one shows them).[/dim]"
        )
    if len(summary) < len(display_columns(agg)):
        console.print(f"[dim]All {len(display_columns(agg))} columns are in the written reports.[/dim]")

    if lb.slopes:
        st = Table(title=f"Slope of log10 L(A) against log10 {LAM} (least squares, {LAM} > 0)")
        for h in SLOPE_HEADER:
            st.add_column(h, justify="left" if h in ("arch", "dataset", "target", "bound") else "right")
        for row in slopes_rows(lb.slopes):
            st.add_row(*row)
        console.print(st)
    else:
        console.print(f"[dim]No L(A)–{LAM} slope: no group has certified runs with {LAM} > 0.[/dim]")
    if lb.skipped:
        console.print(
            f"[yellow]{len(lb.skipped)} file(s) skipped (not valid records); see the warnings.[/yellow]"
        )
    for path in written.values():
        console.print(f"wrote {path}", highlight=False)


def _sort_help() -> str:
    """--sort's help, naming the leaderboard metrics registered from outside the package
    (`report.register_metric`). The metric registry is read only when something imported it already
    (a registration did), so `--help` stays free of the report package."""
    metrics = sys.modules.get("robustbench_lip.report.metrics")
    names = metrics.LEADERBOARD_METRICS.names() if metrics is not None else []
    return SORT_HELP + (f" Registered metrics: {', '.join(names)}." if names else "")


def register(app: typer.Typer) -> None:
    """Add `rlip leaderboard` to the root app."""
    app.command("leaderboard", cls=live_help("sort", _sort_help))(leaderboard)
