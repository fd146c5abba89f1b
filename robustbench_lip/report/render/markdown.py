"""The leaderboard as Markdown: summary table, full table, slopes, plot links, column meanings."""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lip.report.build import Leaderboard
from robustbench_lip.report.columns import legend
from robustbench_lip.report.plots import PLOT_TITLES
from robustbench_lip.report.seeds import display_columns, display_rows, has_seed_groups, summary_columns
from robustbench_lip.report.slopes import SLOPE_HEADER, slopes_rows


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (`|` in cells escaped)."""
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(lb: Leaderboard, plots: Sequence[str] = ()) -> str:
    """The Markdown report: a summary table (`summary_columns`), the full table (one row per group of
    seeds, cells `mean ± std`), the L(A)–λ slopes, plot links (relative to the report), column docs."""
    agg = lb.aggregated
    seeds = (
        " Rows with `n seeds` > 1 average runs that differ only in their seed: `mean ± sample std`; "
        "`(n=k)` when only k of them have the value. Per-run rows: `leaderboard_runs.csv` / `.json`."
        if has_seed_groups(agg)
        else ""
    )
    parts = [
        "# Leaderboard",
        "",
        f"{len(lb)} run(s) from `{lb.runs_dir}`, generated {lb.generated}. Empty cell = not evaluated."
        + seeds,
        "",
        "## Summary",
        "",
        md_table(summary_columns(agg), display_rows(agg, summary_columns(agg))),
        "",
        "## All columns",
        "",
        md_table(display_columns(agg), display_rows(agg)),
        "",
        "## Slope of log10 L(A) against log10 λ (λ > 0, least squares)",
        "",
    ]
    if lb.slopes:
        parts += [md_table(SLOPE_HEADER, slopes_rows(lb.slopes)), ""]
    else:
        parts += ["No group has runs with λ > 0 and a certified L(A).", ""]
    if plots:
        parts += ["## Plots", ""]
        parts += [f"![{PLOT_TITLES.get(p, p)}]({p})" for p in plots] + [""]
    parts += ["## Column meanings", ""]
    parts += [f"- `{c}`: {d}" for c, d in legend(agg.columns).items()] + [""]
    return "\n".join(parts)
