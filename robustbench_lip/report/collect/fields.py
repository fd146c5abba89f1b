"""Reading values out of typed records: the value readers and the few rules that interpret a payload.

The structure of a record is checked once, when it is loaded (records.schema / records.payloads
`from_dict`); here only leaf values are read: `num`, `as_int`, `as_str`, `eps_text` turn a stored
value into a checked one, logging what they drop (a non-number is treated as missing, never 0).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from robustbench_lip.attacks.eps import format_eps, parse_eps_token
from robustbench_lip.attacks.registry import PROTOCOL_STEPS  # noqa: F401  (merge reads it here)
from robustbench_lip.errors import RlipError
from robustbench_lip.records.payloads import (
    DEFAULT_OBJECTIVE,
    AttackPayload,
    AttackResult,
    CleanMetrics,
    EpochMetrics,
    Fne,
)

logger = logging.getLogger(__name__)

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

# ---------------------------------------------------------------------------------------------------
# Value readers
# ---------------------------------------------------------------------------------------------------


def num(value: Any, where: str = "") -> float | None:
    """A finite float, or None (null, NaN, missing); a non-number is logged and treated as missing."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            logger.warning("ignoring boolean where a number was expected%s", f" ({where})" if where else "")
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    logger.warning("ignoring non-number %r%s", value, f" ({where})" if where else "")
    return None


def as_int(value: Any) -> int | None:
    """An integral finite number as int, else None (booleans and text are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if math.isfinite(value) and float(value).is_integer() else None


def as_str(value: Any) -> str | None:
    """The value when it is text, else None."""
    return value if isinstance(value, str) else None


def get(d: Any, key: str) -> Any:
    """`d[key]` of an envelope object (model, dataset, settings), None when missing or not an object."""
    return d.get(key) if isinstance(d, dict) else None


def first(values: Iterable[Any]) -> Any:
    """The first value that is not None (lazily: later values are not evaluated), else None."""
    for v in values:
        if v is not None:
            return v
    return None


def eps_text(value: Any, norm: str) -> str | None:
    """The ε / radius text of a stored key or value (attacks.eps.format_eps: `8/255`, `0.5`, `1`) from a
    number or a string; None when unparseable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return format_eps(float(value)) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        try:
            return format_eps(parse_eps_token(value, norm if norm in ("linf", "l2") else "l2"))
        except RlipError:
            return None
    return None


def created_time(value: Any) -> _dt.datetime:
    """A record's `created` time (UTC when it has no zone); the epoch when missing or unparseable."""
    if isinstance(value, str):
        try:
            t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)
    return _EPOCH


# ---------------------------------------------------------------------------------------------------
# Payload rules
# ---------------------------------------------------------------------------------------------------


def clean_value(metrics: CleanMetrics | EpochMetrics | None, key: str) -> Any:
    """One clean metric (accuracy / precision / miou) of a train record's `final` or another record's
    `clean`, unchecked; None when absent."""
    return getattr(metrics, key, None) if metrics is not None else None


def fne_verdict(fne: Fne | None) -> str | None:
    """Short FNE verdict of a certify record: violated | no violation found | certified | undefined |
    the record's own verdict text | None (not tested)."""
    if fne is None:
        return None
    verdict = fne.verdict
    if isinstance(verdict, str) and verdict:
        v = verdict.strip().lower()
        if v.startswith("undefined"):
            return "undefined"
        if v.startswith("not violated"):
            return "no violation found"
        return verdict
    if fne.violated is True:
        return "violated"
    if fne.violated is False:
        return "no violation found"
    return None


def attack_label(attack: str, rec: AttackPayload) -> str:
    """`pgd`, or `pgd(pixel)` / `pgd(cls)` when the record's objective is not its task's default."""
    objective, task = rec.objective, rec.task
    default = DEFAULT_OBJECTIVE.get(task) if isinstance(task, str) else None
    if attack == "worst" or not isinstance(objective, str) or default is None or objective == default:
        return attack
    return f"{attack}({objective})"


def result_key(rec: AttackPayload, i: int, res: AttackResult, path: Path) -> tuple[str, str, str] | None:
    """(attack label, norm, ε text) of result `i` of attack record `rec` (read from `path`); None
    (logged) when it has no attack / norm name or an unparseable ε."""
    attack, norm = res.attack, res.norm
    if not isinstance(attack, str) or not isinstance(norm, str):
        logger.warning("skipping result %d of %s: no attack/norm name", i, path)
        return None
    eps = eps_text(res.eps, norm)
    if eps is None:
        logger.warning("skipping result %d of %s: bad eps %r", i, path, res.eps)
        return None
    return attack_label(attack.lower(), rec), norm.lower(), eps


def result_values(res: AttackResult, where: str) -> dict[str, Any]:
    """steps, restarts, accuracy, precision, miou of one attack result (None when missing or not a
    number)."""
    return {
        "steps": as_int(res.steps),
        "restarts": as_int(res.restarts),
        "accuracy": num(res.accuracy, where),
        "precision": num(res.precision, where),
        "miou": num(res.miou, where),
    }
