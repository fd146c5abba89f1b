"""Flat names of nested settings: the keys records, TOML specs and the CLI have always used.

A section dataclass (PenaltyConfig, OptimConfig) declares `FLAT_PREFIX` and `FLAT_RENAMES`; the flat
name of its field f is FLAT_RENAMES.get(f, FLAT_PREFIX + f) — e.g. PenaltyConfig.bn ↔ `reg_bn`,
PenaltyConfig.lam ↔ `lam`, OptimConfig.name ↔ `optimizer`.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def flat_names(cls: Any) -> dict[str, str]:
    """{field name: flat name} of a section dataclass, in field order."""
    renames: dict[str, str] = getattr(cls, "FLAT_RENAMES", {})
    prefix: str = getattr(cls, "FLAT_PREFIX", "")
    return {f.name: renames.get(f.name, prefix + f.name) for f in dataclasses.fields(cls)}


def flat_name(cls: Any, field: str) -> str:
    """The flat name of one field of a section dataclass."""
    return flat_names(cls)[field]
