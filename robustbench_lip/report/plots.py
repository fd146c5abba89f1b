"""Leaderboard plots as PNG bytes (matplotlib, no pyplot state): L(A) and precision against λ, attacked
metrics against ε, the precision–robustness trade-off."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.report.build import Leaderboard
from robustbench_lip.report.columns import (
    ACC,
    LA_LO,
    LA_UP,
    LAM,
    PREC,
    format_cell,
    is_missing,
    to_py,
    worst_column,
)
from robustbench_lip.report.slopes import SlopeFit, groups

logger = logging.getLogger(__name__)

PLOT_LIPSCHITZ = "lipschitz_vs_lambda.png"
PLOT_PRECISION = "precision_vs_lambda.png"
PLOT_ATTACKED = "attacked_vs_eps.png"
PLOT_TRADEOFF = "tradeoff.png"
PLOT_TITLES: dict[str, str] = {
    PLOT_LIPSCHITZ: "L(A) certified upper and measured lower bound against λ",
    PLOT_PRECISION: "Clean macro precision against λ",
    PLOT_ATTACKED: "Attacked accuracy / mIoU against ε (worst case over attacks), per run",
    PLOT_TRADEOFF: "Precision–robustness trade-off",
}


def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.4) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _lam_axis(ax: Any, lam_pos: Sequence[float], has_zero: bool) -> float | None:
    """Log λ axis; returns the x position where λ = 0 is drawn (left edge), or None."""
    ax.set_xscale("log")
    if not has_zero:
        return None
    lo = min(lam_pos) if lam_pos else 1.0
    x0 = lo / 10.0
    ax.axvline(x0 * math.sqrt(10), color="0.6", lw=0.8, ls=":")
    return x0


def _label_zero(ax: Any, x0: float | None) -> None:
    if x0 is None:
        return
    ticks = [t for t in ax.get_xticks() if t > x0 * math.sqrt(10)]
    lo, hi = ax.get_xlim()
    ax.set_xticks([x0, *ticks])
    ax.set_xticklabels(["λ=0", *[f"$10^{{{math.log10(t):.0f}}}$" for t in ticks]])
    ax.set_xlim(lo, hi)
    ax.minorticks_off()


def _group_labels(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    out = []
    for (dataset, arch, target), g in groups(table):
        parts = [arch or "?", dataset or "?"] + ([f"on {target}"] if target else [])
        out.append((" · ".join(parts), g))
    return out


def _slope_for(slopes: Sequence[SlopeFit], g: pd.DataFrame, bound: str) -> float | None:
    row = g.iloc[0]
    for s in slopes:
        if (s.bound, s.dataset, s.arch, s.target) == (
            bound,
            to_py(row["dataset"]),
            to_py(row["arch"]),
            to_py(row["target"]),
        ):
            return s.slope
    return None


def plot_lipschitz_vs_lambda(lb: Leaderboard) -> bytes | None:
    """Log–log L(A) upper (solid) and lower (dashed) against λ, one colour per (arch, dataset, target);
    λ = 0 runs sit at the left edge, labelled `λ=0`, left of a dotted separator. None without data."""
    t = lb.aggregated  # seed means
    if t.empty or (t[LA_UP].isna().all() and t[LA_LO].isna().all()):
        return None
    lam = t[LAM]
    lam_pos = [float(v) for v in lam if not is_missing(v) and v > 0]
    has_zero = bool((lam == 0).any())
    fig, (ax,) = _figure()
    x0 = _lam_axis(ax, lam_pos, has_zero)
    groups = _group_labels(t)
    for color, (label, g) in zip(_colors(len(groups)), groups, strict=True):
        for col, bound, ls, marker, fill in (
            (LA_UP, "upper", "-", "o", True),
            (LA_LO, "lower", "--", "s", False),
        ):
            sel = g[g[col].notna() & g[LAM].notna()]
            if sel.empty:
                continue
            pos = sel[sel[LAM] > 0].sort_values(LAM)
            slope = _slope_for(lb.slopes, g, bound)
            lab = f"{label} {bound}" + (f" (slope {slope:.2f})" if slope is not None else "")
            style = {"color": color, "marker": marker, "mfc": color if fill else "none"}
            if not pos.empty:
                ax.plot(pos[LAM], pos[col], ls=ls, label=lab, **style)
                lab = None
            zero = sel[sel[LAM] == 0]
            if not zero.empty and x0 is not None:
                ax.plot([x0] * len(zero), zero[col], ls="none", label=lab, ms=8, **style)
    ax.set_yscale("log")
    _label_zero(ax, x0)
    ax.set_xlabel("λ (penalty weight)" + ("; λ = 0 drawn at the left edge" if x0 is not None else ""))
    ax.set_ylabel("L(A)  (upper: certified, lower: measured)")
    ax.set_title("Lipschitz constant of A against λ")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def fit_limits(values: Iterable[float], pad: float = 0.08, min_span: float = 0.01) -> tuple[float, float]:
    """Axis limits around the data: [min, max] widened by `pad` of the span on each side (the span is at
    least `min_span`, centred), so that a drop of a few points is visible on a 0–1 metric."""
    v = [float(x) for x in values if not is_missing(x) and math.isfinite(float(x))]
    lo, hi = (min(v), max(v)) if v else (0.0, 1.0)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def precision_figure(lb: Leaderboard) -> Any | None:
    """The figure of `plot_precision_vs_lambda` (None without data): seed-aggregated means, error bars
    of ± one sample std where a λ has several seeds, y axis fitted to the plotted values."""
    t = lb.aggregated
    if t.empty or t[PREC].isna().all():
        return None
    lam_pos = [float(v) for v in t[LAM] if not is_missing(v) and v > 0]
    fig, (ax,) = _figure()
    x0 = _lam_axis(ax, lam_pos, bool((t[LAM] == 0).any()))
    groups = _group_labels(t)
    shown: list[float] = []
    for color, (label, g) in zip(_colors(len(groups)), groups, strict=True):
        for col, ls, marker in ((PREC, "-", "o"), (ACC, ":", "^")):
            sel = g[g[col].notna() & g[LAM].notna()].copy()
            if sel.empty:
                continue
            if x0 is not None:
                sel.loc[sel[LAM] == 0, LAM] = x0
            sel = sel[sel[LAM] > 0].sort_values(LAM)
            err = sel[f"{col} std"].fillna(0.0) if f"{col} std" in sel else None
            ax.errorbar(
                sel[LAM],
                sel[col],
                yerr=err,
                ls=ls,
                marker=marker,
                color=color,
                capsize=3,
                label=f"{label} {'precision' if col == PREC else 'accuracy'}",
            )
            shown += [*(sel[col] - (0 if err is None else err)), *(sel[col] + (0 if err is None else err))]
    _label_zero(ax, x0)
    ax.set_ylim(*fit_limits(shown))
    ax.set_xlabel("λ (penalty weight)" + ("; λ = 0 drawn at the left edge" if x0 is not None else ""))
    ax.set_ylabel("clean metric (axis fitted to the data)")
    ax.set_title("Precision against λ" + (" (mean ± std over seeds)" if f"{PREC} std" in t else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_precision_vs_lambda(lb: Leaderboard) -> bytes | None:
    """Clean macro precision (and accuracy, dotted) against λ on a log axis; λ = 0 at the left edge;
    the y axis spans the data, not 0–1 (see `precision_figure`)."""
    fig = precision_figure(lb)
    return None if fig is None else _png(fig)


def _worst_curves(lb: Leaderboard, metric: str) -> pd.DataFrame:
    """Per (run, norm, level, ε): the smallest attacked `metric` ("accuracy" | "miou") over attacks, plus
    an ε = 0 point from the attack record's clean metrics where no ε = 0 result exists. mIoU rows carry
    level "pixel"."""
    a = lb.attacks[lb.attacks[metric].notna()].copy()
    if a.empty:
        return a
    if "n" in a.columns:  # one sample set per (run, norm, ε), the largest n: never mixed (as worst_*)
        top = pd.to_numeric(a["n"], errors="coerce").groupby([a["run"], a["norm"], a["eps"]]).transform("max")
        a = a[(pd.to_numeric(a["n"], errors="coerce") == top) | top.isna()].copy()
    a["level"] = "pixel" if metric == "miou" else a["level"].astype(object).where(a["level"].notna(), "")
    w = a.groupby(["run", "norm", "level", "eps"], as_index=False)[metric].min()
    extra = []
    for (run, norm, level), g in w.groupby(["run", "norm", "level"]):
        clean = lb.attack_clean.get(run, {})
        same_level = metric == "miou" or (clean.get("level") or "") == level
        if not (g["eps"] == 0).any() and same_level and clean.get(metric) is not None:
            extra.append({"run": run, "norm": norm, "level": level, "eps": 0.0, metric: clean[metric]})
    if extra:
        w = pd.concat([w, pd.DataFrame(extra).astype({metric: float})], ignore_index=True)
    return w


def _eps_ticks(ax: Any, values: Iterable[float]) -> None:
    """ε tick labels in canonical text (`8/255`) at the plotted budgets (at most 8 of them)."""
    ticks = sorted({float(v) for v in values if math.isfinite(v)})
    if 0 < len(ticks) <= 8:
        ax.set_xticks(ticks)
        ax.set_xticklabels([format_eps(v) for v in ticks], fontsize=8)


def plot_attacked_vs_eps(lb: Leaderboard) -> bytes | None:
    """Worst-case attacked accuracy and mIoU against ε (ε = 0: clean, from the attack record), one line
    per run, one panel per (metric, level, norm) — image-label and pixel accuracy never share a panel.
    None without attack results."""
    curves = {m: _worst_curves(lb, m) for m in ("accuracy", "miou")}
    panels = [
        (m, norm, level)
        for m, w in curves.items()
        if not w.empty
        for norm, level in sorted({(n, lv) for n, lv in zip(w["norm"], w["level"], strict=True)})
    ]
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=5.2)
    runs = [r for r in lb.table["run"] if r in set(lb.attacks["run"])]
    colors = dict(zip(runs, _colors(len(runs)), strict=True))
    lam_of = dict(zip(lb.table["run"], lb.table[LAM], strict=True))
    for ax, (metric, norm, level) in zip(axes, panels, strict=True):
        w = curves[metric]
        shown: list[float] = []
        ys: list[float] = []
        for run in runs:
            sel = w[(w["run"] == run) & (w["norm"] == norm) & (w["level"] == level)].sort_values("eps")
            if sel.empty:
                continue
            lam = lam_of.get(run)
            label = run if is_missing(lam) else f"{run} (λ={format_cell(LAM, lam)})"
            ax.plot(sel["eps"], sel[metric], marker="o", color=colors[run], label=label)
            shown += sel["eps"].tolist()
            ys += sel[metric].tolist()
        _eps_ticks(ax, shown)
        what = "mIoU" if metric == "miou" else ("pixel accuracy" if level == "pixel" else "accuracy")
        ax.set_xlabel(f"ε ({'ℓ∞' if norm == 'linf' else 'ℓ2'}, pixel units; 0 = clean)")
        ax.set_ylabel(f"attacked {what} (worst over attacks)")
        ax.set_ylim(*fit_limits(ys))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("Attacked metric against ε")
    return _png(fig)


def _label_lams(ax: Any, x: Sequence[float], y: Sequence[float], lams: Sequence[Any], color: Any) -> None:
    """Write `λ=…` next to each point."""
    for xi, yi, lam in zip(x, y, lams, strict=True):
        if not is_missing(lam):
            text = f"λ={format_cell(LAM, lam)}"
            ax.annotate(text, (xi, yi), xytext=(4, 3), textcoords="offset points", fontsize=7, color=color)


def _tradeoff_panel(ax: Any, panel: str, groups: Any, attacked: dict[str, str | None]) -> None:
    for color, (label, g) in zip(_colors(len(groups)), groups, strict=True):
        if panel == "L":
            labelled = pd.Series(False, index=g.index)
            for col, fill in ((LA_UP, True), (LA_LO, False)):
                sel = g[g[col].notna() & g[PREC].notna() & (g[col] > 0)]
                if sel.empty:
                    continue
                ax.scatter(
                    sel[col],
                    sel[PREC],
                    color=color if fill else "none",
                    edgecolors=color,
                    label=f"{label} ({'upper' if fill else 'lower'})",
                )
                new = sel[~labelled[sel.index]]  # λ once per run: at the upper bound, else the lower
                _label_lams(ax, new[col].tolist(), new[PREC].tolist(), new[LAM].tolist(), color)
                labelled[sel.index] = True
        elif (col := attacked[label]) is not None:
            sel = g[g[col].notna() & g[PREC].notna()]
            if not sel.empty:
                ax.scatter(sel[col], sel[PREC], color=color, label=f"{label}: {col}")
                _label_lams(ax, sel[col].tolist(), sel[PREC].tolist(), sel[LAM].tolist(), color)


def tradeoff_figure(lb: Leaderboard) -> Any | None:
    """The figure of `plot_tradeoff` (None without data): seed-aggregated means, each point labelled
    with its λ, axes fitted to the points (matplotlib's data limits)."""
    t = lb.aggregated
    if t.empty or t[PREC].isna().all():
        return None
    groups = _group_labels(t)
    attacked: dict[str, str | None] = {}
    for label, g in groups:
        present = [c for c in g.columns if g[c].notna().any()]
        attacked[label] = worst_column(present, "mIoU") or worst_column(present, "acc")
    has_l = bool(t[[LA_UP, LA_LO]].notna().any().any())
    panels = (["L"] if has_l else []) + (["atk"] if any(attacked.values()) else [])
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=5.2)
    for ax, panel in zip(axes, panels, strict=True):
        _tradeoff_panel(ax, panel, groups, attacked)
        if panel == "L":
            ax.set_xscale("log")
            ax.set_xlabel("L(A) (filled: certified upper, hollow: measured lower)")
        else:
            ax.set_xlabel("worst-case attacked metric at the largest ε (see legend)")
        ax.set_ylabel("clean macro precision")
        ax.margins(x=0.12, y=0.1)  # room for the λ labels
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Precision–robustness trade-off (points labelled with λ)")
    return fig


def plot_tradeoff(lb: Leaderboard) -> bytes | None:
    """Left: precision against L(A) (upper filled, lower hollow, log x). Right (when attacks exist):
    precision against the worst-case attacked mIoU (else accuracy) at the largest ℓ∞ (else ℓ2) budget
    each group was attacked with (named in the legend). Points labelled with λ. None without data."""
    fig = tradeoff_figure(lb)
    return None if fig is None else _png(fig)


def make_plots(lb: Leaderboard) -> dict[str, bytes]:
    """{file name: PNG bytes} of every plot that has data (see PLOT_TITLES)."""
    makers = {
        PLOT_LIPSCHITZ: plot_lipschitz_vs_lambda,
        PLOT_PRECISION: plot_precision_vs_lambda,
        PLOT_ATTACKED: plot_attacked_vs_eps,
        PLOT_TRADEOFF: plot_tradeoff,
    }
    out: dict[str, bytes] = {}
    for name, fn in makers.items():
        png = fn(lb)
        if png is None:
            logger.info("plot %s skipped: no data", name)
        else:
            out[name] = png
    return out
