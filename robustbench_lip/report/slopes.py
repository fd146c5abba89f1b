"""The slope of log10 L(A) against log10 λ, per (dataset, arch, penalty target).

Fitted by least squares over the runs with λ > 0 and L > 0, separately for the certified upper and
the measured lower bound; fewer than two distinct λ values give a null slope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robustbench_lip.report.columns import LA_LO, LA_UP, LAM, is_missing

SLOPE_HEADER = ("arch", "dataset", "target", "bound", "slope", "r²", "n", "λ range")


@dataclass(frozen=True)
class SlopeFit:
    """Least-squares fit log10 L = intercept + slope · log10 λ over runs with λ > 0 and L > 0.

    bound: "upper" (certified) or "lower" (measured). slope / intercept / r2 are None with fewer
    than two distinct λ values (r2 also None when L is constant). n: runs used.
    """

    dataset: str | None
    arch: str | None
    target: str | None
    bound: str
    slope: float | None
    intercept: float | None
    r2: float | None
    n: int
    lam_min: float | None
    lam_max: float | None

    @property
    def group(self) -> str:
        """`arch · dataset · penalty on target`, for labels."""
        parts = [self.arch or "?", self.dataset or "?"]
        if self.target:
            parts.append(f"penalty on {self.target}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "arch": self.arch,
            "target": self.target,
            "bound": self.bound,
            "slope": self.slope,
            "intercept": self.intercept,
            "r2": self.r2,
            "n": self.n,
            "lam_min": self.lam_min,
            "lam_max": self.lam_max,
        }


def fit_loglog(
    lam: Sequence[float], values: Sequence[float]
) -> tuple[float | None, float | None, float | None]:
    """(slope, intercept, r²) of log10 values against log10 lam, least squares; pairs with a
    non-positive or non-finite entry are dropped; None with fewer than two distinct λ."""
    x = np.asarray(lam, dtype=float)
    y = np.asarray(values, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log10(x[ok]), np.log10(y[ok])
    if np.unique(x).size < 2:
        return None, None, None
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (intercept + slope * x)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else None
    return float(slope), float(intercept), r2


def _key(v: Any) -> Any:
    return None if is_missing(v) else v


def groups(table: pd.DataFrame) -> list[tuple[tuple[Any, Any, Any], pd.DataFrame]]:
    """Rows grouped by (dataset, arch, target), in first-seen order; missing values group together."""
    keys = [tuple(_key(table.at[i, c]) for c in ("dataset", "arch", "target")) for i in table.index]
    order = list(dict.fromkeys(keys))
    return [(k, table[[kk == k for kk in keys]]) for k in order]


def fit_slopes(table: pd.DataFrame) -> list[SlopeFit]:
    """Slope of log10 L(A) against log10 λ per (dataset, arch, penalty target), for the upper and
    the lower bound. Groups with no λ > 0 run holding that bound are left out; groups with one
    such λ get slope None."""
    fits: list[SlopeFit] = []
    for (dataset, arch, target), g in groups(table):
        for bound, col in (("upper", LA_UP), ("lower", LA_LO)):
            sel = g[(g[LAM] > 0) & (g[col] > 0)]
            if sel.empty:
                continue
            slope, intercept, r2 = fit_loglog(sel[LAM].tolist(), sel[col].tolist())
            fits.append(
                SlopeFit(
                    dataset,
                    arch,
                    target,
                    bound,
                    slope,
                    intercept,
                    r2,
                    len(sel),
                    float(sel[LAM].min()),
                    float(sel[LAM].max()),
                )
            )
    return fits


def _fmt_opt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def slopes_rows(slopes: Sequence[SlopeFit]) -> list[list[str]]:
    """Rows (arch, dataset, target, bound, slope, r², n, λ range) as text, missing → empty."""
    return [
        [
            s.arch or "",
            s.dataset or "",
            s.target or "",
            s.bound,
            _fmt_opt(s.slope, ".3f"),
            _fmt_opt(s.r2, ".3f"),
            str(s.n),
            "" if s.lam_min is None else f"{s.lam_min:.3g} – {s.lam_max:.3g}",
        ]
        for s in slopes
    ]
