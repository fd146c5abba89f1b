"""The leaderboard as one self-contained HTML page, from the Jinja2 template `templates/leaderboard.html`.

Sortable tables (inline JS: click a header), the L(A)–λ slopes, plots embedded as base64 PNG data
URIs, the column docs. No external resource of any kind.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup

from robustbench_lip.report.build import Leaderboard
from robustbench_lip.report.columns import column_docs, legend, raw_rows, table_rows
from robustbench_lip.report.plots import PLOT_TITLES
from robustbench_lip.report.render.headers import column_group, group_spans
from robustbench_lip.report.seeds import display_columns, display_rows, has_seed_groups, summary_columns
from robustbench_lip.report.slopes import SLOPE_HEADER, slopes_rows

TEMPLATE = "leaderboard.html"


def _esc(value: Any) -> Markup:
    """html.escape (quotes included) of the value's text, marked safe for the autoescaping template."""
    return Markup(html.escape(str(value)))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("robustbench_lip.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["esc"] = _esc
    return env


def _is_number_text(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    sort_values: Sequence[Sequence[str]] | None,
    docs: dict[str, str] | None = None,
    css: str = "sortable",
) -> dict[str, Any]:
    """A table for the template: header [(name, title)], rows of cells {num, raw, text}; `raw` is the
    sort key (the shown text when `sort_values` is None), `num` when it parses as a number."""
    cells = [
        [
            {"num": _is_number_text(raw), "raw": raw, "text": text}
            for text, raw in zip(r, sort_values[i] if sort_values is not None else r, strict=True)
        ]
        for i, r in enumerate(rows)
    ]
    return {
        "css": css,
        "groups": None,
        "header": [(h, (docs or {}).get(h, "")) for h in header],
        "rows": cells,
    }


def _grouped(table: Any, columns: Sequence[str], texts: Sequence[Sequence[str]]) -> dict[str, Any]:
    """A leaderboard table for the template: a group header row over compact column headers (full
    name and meaning in the title), the first column sticky; sort keys are the raw values."""
    docs = column_docs(columns)
    raw_all = raw_rows(table)
    pos = [list(table.columns).index(c) for c in columns]
    t = _table(columns, texts, [[r[j] for j in pos] for r in raw_all], None, css="sortable lb")
    t["header"] = [(column_group(c)[1], f"{c}: {docs[c]}" if docs[c] else c) for c in columns]
    t["groups"] = group_spans(columns)
    return t


def render_html(lb: Leaderboard, plots: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page: the summary and the full table (seed-aggregated, grouped compact
    headers, sticky first column, sortable by inline JS), the per-run rows when some row averages
    seeds, slopes, plots embedded as base64 PNG, column docs. No external resource of any kind."""
    agg = lb.aggregated
    summary, full = summary_columns(agg), display_columns(agg)
    seeds = has_seed_groups(agg)
    context = {
        "n_runs": len(lb),
        "runs_dir": str(lb.runs_dir),
        "generated": lb.generated,
        "seeds": seeds,
        "summary": _grouped(agg, summary, display_rows(agg, summary)),
        "table": _grouped(agg, full, display_rows(agg, full)),
        "runs": _grouped(lb.table, lb.columns, table_rows(lb.table)) if seeds else None,
        "slopes": _table(SLOPE_HEADER, slopes_rows(lb.slopes), None) if lb.slopes else None,
        "plots": [
            {
                "name": name,
                "title": PLOT_TITLES.get(name, name),
                "b64": base64.b64encode(png).decode("ascii"),
            }
            for name, png in (plots or {}).items()
        ],
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in lb.skipped],
        "legend": list(legend(agg.columns).items()),
    }
    return _environment().get_template(TEMPLATE).render(context)
