"""Parsing of attack budgets: `8/255`, `0.031`, lists `0,2/255,8/255`."""

from __future__ import annotations

import math
from fractions import Fraction

from robustbench_lip.choices import Norm, values
from robustbench_lip.errors import RlipError

NORMS: tuple[str, ...] = values(Norm)


def parse_eps_token(token: str, norm: str = "linf") -> float:
    """One budget: a decimal or a fraction `a/b`; ℓ∞ in [0, 1], ℓ2 ≥ 0."""
    if norm not in NORMS:
        raise RlipError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    tok = token.strip()
    try:
        if "/" in tok:
            num, den = tok.split("/", 1)
            value = float(Fraction(num.strip()) / Fraction(den.strip()))
        else:
            value = float(tok)
    except (ValueError, ZeroDivisionError):
        raise RlipError(
            f"bad eps value {token!r}: expected a number like 0.031 or a fraction like 8/255"
        ) from None
    if not math.isfinite(value):
        raise RlipError(f"bad eps value {token!r}: must be finite")
    if value < 0:
        raise RlipError(f"bad eps value {token!r}: must be ≥ 0")
    if norm == "linf" and value > 1:
        raise RlipError(f"bad eps value {token!r}: an ℓ∞ budget must lie in [0, 1] (pixel units)")
    return value


def parse_eps_list(text: str, norm: str = "linf") -> list[float]:
    """Comma-separated budgets in the given order; an empty list or an empty item is an error."""
    tokens = text.split(",")
    if not text.strip() or any(not t.strip() for t in tokens):
        raise RlipError(f"bad eps list {text!r}: expected values separated by commas, e.g. 0,2/255,8/255")
    return [parse_eps_token(t, norm) for t in tokens]


def format_eps(value: float) -> str:
    """The one text of a budget ε or a radius r (pixel units): whole numbers as `%g` (0 → "0", 1.0 →
    "1"), else `k/255` when it is one (to 1e-9), else `%g` (36/255 → "36/255", 0.25 → "0.25"). Used as
    the JSON key of per-ε values, in settings and in leaderboard column names."""
    k = value * 255
    if value != round(value) and abs(k - round(k)) < 1e-9 * max(1.0, abs(k)):
        return "0" if round(k) == 0 else f"{round(k)}/255"
    return f"{value:g}"
