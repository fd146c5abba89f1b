"""Reading one record: the only code of the report that knows the record layout.

Records are dicts (see `robustbench_lip.records`): the envelope (`kind`, `model`, `dataset`,
`settings`, `created`, `wall_s`) plus the kind's payload — train: `status`, `final`; certify:
`lipschitz`, `fne`, `certified_*`, `clean`; attack: `results`, `clean`, `task`, `objective`,
`levels`. Each accessor returns the raw value (unchecked unless it says otherwise); the value
readers (`num`, `as_int`, `eps_text`) turn raw values into checked ones, logging what they drop.
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
from robustbench_lip.records import KINDS

logger = logging.getLogger(__name__)

# Payload keys each record kind must have to be used.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("settings", "status"),
    "certify": ("lipschitz",),
    "attack": ("results",),
    "eval": (),
}
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def validate(rec: Any) -> str | None:
    """None when `rec` is a usable record, else the reason it is not."""
    if not isinstance(rec, dict):
        return f"not a JSON object ({type(rec).__name__})"
    kind = rec.get("kind")
    if kind is None:
        return "no 'kind' key"
    if kind not in KINDS:
        return f"unknown kind {kind!r}"
    missing = [k for k in REQUIRED_KEYS[kind] if k not in rec]
    if missing:
        return f"{kind} record without key(s) {', '.join(missing)}"
    if kind == "train" and not isinstance(rec["settings"], dict):
        return "train record whose 'settings' is not an object"
    if kind == "certify" and is_smoothed(rec):
        if not isinstance(rec.get("smoothing"), dict):
            return "smoothed certify record whose 'smoothing' is not an object"
    elif kind == "certify" and not isinstance(rec["lipschitz"], dict):
        return "certify record whose 'lipschitz' is not an object"
    if kind == "attack" and not isinstance(rec["results"], list):
        return "attack record whose 'results' is not a list"
    return None


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


def get(d: Any, *keys: str) -> Any:
    """`d[k1][k2]...`, None as soon as a level is missing or not a dict."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def first(values: Iterable[Any]) -> Any:
    """The first value that is not None (lazily: later values are not evaluated), else None."""
    for v in values:
        if v is not None:
            return v
    return None


def eps_text(value: Any, norm: str) -> str | None:
    """Canonical ε text (`8/255`, `0.5`) from a number or a string; None when unparseable."""
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


# ---------------------------------------------------------------------------------------------------
# Accessors
# ---------------------------------------------------------------------------------------------------


def record_kind(rec: dict[str, Any]) -> str:
    """train | certify | attack | eval (a validated record)."""
    return rec["kind"]


def record_created(rec: dict[str, Any]) -> _dt.datetime:
    """The record's `created` time (UTC when it has no zone); the epoch when missing or unparseable."""
    value = created_text(rec)
    if isinstance(value, str):
        try:
            t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)
    return _EPOCH


def record_arch(rec: dict[str, Any] | None) -> Any:
    """The envelope's model architecture (`model.arch`), unchecked."""
    return get(rec, "model", "arch")


def record_dataset(rec: dict[str, Any] | None) -> Any:
    """The envelope's dataset name (`dataset.name`), unchecked."""
    return get(rec, "dataset", "name")


def is_other_data(rec: dict[str, Any] | None) -> bool:
    """Whether an evaluation record was measured on data other than its run's own
    (`settings.other_data`, written by `--other-data`; evaluation.data_check)."""
    return get(rec, "settings", "other_data") is True


def train_settings(train: dict[str, Any] | None) -> dict[str, Any]:
    """A train record's settings (model, data, lam, reg_target, seed, epochs, ...); {} without one."""
    return train["settings"] if train else {}


def train_status(train: dict[str, Any] | None) -> str | None:
    """A train record's status (finished / running / failed), None when missing or not text."""
    return as_str(train.get("status")) if train else None


def clean_metrics(rec: dict[str, Any] | None) -> Any:
    """The clean-metrics object {accuracy, precision, miou}: `final` of a train record, `clean` of an
    attack or certify record; unchecked (may be None or not a dict)."""
    if rec is None:
        return None
    return get(rec, "final") if rec.get("kind") == "train" else rec.get("clean")


def clean_value(rec: dict[str, Any] | None, key: str) -> Any:
    """One clean metric (accuracy / precision / miou) of `clean_metrics(rec)`, unchecked."""
    return get(clean_metrics(rec), key)


def record_wall_s(rec: dict[str, Any]) -> Any:
    """The envelope's wall time in seconds, unchecked."""
    return rec.get("wall_s")


