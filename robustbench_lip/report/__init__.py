"""Records → leaderboard: one row per model run, written as Markdown, CSV, JSON, HTML and PNG plots.

`build_leaderboard(runs_dir, ...) -> Leaderboard` reads every `RUN/results/*.json` under the runs
folder (`collect`: loading, the record layout, the merging rules), builds the typed table (`build`,
columns in `columns`), averages the runs that differ only in their seed (`seeds`) and fits the
slope of log10 L(A) against log10 λ (`slopes`).
`write_reports(lb, out_dir, formats, plots)` writes `leaderboard.{md,csv,json,html}` (`render`; the
HTML page from `templates/leaderboard.html`) and the PNG plots (`plots`).

Column names are `columns.ColumnKey`s (name, parse, doc, sort, group); each record payload's
columns are listed in `metrics` (`CERTIFY_COLUMNS`, `ATTACK_COLUMNS`, `SMOOTHING_COLUMNS`), and a
metric from outside the package is one `metrics.register_metric(LeaderboardMetric(...))`.

Library code only returns values and logs; the CLI (`rlip leaderboard`) prints.
May import: records, attacks.eps (ε text), models (an arch's family), runs, io, errors; never cli,
evaluation or training.
"""

from __future__ import annotations

from robustbench_lip.report.build import Leaderboard, build_leaderboard, resolve_column, sort_table
from robustbench_lip.report.collect import LoadedRecord, SkippedFile, load_records
from robustbench_lip.report.columns import (
    COLUMN_DOCS,
    FIXED_COLUMNS,
    KEY_COLUMNS,
    LAM,
    PATTERN_DOCS,
    column_doc,
    column_docs,
    format_cell,
    key_columns,
    legend,
    table_rows,
)
from robustbench_lip.report.metrics import LeaderboardMetric, register_metric
from robustbench_lip.report.plots import PLOT_TITLES, make_plots
from robustbench_lip.report.seeds import aggregate, display_rows
from robustbench_lip.report.slopes import SLOPE_HEADER, SlopeFit, fit_loglog, fit_slopes, slopes_rows
from robustbench_lip.report.write import FORMATS, REPORT_STEM, parse_formats, write_reports

__all__ = [
    "COLUMN_DOCS",
    "FIXED_COLUMNS",
    "FORMATS",
    "KEY_COLUMNS",
    "LAM",
    "PATTERN_DOCS",
    "PLOT_TITLES",
    "REPORT_STEM",
    "SLOPE_HEADER",
    "Leaderboard",
    "LeaderboardMetric",
    "LoadedRecord",
    "SkippedFile",
    "SlopeFit",
    "aggregate",
    "build_leaderboard",
    "column_doc",
    "column_docs",
    "display_rows",
    "fit_loglog",
    "fit_slopes",
    "format_cell",
    "key_columns",
    "legend",
    "load_records",
    "make_plots",
    "parse_formats",
    "register_metric",
    "resolve_column",
    "slopes_rows",
    "sort_table",
    "table_rows",
    "write_reports",
]
