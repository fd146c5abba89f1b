"""Readable reports: grouped headers and a sticky first column in the HTML; plots whose axes follow
the data and whose trade-off points carry their λ."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from robustbench_lip.report import build_leaderboard
from robustbench_lip.report.plots import fit_limits, precision_figure, tradeoff_figure
from robustbench_lip.report.render import render_html
from robustbench_lip.report.render.headers import column_group, group_spans
from tests.helpers.records import LAMS, SEEDS
from tests.helpers.records import seed_run as _run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readable") / "runs"
    for lam in LAMS:
        for s in SEEDS:
            _run(root, lam, s)
    return root


def test_html_has_grouped_headers_and_sticky_first_column(runs: Path) -> None:
    lb = build_leaderboard(runs)
    page = render_html(lb)
    groups = re.findall(r'<tr class="groups">(.*?)</tr>', page)
    assert len(groups) == 3  # summary, all columns, per-run rows
    cells = re.findall(r'<th colspan="(\d+)">([^<]*)</th>', groups[1])
    labels = [label for _, label in cells]
    assert labels[:3] == ["Run", "Clean", "Lipschitz"] and "pgd ℓ∞ [custom, n=64]" in labels
    shown = len(re.findall(r"<td", page.split('<tr class="groups">')[2].split("</table>")[0])) // len(
        lb.aggregated
    )
    assert sum(int(n) for n, _ in cells) == shown  # the group row spans every column
    # compact header under its group; full name and meaning in the title
    assert re.search(r'<th title="pgd_linf@8/255 \[custom, n=64\] acc: [^"]+">acc@8/255</th>', page)
    css = page.split("<style>")[1].split("</style>")[0]
    assert re.search(r"table\.lb td:first-child[^{]*\{[^}]*position:sticky;left:0", css)
    assert "overflow-x:auto" in css
    assert "http://" not in page and "https://" not in page and "<link" not in page


def test_column_groups() -> None:
    assert column_group("cert acc@0.5") == ("certified ℓ2", "acc@0.5")
    assert column_group("worst_l2@0.5 mIoU") == ("worst ℓ2", "mIoU@0.5")
    assert column_group("pgd_linf@8/255 [custom, n=64] acc") == ("pgd ℓ∞ [custom, n=64]", "acc@8/255")
    assert column_group("L(A) upper") == ("Lipschitz", "L(A) upper")
    assert column_group("something new") == ("other", "something new")
    cols = ["run", "λ", "acc", "precision", "pgd_linf@2/255 acc", "pgd_linf@8/255 acc", "zzz"]
    assert group_spans(cols) == [("Run", 2), ("Clean", 2), ("pgd ℓ∞", 2), ("other", 1)]


def test_precision_axis_fits_the_data(runs: Path) -> None:
    lb = build_leaderboard(runs)
    ax = precision_figure(lb).axes[0]
    lo, hi = ax.get_ylim()
    agg = lb.aggregated
    data_lo = min((agg["precision"] - agg["precision std"]).min(), (agg["acc"] - agg["acc std"]).min())
    data_hi = max((agg["precision"] + agg["precision std"]).max(), (agg["acc"] + agg["acc std"]).max())
    assert lo < data_lo and hi > data_hi  # every error bar inside
    assert (hi - lo) < 1.2 * (data_hi - data_lo)  # and not a 0–1 axis
    # a 2.7-point drop takes most of the axis, not 3 % of it
    assert fit_limits([0.962, 0.935]) == pytest.approx((0.962 - 0.027 * 1.08, 0.962 + 0.027 * 0.08))
    assert fit_limits([0.5]) == pytest.approx((0.5 - 0.0058, 0.5 + 0.0058))


def test_tradeoff_points_carry_lambda_and_axes_fit(runs: Path) -> None:
    lb = build_leaderboard(runs)
    fig = tradeoff_figure(lb)
    ax_l, ax_atk = fig.axes[:2]
    labels = sorted(t.get_text() for t in ax_l.texts)
    assert labels == ["λ=0", "λ=0.01"]  # one label per (seed-averaged) point
    assert sorted(t.get_text() for t in ax_atk.texts) == ["λ=0", "λ=0.01"]
    ups = lb.aggregated["L(A) upper"]
    x_lo, x_hi = ax_l.get_xlim()
    assert x_lo < ups.min() and x_hi > ups.max() and x_hi / x_lo < 10 * ups.max() / ups.min()
    precs = lb.aggregated["precision"]
    y_lo, y_hi = ax_atk.get_ylim()
    assert y_lo < precs.min() < precs.max() < y_hi and (y_hi - y_lo) < 2 * (precs.max() - precs.min())