def created_text(rec: dict[str, Any]) -> Any:
    """The envelope's `created` value as stored (ISO-8601 text), unchecked."""
    return rec.get("created")


def lipschitz_bound(rec: dict[str, Any], op: str, key: str) -> Any:
    """`lipschitz.<op>.<key>` of a certify record (op "A" or "R"; key upper / lower / gap), unchecked."""
    return get(rec, "lipschitz", op, key)


def fne_verdict(rec: dict[str, Any]) -> str | None:
    """Short FNE verdict of a certify record: violated | no violation found | certified | undefined |
    the record's own verdict text | None (not tested)."""
    fne = rec.get("fne")
    if not isinstance(fne, dict):
        return None
    verdict = fne.get("verdict")
    if isinstance(verdict, str) and verdict:
        v = verdict.strip().lower()
        if v.startswith("undefined"):
            return "undefined"
        if v.startswith("not violated"):
            return "no violation found"
        return verdict
    violated = fne.get("violated")
    if violated is True:
        return "violated"
    if violated is False:
        return "no violation found"
    return None


def is_smoothed(rec: dict[str, Any]) -> bool:
    """Whether a certify record is a randomized-smoothing certificate (`certificate` "smoothed"),
    whose numbers are probabilistic and never go into the Lipschitz columns."""
    return rec.get("certificate") == "smoothed"


def smoothing_part(rec: dict[str, Any], task: str) -> dict[str, Any]:
    """`smoothing.<task>` of a smoothed certify record (classification / segmentation); {} when absent."""
    part = get(rec, "smoothing", task)
    return part if isinstance(part, dict) else {}


def smoothing_sigma(rec: dict[str, Any]) -> Any:
    """σ of a smoothed certify record (`smoothing.sigma`), unchecked."""
    return get(rec, "smoothing", "sigma")


def certified_values(rec: dict[str, Any], payload_key: str) -> dict[str, Any]:
    """A certify record's `{ε text: value}` for one certified metric (see CERTIFIED); {} when absent."""
    values = rec.get(payload_key)
    return values if isinstance(values, dict) else {}


def record_levels(rec: dict[str, Any]) -> str | None:
    """Level of an attack record's accuracy / precision: "image", "pixel", or None when not stated."""
    level = get(rec, "levels", "accuracy")
    if level in ("image", "pixel"):
        return level
    task = rec.get("task")
    return {"classifier": "image", "segmenter": "pixel"}.get(task) if isinstance(task, str) else None


def attack_label(attack: str, rec: dict[str, Any]) -> str:
    """`pgd`, or `pgd(pixel)` / `pgd(cls)` when the record's objective is not its task's default."""
    objective, task = rec.get("objective"), rec.get("task")
    default = {"classifier": "cls", "segmenter": "pixel"}.get(task) if isinstance(task, str) else None
    if attack == "worst" or not isinstance(objective, str) or default is None or objective == default:
        return attack
    return f"{attack}({objective})"


def attack_results(rec: dict[str, Any]) -> list[Any]:
    """An attack record's result entries ({attack, norm, eps, steps, accuracy, precision, miou})."""
    return rec["results"]


def result_key(rec: dict[str, Any], i: int, res: Any, path: Path) -> tuple[str, str, str] | None:
    """(attack label, norm, ε text) of result `i` of attack record `rec` (read from `path`); None
    (logged) when it has no attack / norm name or an unparseable ε."""
    attack, norm = get(res, "attack"), get(res, "norm")
    if not isinstance(attack, str) or not isinstance(norm, str):
        logger.warning("skipping result %d of %s: no attack/norm name", i, path)
        return None
    eps = eps_text(res.get("eps"), norm)
    if eps is None:
        logger.warning("skipping result %d of %s: bad eps %r", i, path, res.get("eps"))
        return None
    return attack_label(attack.lower(), rec), norm.lower(), eps


def record_n(rec: dict[str, Any]) -> int | None:
    """The number of images an attack record attacked (the first n of the test split); None if unsaid."""
    return as_int(rec.get("n"))


def result_protocol(rec: dict[str, Any], res: dict[str, Any]) -> str | None:
    """The protocol (`--preset`) of one attack result: its own `protocol`, else its record's; None."""
    return as_str(res.get("protocol")) or as_str(rec.get("protocol"))


def result_values(res: dict[str, Any], where: str) -> dict[str, Any]:
    """steps, restarts, accuracy, precision, miou of one attack result (None when missing or not a
    number)."""
    return {
        "steps": as_int(res.get("steps")),
        "restarts": as_int(res.get("restarts")),
        "accuracy": num(res.get("accuracy"), where),
        "precision": num(res.get("precision"), where),
        "miou": num(res.get("miou"), where),
    }
