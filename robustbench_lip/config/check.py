"""Value checks shared by the configuration dataclasses: each returns None or a one-line message."""

from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any

from robustbench_lip.choices import check_choice


def integer(v: Any, name: str, minimum: int) -> str | None:
    """None when v is an int (not a bool) ≥ minimum."""
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        return f"{name} must be an integer ≥ {minimum}, got {v!r}"
    return None


def number(v: Any, name: str, low: float = 0.0, high: float = math.inf, what: str = "") -> str | None:
    """None when v is a real number (not a bool) with low ≤ v ≤ high, finite. `what` replaces the
    default description of the range in the message."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and low <= v <= high
    if ok:
        return None
    rng = what or (f"a finite number ≥ {low:g}" if high == math.inf else f"a number in [{low:g}, {high:g}]")
    return f"{name} must be {rng}, got {v!r}"


def choice(v: Any, choices: type[Enum] | tuple[Enum, ...], name: str) -> str | None:
    """None when v is one of the choices' values."""
    return check_choice(v, choices, name)


def plain_enums(obj: Any) -> None:
    """Replace Enum members in the fields of a frozen dataclass by their values (plain JSON types)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, Enum):
            object.__setattr__(obj, f.name, v.value)


def unknown_keys(d: dict[str, Any], known: set[str] | frozenset[str]) -> list[str]:
    """The keys of d that are not in known, sorted."""
    return sorted(set(d) - set(known))
