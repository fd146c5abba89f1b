"""`described`: a config field with its CLI help, so that the option of a setting is made from the
setting itself (evaluations.base.with_settings), its default defined once in the dataclass.

The one maker of that metadata (help, cli, parse, show, limits, and `decls`: the option's declarations
when they are not `--<flat name>`, e.g. "--augment/--no-augment"); evaluations.base.setting calls it.
A field without `described` (e.g. TrainConfig.amp) has no CLI option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def described(
    default: Any = dataclasses.MISSING,
    help: str | None = None,
    *,
    cli: Any = None,
    parse: Callable[[Any], Any] | None = None,
    show: Any = None,
    decls: tuple[str, ...] | None = None,
    **limits: Any,
) -> Any:
    """A dataclass field (`default`; none: a required field, a required option) with
    its option's help (None: no help text), CLI type `cli` when it differs from the field's (an
    Enum of the allowed values for a `str` field; a text list for a tuple of floats), `parse` (text →
    value), `show` (the default as the option shows it), `decls` and Typer's limits (min, max)."""
    meta: dict[str, Any] = {"help": help, "cli": cli, "parse": parse, "show": show, "limits": limits}
    if decls is not None:
        meta["decls"] = decls
    return dataclasses.field(default=default, metadata=meta)
