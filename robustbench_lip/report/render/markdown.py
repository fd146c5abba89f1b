"""The leaderboard as Markdown: summary table, full table, slopes, plot links, column meanings."""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lip.report.build import Leaderboard
from robustbench_lip.report.columns import key_columns, legend, table_rows
from robustbench_lip.report.plots import PLOT_TITLES
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
    """The Markdown report: a summary table (`key_columns`), the full table, the L(A)–λ slopes, plot
    links (file names, relative to the report) and the column docs."""
    parts = [
        "# Leaderboard",
        "",
        f"{len(lb)} run(s) from `{lb.runs_dir}`, generated {lb.generated}. Empty cell = not evaluated.",
        "",
        "## Summary",
        "",
        md_table(key_columns(lb.table), table_rows(lb.table, key_columns(lb.table))),
        "",
        "## All columns",
        "",
        md_table(lb.columns, table_rows(lb.table)),
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
    parts += [f"- `{c}`: {d}" for c, d in legend(lb.columns).items()] + [""]
    return "\n".join(parts)
