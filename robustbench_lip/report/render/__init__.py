"""Renderers: the leaderboard as Markdown, CSV, JSON (an object for `atomic_write_json`) and HTML.

May import: report.build (Leaderboard), report.columns, report.metrics, report.plots / seeds / slopes;
never report.collect (renderers see tables, not records).
"""

from __future__ import annotations

from robustbench_lip.report.render.csv import render_csv
from robustbench_lip.report.render.html import render_html
from robustbench_lip.report.render.json import to_json_obj
from robustbench_lip.report.render.markdown import render_markdown

__all__ = ["render_csv", "render_html", "render_markdown", "to_json_obj"]
