"""Records → leaderboard: one row per model run, written as Markdown, CSV, JSON, HTML and PNG plots.

Every `RUN/results/*.json` record under a runs folder is read (a run is any folder holding a
`results/` folder, at any depth). Files that are not valid records — invalid JSON, no `kind`, an
unknown kind, missing payload keys — are skipped with a logged warning and listed in
`Leaderboard.skipped`; nothing here crashes on a foreign file.

Merging rules, per run:
- identity (arch, dataset, λ, penalty target, seed, epochs, status, training time) comes from the
  train record (`settings`, `model`, `wall_s`); without one, from the other records' envelope;
- clean metrics come from the train record's `final` (image-label accuracy / macro precision, mask
  mIoU on the test split); a metric it lacks falls back to the newest attack record's `clean`, then
  the newest certify record's `clean` — accuracy / precision only from image-level records;
- attack columns are `<attack>_<norm>@<ε> <metric>`; metric is `acc` / `prec` when the record scores
  image labels and `pixel acc` / `pixel prec` when it scores pixels (segmenters; the record's
  `levels`), plus `mIoU`; an attack run with a non-default objective is named `<attack>(<objective>)`;
- several records of one kind (different settings): for every value — a scalar such as L(A) upper,
  a per-ε certified value, an (attack, norm, ε, level) result — the newest record (`created`, then
  file name) that has it wins; values only older records have are kept (union);
- `worst_<norm>@<ε> <metric>` = the smallest value over all attack results at that norm and ε,
  including the records' own per-image `worst` entries (so it is ≤ every single attack's value);
- dynamic columns (attack / certified per ε) that are empty for every run are dropped; the fixed
  columns are always present. A missing value is NaN / None (an empty cell), never 0.

The slope of log10 L(A) against log10 λ (the seed's relationship) is fitted by least squares over the
runs with λ > 0 and L > 0, per (dataset, arch, penalty target), separately for the certified upper and
the measured lower bound; fewer than two distinct λ values give a null slope.

Library code only returns values and logs; the CLI (`rlip leaderboard`) prints.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robustbench_lip.attacks.eps import format_eps, parse_eps_token
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from robustbench_lip.records import KINDS, RESULTS_DIR, now_iso

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("md", "csv", "json", "html")
REPORT_STEM = "leaderboard"

# Payload keys each record kind must have to be used.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("settings", "status"),
    "certify": ("lipschitz",),
    "attack": ("results",),
    "eval": (),
}

# ---------------------------------------------------------------------------------------------------
# Columns
# ---------------------------------------------------------------------------------------------------

LAM = "λ"
ACC, PREC, MIOU = "acc", "precision", "mIoU"
LA_UP, LA_LO, LA_GAP = "L(A) upper", "L(A) lower", "L(A) gap"
LR_LO, LR_UP = "L(R) lower", "L(R) upper"
FNE = "FNE"
TRAIN_S = "train s"

#: The fixed columns, always present, in order, with a one-line explanation each.
FIXED_COLUMNS: dict[str, str] = {
    "run": "Run folder, relative to the runs folder.",
    "arch": "Model architecture (registry name).",
    "dataset": "Dataset the model was trained on.",
    LAM: "Lipschitz-penalty weight λ used in training (0 = no penalty).",
    "target": "What the penalty acted on: A (the model) or R = 2A − I (its reflection).",
    "seed": "Training seed.",
    "epochs": "Training epochs asked for.",
    "status": "Training status from the train record (finished / running / failed).",
    ACC: "Clean accuracy on the test split (image labels).",
    PREC: "Clean macro precision on the test split (mean over classes of TP / (TP + FP)).",
    MIOU: "Clean mean IoU of the predicted masks on the test split (datasets with masks only).",
    LA_UP: "Certified upper bound on the Lipschitz constant of A (ℓ2 → ℓ2); provably ≥ the true L(A).",
    LA_LO: "Measured lower bound on L(A): the best local Jacobian norm / Lipschitz quotient found (power "
    "iteration, search, pairs) on sampled inputs; an estimate, ≤ the true L(A) on [0, 1]^d.",
    LA_GAP: "L(A) upper / L(A) lower: how far apart the two bounds are (1 = tight).",
    LR_LO: "Measured lower bound on L(R), R = 2A − I (only when A's output has its input's shape).",
    LR_UP: "Certified upper bound on L(R), R = 2A − I: |2α − 1| + 2·Lip(g) for A = α·x + g(x), the identity "
    "coefficient α carried through the graph (α = 0 gives the triangle bound 2·L(A) upper + 1).",
    FNE: "Firm non-expansiveness test of A on pairs (v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖², FNE ⇔ v ≥ 0): "
    "'violated' = a pair with v < 0 was found (proof A is not FNE); 'no violation found' = none on the "
    "tested pairs (not a certificate); 'certified' = L(R) upper ≤ 1; 'undefined' = output shape ≠ input.",
    TRAIN_S: "Training wall time in seconds (train record).",
}

#: Documentation of the dynamic (per-attack / per-ε) column patterns.
PATTERN_DOCS: dict[str, str] = {
    "<attack>_<norm>@<ε> acc": "Image-label accuracy under that attack at budget ε (pixel units, ℓ∞ or ℓ2) "
    "on the attacked test images: an empirical upper estimate of robust accuracy.",
    "<attack>_<norm>@<ε> prec": "Image-label macro precision under that attack at budget ε.",
    "<attack>_<norm>@<ε> pixel acc": "Pixel accuracy of the predicted mask under that attack (segmenters: "
    "their attack records score pixels, so they get pixel columns).",
    "<attack>_<norm>@<ε> pixel prec": "Pixel macro precision of the predicted mask under that attack.",
    "<attack>_<norm>@<ε> mIoU": "mIoU of the predicted masks under that attack at budget ε.",
    "<attack>(<objective>)_<norm>@<ε> <metric>": "As above, for an attack run with a loss other than the "
    "model's default (cls = image-label cross-entropy for classifiers, pixel = pixel cross-entropy).",
    "worst_<norm>@<ε> <metric>": "Smallest value of the metric over every attack run at that norm and ε "
    "(includes the attack record's per-image worst case when present).",
    "cert acc@<ε>": "Certified accuracy at ℓ2 radius ε (pixel units): fraction of test images classified "
    "correctly with certified radius margin / (√2·L(A) upper) > ε (provable).",
    "cert pixel acc@<ε>": "Certified pixel accuracy at ℓ2 radius ε: pixels correct and provably stable "
    "within ε (segmenters; from L(A) upper).",
    "cert mIoU@<ε>": "Certified mIoU at ℓ2 radius ε: mIoU with every pixel that is not provably stable "
    "counted as wrong (segmenters; from L(A) upper).",
}

#: Every column name or pattern → one-line explanation (for the README).
COLUMN_DOCS: dict[str, str] = {**FIXED_COLUMNS, **PATTERN_DOCS}

_METRICS: tuple[tuple[str, str], ...] = (("accuracy", "acc"), ("precision", "prec"), ("miou", "mIoU"))
_METRIC_ORDER: tuple[str, ...] = ("acc", "prec", "pixel acc", "pixel prec", "mIoU")
_METRIC_WHAT = {
    "acc": "Accuracy",
    "prec": "Macro precision",
    "pixel acc": "Pixel accuracy",
    "pixel prec": "Pixel macro precision",
    "mIoU": "mIoU",
}
_ATTACK_COL = re.compile(
    r"^(?P<attack>[^@\s]+)_(?P<norm>linf|l2|[a-z0-9]+)@(?P<eps>\S+) "
    r"(?P<metric>acc|prec|pixel acc|pixel prec|mIoU)$"
)
_CERT_COL = re.compile(r"^cert (?P<metric>acc|pixel acc|mIoU)@(?P<eps>\S+)$")

_NUMERIC_FIXED = (LAM, ACC, PREC, MIOU, LA_UP, LA_LO, LA_GAP, LR_LO, LR_UP, TRAIN_S)
_INT_FIXED = ("seed", "epochs")
_SORT_ALIASES = {"lam": LAM, "lambda": LAM, "accuracy": ACC, "miou": MIOU, "prec": PREC}


def column_doc(name: str) -> str:
    """One-line explanation of a column (fixed or dynamic)."""
    if name in FIXED_COLUMNS:
        return FIXED_COLUMNS[name]
    m = _ATTACK_COL.match(name)
    if m:
        what = _METRIC_WHAT[m["metric"]]
        eps = f"{m['norm']} budget ε = {m['eps']}"
        if m["attack"] == "worst":
            return f"{what} under the worst attack at {eps} (smallest value over all attacks run)."
        return f"{what} under {m['attack']} at {eps} (empirical, on the attacked test images)."
    m = _CERT_COL.match(name)
    if m:
        what = {"acc": "accuracy", "pixel acc": "pixel accuracy", "mIoU": "mIoU"}[m["metric"]]
        return (
            f"Certified {what} at ℓ2 radius ε = {m['eps']} (provable, from the certified L(A) upper bound)."
        )
    return ""


def column_docs(columns: Iterable[str]) -> dict[str, str]:
    """`{column: one-line explanation}` for the given columns."""
    return {c: column_doc(c) for c in columns}


def _pattern_of(name: str) -> str | None:
    m = _CERT_COL.match(name)
    if m:
        return f"cert {m['metric']}@<ε>"
    m = _ATTACK_COL.match(name)
    if not m:
        return None
    if m["attack"] == "worst":
        return "worst_<norm>@<ε> <metric>"
    if "(" in m["attack"]:
        return "<attack>(<objective>)_<norm>@<ε> <metric>"
    return f"<attack>_<norm>@<ε> {m['metric']}"


def legend(columns: Iterable[str]) -> dict[str, str]:
    """Compact docs for a report: each fixed column present, then each dynamic column pattern present
    (e.g. `<attack>_<norm>@<ε> acc`) once, in the order of PATTERN_DOCS."""
    cols = list(columns)
    out = {c: FIXED_COLUMNS[c] for c in cols if c in FIXED_COLUMNS}
    present = {_pattern_of(c) for c in cols}
    out.update({p: d for p, d in PATTERN_DOCS.items() if p in present})
    return out


# ---------------------------------------------------------------------------------------------------
# Reading records
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedFile:
    """A file under a results/ folder that was not used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadedRecord:
    """A valid record and where it came from."""

    path: Path
    run: str
    kind: str
    record: dict[str, Any]

    @property
    def created(self) -> _dt.datetime:
        return _parse_created(self.record.get("created"))


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _parse_created(value: Any) -> _dt.datetime:
    if isinstance(value, str):
        try:
            t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)
    return _EPOCH


def _result_dirs(runs_dir: Path) -> list[Path]:
    """Every `results/` folder under runs_dir (runs_dir itself may be a run), sorted."""
    found: list[Path] = []
    for root, dirs, _files in os.walk(runs_dir):
        dirs.sort()
        if RESULTS_DIR in dirs:
            found.append(Path(root) / RESULTS_DIR)
        # don't descend into results/ or checkpoints/, nor hidden folders
        dirs[:] = [d for d in dirs if d not in (RESULTS_DIR, "checkpoints") and not d.startswith(".")]
    return sorted(found)


def _validate(rec: Any) -> str | None:
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
    if kind == "certify" and not isinstance(rec["lipschitz"], dict):
        return "certify record whose 'lipschitz' is not an object"
    if kind == "attack" and not isinstance(rec["results"], list):
        return "attack record whose 'results' is not a list"
    return None


def load_records(runs_dir: str | os.PathLike[str]) -> tuple[list[LoadedRecord], list[SkippedFile]]:
    """Read every `results/*.json` under `runs_dir`.

    Returns (valid records sorted by run then file name, skipped files with reasons). Each skipped
    file is also logged as a warning. A missing `runs_dir` is an RlipError.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise RlipError(f"runs folder not found: {root}")
    records: list[LoadedRecord] = []
    skipped: list[SkippedFile] = []
    for results in _result_dirs(root):
        run_dir = results.parent
        run = run_dir.relative_to(root).as_posix() if run_dir != root else root.resolve().name
        for path in sorted(results.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                reason = f"unreadable: {e}"
            except json.JSONDecodeError as e:
                reason = f"invalid JSON ({e.msg} at line {e.lineno})"
            else:
                reason = _validate(rec)
            if reason is not None:
                logger.warning("skipping %s: %s", path, reason)
                skipped.append(SkippedFile(path, reason))
                continue
            records.append(LoadedRecord(path, run, rec["kind"], rec))
    return records, skipped


# ---------------------------------------------------------------------------------------------------
# Records → rows
# ---------------------------------------------------------------------------------------------------


def _num(value: Any, where: str = "") -> float | None:
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


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if math.isfinite(value) and float(value).is_integer() else None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _eps_text(value: Any, norm: str) -> str | None:
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


def _eps_value(text: str) -> float:
    try:
        return parse_eps_token(text, "l2")
    except RlipError:
        return math.inf


def _newest_first(recs: Sequence[LoadedRecord]) -> list[LoadedRecord]:
    return sorted(recs, key=lambda r: (r.created, r.path.name), reverse=True)


def _first(values: Iterable[Any]) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _fne_verdict(fne: Any) -> str | None:
    """Short FNE verdict: violated | no violation found | certified | undefined | None (not tested)."""
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


def _record_levels(rec: dict[str, Any]) -> str | None:
    """Level of an attack record's accuracy / precision: "image", "pixel", or None when not stated."""
    level = _get(rec, "levels", "accuracy")
    if level in ("image", "pixel"):
        return level
    task = rec.get("task")
    return {"classifier": "image", "segmenter": "pixel"}.get(task) if isinstance(task, str) else None


def _attack_label(attack: str, rec: dict[str, Any]) -> str:
    """`pgd`, or `pgd(pixel)` / `pgd(cls)` when the record's objective is not its task's default."""
    objective, task = rec.get("objective"), rec.get("task")
    default = {"classifier": "cls", "segmenter": "pixel"}.get(task) if isinstance(task, str) else None
    if attack == "worst" or not isinstance(objective, str) or default is None or objective == default:
        return attack
    return f"{attack}({objective})"


def _metric_name(short: str, level: str | None) -> str:
    return f"pixel {short}" if level == "pixel" and short in ("acc", "prec") else short


def _attack_rows(run: str, attacks: Sequence[LoadedRecord]) -> list[dict[str, Any]]:
    """Long-format attack results of one run, deduplicated per (attack, norm, ε, level): newest wins."""
    seen: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
    for lr in _newest_first(attacks):
        level = _record_levels(lr.record)
        for i, res in enumerate(lr.record["results"]):
            attack, norm = _get(res, "attack"), _get(res, "norm")
            if not isinstance(attack, str) or not isinstance(norm, str):
                logger.warning("skipping result %d of %s: no attack/norm name", i, lr.path)
                continue
            eps = _eps_text(res.get("eps"), norm)
            if eps is None:
                logger.warning("skipping result %d of %s: bad eps %r", i, lr.path, res.get("eps"))
                continue
            key = (_attack_label(attack.lower(), lr.record), norm.lower(), eps, level)
            if key in seen:
                continue
            where = f"{lr.path.name} result {i}"
            seen[key] = {
                "run": run,
                "attack": key[0],
                "norm": key[1],
                "eps": _eps_value(eps),
                "eps_text": eps,
                "level": level,
                "steps": _int(res.get("steps")),
                "accuracy": _num(res.get("accuracy"), where),
                "precision": _num(res.get("precision"), where),
                "miou": _num(res.get("miou"), where),
                "created": lr.record.get("created"),
                "file": lr.path.name,
            }
    return list(seen.values())


def _run_row(run: str, recs: Sequence[LoadedRecord]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One leaderboard row and the run's long-format attack results."""
    by_kind: dict[str, list[LoadedRecord]] = {k: [] for k in KINDS}
    for lr in recs:
        by_kind[lr.kind].append(lr)
    trains = _newest_first(by_kind["train"])
    certs = _newest_first(by_kind["certify"])
    attacks = _newest_first(by_kind["attack"])
    newest_all = _newest_first(recs)
    train = trains[0].record if trains else None
    if len(trains) > 1:
        logger.warning("run %s has %d train records; using the newest (%s)", run, len(trains), trains[0].path)

    settings = train["settings"] if train else {}
    row: dict[str, Any] = {"run": run}
    row["arch"] = _first([settings.get("model")] + [_get(lr.record, "model", "arch") for lr in newest_all])
    row["dataset"] = _first(
        [settings.get("data"), _get(train, "dataset", "name")]
        + [_get(lr.record, "dataset", "name") for lr in newest_all]
    )
    for k in ("arch", "dataset"):
        row[k] = row[k] if isinstance(row[k], str) else None
    row[LAM] = _num(settings.get("lam"), f"{run} settings.lam")
    target = settings.get("reg_target")
    row["target"] = target if isinstance(target, str) else None
    row["seed"] = _int(settings.get("seed"))
    row["epochs"] = _int(settings.get("epochs"))
    status = train.get("status") if train else None
    row["status"] = status if isinstance(status, str) else None

    # clean metrics: train final, then newest attack clean, then newest certify clean; accuracy and
    # precision only from records whose level is image labels (a segmenter's attack record is pixel-level)
    for key, col in (("accuracy", ACC), ("precision", PREC), ("miou", MIOU)):
        sources = [_get(train, "final")] + [
            lr.record.get("clean")
            for lr in attacks + certs
            if key == "miou" or _record_levels(lr.record) != "pixel"
        ]
        row[col] = _first(_num(_get(s, key), f"{run} clean {key}") for s in sources)

    # Lipschitz bounds: per value, the newest certify record that has it
    def cert_value(*keys: str) -> float | None:
        return _first(_num(_get(lr.record, *keys), f"{lr.path.name} {'.'.join(keys)}") for lr in certs)

    row[LA_UP] = cert_value("lipschitz", "A", "upper")
    row[LA_LO] = cert_value("lipschitz", "A", "lower")
    gap = cert_value("lipschitz", "A", "gap")
    if gap is None and row[LA_UP] is not None and row[LA_LO] is not None and row[LA_LO] > 0:
        gap = row[LA_UP] / row[LA_LO]
    row[LA_GAP] = gap
    row[LR_LO] = cert_value("lipschitz", "R", "lower")
    row[LR_UP] = cert_value("lipschitz", "R", "upper")
    row[FNE] = _first(_fne_verdict(lr.record.get("fne")) for lr in certs)

    # certified accuracy / mIoU per ε (union over records, newest wins per ε)
    for payload_key, metric in (
        ("certified_accuracy", "acc"),
        ("certified_pixel_accuracy", "pixel acc"),
        ("certified_miou", "mIoU"),
    ):
        for lr in reversed(certs):  # oldest first, newer overwrite
            values = lr.record.get(payload_key)
            if not isinstance(values, dict):
                continue
            for eps_key, v in values.items():
                eps = _eps_text(eps_key, "l2")
                if eps is None:
                    logger.warning("skipping %s[%r] of %s: bad eps", payload_key, eps_key, lr.path)
                    continue
                val = _num(v, f"{lr.path.name} {payload_key}[{eps_key}]")
                if val is not None:
                    row[f"cert {metric}@{eps}"] = val

    # attacks: per (attack, norm, ε), then the worst case over attacks
    long_rows = _attack_rows(run, attacks)
    worst: dict[tuple[str, str], dict[str, float]] = {}
    for r in long_rows:
        name = f"{r['attack']}_{r['norm']}@{r['eps_text']}"
        w = worst.setdefault((r["norm"], r["eps_text"]), {})
        for key, short in _METRICS:
            v = r[key]
            if v is None:
                continue
            metric = _metric_name(short, r["level"])
            if r["attack"] != "worst":
                row[f"{name} {metric}"] = v
            w[metric] = min(v, w.get(metric, math.inf))
    for (norm, eps), values in worst.items():
        for short, v in values.items():
            row[f"worst_{norm}@{eps} {short}"] = v

    row[TRAIN_S] = _num(train.get("wall_s"), f"{run} train wall_s") if train else None
    return row, long_rows


def _dynamic_sort_key(col: str) -> tuple[Any, ...]:
    m = _CERT_COL.match(col)
    if m:
        return (0, "cert", ("acc", "pixel acc", "mIoU").index(m["metric"]), _eps_value(m["eps"]), 0)
    m = _ATTACK_COL.match(col)
    if m:
        worst = m["attack"] == "worst"
        return (
            1 + worst,
            m["norm"],
            m["attack"],
            _eps_value(m["eps"]),
            _METRIC_ORDER.index(m["metric"]),
        )
    return (3, col, "", 0.0, 0)


def records_to_frames(records: Sequence[LoadedRecord]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leaderboard table, long attack table) from loaded records.

    The table has one row per run: the FIXED_COLUMNS, then `cert …@ε` columns, then per-attack and
    `worst_…` columns, with the runs in (dataset, arch, λ, seed, run) order. The long attack table has
    the columns run, attack, norm, eps (float), eps_text, steps, accuracy, precision, miou, created,
    file. Missing numbers are NaN; missing text is None.
    """
    by_run: dict[str, list[LoadedRecord]] = {}
    for lr in records:
        by_run.setdefault(lr.run, []).append(lr)
    rows: list[dict[str, Any]] = []
    longs: list[dict[str, Any]] = []
    for run in sorted(by_run):
        row, long_rows = _run_row(run, by_run[run])
        rows.append(row)
        longs.extend(long_rows)
    dynamic = sorted({c for r in rows for c in r if c not in FIXED_COLUMNS}, key=_dynamic_sort_key)
    columns = list(FIXED_COLUMNS) + dynamic
    table = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c in _INT_FIXED:
            table[c] = table[c].astype("Int64")
        elif c in _NUMERIC_FIXED or c in dynamic:
            table[c] = pd.to_numeric(table[c], errors="coerce").astype("float64")
        else:
            table[c] = table[c].astype(object).where(table[c].notna(), None)
    if not table.empty:
        table = table.sort_values(
            ["dataset", "arch", LAM, "seed", "run"], na_position="last", kind="stable"
        ).reset_index(drop=True)
    long_cols = [
        "run",
        "attack",
        "norm",
        "eps",
        "eps_text",
        "level",
        "steps",
        "accuracy",
        "precision",
        "miou",
        "created",
        "file",
    ]
    attacks = pd.DataFrame(longs, columns=long_cols)
    for c in ("eps", "accuracy", "precision", "miou"):
        attacks[c] = pd.to_numeric(attacks[c], errors="coerce").astype("float64")
    attacks["steps"] = attacks["steps"].astype("Int64")
    return table, attacks


def attack_clean_metrics(records: Sequence[LoadedRecord]) -> dict[str, dict[str, Any]]:
    """{run: {accuracy, precision, miou, level}} from the newest attack record of each run that has a
    `clean` object (the unattacked metrics on the very images that were attacked; level "image" or
    "pixel" for accuracy / precision, None when the record does not say)."""
    out: dict[str, dict[str, Any]] = {}
    for lr in _newest_first([r for r in records if r.kind == "attack"]):
        clean = lr.record.get("clean")
        if lr.run not in out and isinstance(clean, dict):
            out[lr.run] = {
                k: _num(clean.get(k), f"{lr.path.name} clean.{k}") for k in ("accuracy", "precision", "miou")
            }
            out[lr.run]["level"] = _record_levels(lr.record)
    return out


# ---------------------------------------------------------------------------------------------------
# Slopes
# ---------------------------------------------------------------------------------------------------


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
    return None if _is_missing(v) else v


def _groups(table: pd.DataFrame) -> list[tuple[tuple[Any, Any, Any], pd.DataFrame]]:
    """Rows grouped by (dataset, arch, target), in first-seen order; missing values group together."""
    keys = [tuple(_key(table.at[i, c]) for c in ("dataset", "arch", "target")) for i in table.index]
    order = list(dict.fromkeys(keys))
    return [(k, table[[kk == k for kk in keys]]) for k in order]


def fit_slopes(table: pd.DataFrame) -> list[SlopeFit]:
    """Slope of log10 L(A) against log10 λ per (dataset, arch, penalty target), for the upper and
    the lower bound. Groups with no λ > 0 run holding that bound are left out; groups with one
    such λ get slope None."""
    fits: list[SlopeFit] = []
    for (dataset, arch, target), g in _groups(table):
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


# ---------------------------------------------------------------------------------------------------
# The leaderboard
# ---------------------------------------------------------------------------------------------------


@dataclass
class Leaderboard:
    """A built leaderboard.

    table: one row per run (see `column_docs(table.columns)`); attacks: long-format attack results
    (one row per run × attack × norm × ε); slopes: the L(A)–λ fits; skipped: files not used;
    runs_dir: where the records were read; attack_clean: {run: clean metrics of the newest attack
    record}; generated: ISO time of the build.
    """

    table: pd.DataFrame
    attacks: pd.DataFrame
    slopes: list[SlopeFit]
    skipped: list[SkippedFile]
    runs_dir: Path
    attack_clean: dict[str, dict[str, Any]] = field(default_factory=dict)
    generated: str = field(default_factory=now_iso)

    @property
    def columns(self) -> list[str]:
        return list(self.table.columns)

    def __len__(self) -> int:
        return len(self.table)


def resolve_column(table: pd.DataFrame, name: str) -> str:
    """The table column called `name` (exact, then case-insensitive, then aliases lam/lambda → λ);
    an unknown name is an RlipError listing the valid ones."""
    cols = list(table.columns)
    if name in cols:
        return name
    low = {c.lower(): c for c in cols}
    if name.lower() in low:
        return low[name.lower()]
    alias = _SORT_ALIASES.get(name.lower())
    if alias in cols:
        return alias
    raise RlipError(f"unknown column {name!r}; valid columns: {', '.join(cols)}")


def sort_table(table: pd.DataFrame, column: str, descending: bool = False) -> pd.DataFrame:
    """The table sorted by `column` (see `resolve_column`), empty cells last, ties in current order."""
    col = resolve_column(table, column)
    return table.sort_values(col, ascending=not descending, na_position="last", kind="stable").reset_index(
        drop=True
    )


def build_leaderboard(
    runs_dir: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    sort: str | None = None,
    descending: bool = False,
) -> Leaderboard:
    """Read the records under `runs_dir` and build the leaderboard.

    dataset: keep only the runs on that dataset (case-insensitive; an unknown name with runs present
    is an RlipError listing the datasets found). sort: a column name (see `resolve_column`);
    default order is (dataset, arch, λ, seed, run). Slopes are fitted on the kept runs. An empty
    leaderboard (no records) is returned as such — the caller decides what that means.
    """
    records, skipped = load_records(runs_dir)
    table, attacks = records_to_frames(records)
    if dataset is not None and not table.empty:
        found = sorted({d for d in table["dataset"] if isinstance(d, str)})
        keep = table["dataset"].map(lambda d: isinstance(d, str) and d.lower() == dataset.lower())
        if not keep.any():
            raise RlipError(f"no runs on dataset {dataset!r}; datasets found: {', '.join(found) or 'none'}")
        table = table[keep.astype(bool)].reset_index(drop=True)
        attacks = attacks[attacks["run"].isin(set(table["run"]))].reset_index(drop=True)
        # drop dynamic columns left empty by the filter
        empty = [c for c in table.columns if c not in FIXED_COLUMNS and table[c].isna().all()]
        table = table.drop(columns=empty)
    if sort is not None:
        table = sort_table(table, sort, descending)
    clean = {run: v for run, v in attack_clean_metrics(records).items() if run in set(table["run"])}
    return Leaderboard(
        table=table,
        attacks=attacks,
        slopes=fit_slopes(table),
        skipped=skipped,
        runs_dir=Path(runs_dir),
        attack_clean=clean,
    )


#: Columns shown in narrow views (terminal), when present.
KEY_COLUMNS: tuple[str, ...] = (
    "run",
    "arch",
    "dataset",
    LAM,
    "target",
    ACC,
    PREC,
    MIOU,
    LA_UP,
    LA_LO,
    LR_LO,
    FNE,
)


def _worst_column(columns: Iterable[str], metric: str) -> str | None:
    """The `worst_<norm>@<ε> <metric>` column with the largest ε, ℓ∞ preferred over ℓ2; None if none."""
    for norm in ("linf", "l2"):
        cands = [
            (_eps_value(m["eps"]), c)
            for c in columns
            if (m := _ATTACK_COL.match(c))
            and m["attack"] == "worst"
            and m["norm"] == norm
            and m["metric"] == metric
        ]
        if cands:
            return max(cands)[1]
    return None


def key_columns(table: pd.DataFrame) -> list[str]:
    """A narrow selection of columns: KEY_COLUMNS plus the worst-case attacked accuracy and mIoU, each at
    the largest ℓ∞ (else ℓ2) budget where it was measured, as present in `table`."""
    cols = [c for c in KEY_COLUMNS if c in table.columns]
    for metric in ("acc", "mIoU"):
        c = _worst_column(table.columns, metric)
        if c is not None:
            cols.append(c)
    return cols


# ---------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def _py(v: Any) -> Any:
    """A JSON-friendly Python value: missing → None, numpy scalars → int/float."""
    if _is_missing(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def format_cell(column: str, v: Any) -> str:
    """Text of one cell for Markdown / HTML / terminal: empty when missing, λ as `1e-06`, seconds with
    one decimal, other numbers to 4 significant digits."""
    v = _py(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if column == LAM:
            return "0" if v == 0 else f"{v:.3g}"
        if column == TRAIN_S:
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def table_rows(table: pd.DataFrame, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Formatted cell texts, row by row (see `format_cell`)."""
    cols = list(columns) if columns is not None else list(table.columns)
    return [[format_cell(c, table.at[i, c]) for c in cols] for i in table.index]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


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


SLOPE_HEADER = ("arch", "dataset", "target", "bound", "slope", "r²", "n", "λ range")


def render_markdown(lb: Leaderboard, plots: Sequence[str] = ()) -> str:
    """The Markdown report: a summary table (`key_columns`), the full table, the L(A)–λ slopes, plot
    links (file names, relative to the report) and the column docs."""
    parts = [
        "# Leaderboard",
        "",
        f"{len(lb)} run(s) from `{lb.runs_dir}`, generated {lb.generated}. Empty cell = not evaluated.",
        "",
        "## Summary",
        "",
        _md_table(key_columns(lb.table), table_rows(lb.table, key_columns(lb.table))),
        "",
        "## All columns",
        "",
        _md_table(lb.columns, table_rows(lb.table)),
        "",
        "## Slope of log10 L(A) against log10 λ (λ > 0, least squares)",
        "",
    ]
    if lb.slopes:
        parts += [_md_table(SLOPE_HEADER, slopes_rows(lb.slopes)), ""]
    else:
        parts += ["No group has runs with λ > 0 and a certified L(A).", ""]
    if plots:
        parts += ["## Plots", ""]
        parts += [f"![{PLOT_TITLES.get(p, p)}]({p})" for p in plots] + [""]
    parts += ["## Column meanings", ""]
    parts += [f"- `{c}`: {d}" for c, d in legend(lb.columns).items()] + [""]
    return "\n".join(parts)


def render_csv(lb: Leaderboard) -> str:
    """The table as CSV (missing → empty field, full precision)."""
    return lb.table.to_csv(index=False, na_rep="", lineterminator="\n")


def to_json_obj(lb: Leaderboard) -> dict[str, Any]:
    """`{"generated", "runs_dir", "columns": [names], "column_docs": {name: doc}, "rows": [{col: value}],
    "slopes": [SlopeFit.to_dict()], "skipped": [{"path", "reason"}]}` — missing values are null."""
    cols = lb.columns
    rows = [{c: _py(lb.table.at[i, c]) for c in cols} for i in lb.table.index]
    return {
        "generated": lb.generated,
        "runs_dir": str(lb.runs_dir),
        "columns": cols,
        "column_docs": column_docs(cols),
        "rows": rows,
        "slopes": [s.to_dict() for s in lb.slopes],
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in lb.skipped],
    }


_HTML_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 6px;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f0f0f0;position:sticky;top:0}
table.sortable thead th{cursor:pointer}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}
.wrap{overflow-x:auto;max-width:100%}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
dt{font-family:monospace;font-weight:bold}dd{margin:0 0 .4em 1.5em}
.note{color:#555}
"""

_HTML_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function(th, col){
    th.addEventListener('click', function(){
      var asc = !th.classList.contains('asc');
      Array.prototype.forEach.call(heads, function(h){h.classList.remove('asc','desc');});
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function(a, b){
        var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
        if (x === '' && y === '') return 0;
        if (x === '') return 1;
        if (y === '') return -1;
        var nx = parseFloat(x), ny = parseFloat(y), r;
        if (!isNaN(nx) && !isNaN(ny)) r = nx - ny; else r = x.localeCompare(y);
        return asc ? r : -r;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _html_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    sort_values: Sequence[Sequence[str]] | None,
    docs: dict[str, str] | None = None,
    css: str = "sortable",
) -> str:
    th = "".join(f'<th title="{html.escape((docs or {}).get(h, ""))}">{html.escape(h)}</th>' for h in header)
    body = []
    for r_i, r in enumerate(rows):
        cells = []
        for c_i, text in enumerate(r):
            raw = sort_values[r_i][c_i] if sort_values is not None else text
            is_num = _is_number_text(raw)
            cls = ' class="num"' if is_num else ""
            cells.append(f'<td{cls} data-v="{html.escape(raw)}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="wrap"><table class="{css}"><thead><tr>{th}</tr></thead>'
        f"<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def _is_number_text(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def render_html(lb: Leaderboard, plots: dict[str, bytes] | None = None) -> str:
    """One self-contained HTML page: sortable table (inline JS, click a header), slopes, plots embedded as
    base64 PNG, column docs. No external resource of any kind."""
    cols = lb.columns
    docs = column_docs(cols)
    shown = table_rows(lb.table)
    raw = [["" if _is_missing(v := lb.table.at[i, c]) else str(_py(v)) for c in cols] for i in lb.table.index]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>robustbench-lip leaderboard</title>",
        f"<style>{_HTML_STYLE}</style></head><body>",
        "<h1>robustbench-lip leaderboard</h1>",
        f'<p class="note">{len(lb)} run(s) from <code>{html.escape(str(lb.runs_dir))}</code>, generated '
        f"{html.escape(lb.generated)}. Click a column header to sort; hover it for its meaning. "
        "An empty cell means not evaluated.</p>",
        _html_table(cols, shown, raw, docs),
        "<h2>Slope of log<sub>10</sub> L(A) against log<sub>10</sub> λ (λ &gt; 0, least squares)</h2>",
    ]
    if lb.slopes:
        parts.append(_html_table(SLOPE_HEADER, slopes_rows(lb.slopes), None))
    else:
        parts.append('<p class="note">No group has runs with λ &gt; 0 and a certified L(A).</p>')
    if plots:
        parts.append("<h2>Plots</h2>")
        for name, png in plots.items():
            b64 = base64.b64encode(png).decode("ascii")
            title = html.escape(PLOT_TITLES.get(name, name))
            parts.append(f'<figure><img alt="{title}" src="data:image/png;base64,{b64}">')
            parts.append(f"<figcaption>{title} ({html.escape(name)})</figcaption></figure>")
    if lb.skipped:
        parts.append("<h2>Skipped files</h2><ul>")
        parts += [
            f"<li><code>{html.escape(str(s.path))}</code>: {html.escape(s.reason)}</li>" for s in lb.skipped
        ]
        parts.append("</ul>")
    parts.append("<h2>Columns</h2><dl>")
    parts += [f"<dt>{html.escape(c)}</dt><dd>{html.escape(d)}</dd>" for c, d in legend(cols).items()]
    parts.append("</dl>")
    parts.append(f"<script>{_HTML_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------

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
    for (dataset, arch, target), g in _groups(table):
        parts = [arch or "?", dataset or "?"] + ([f"on {target}"] if target else [])
        out.append((" · ".join(parts), g))
    return out


def _slope_for(slopes: Sequence[SlopeFit], g: pd.DataFrame, bound: str) -> float | None:
    row = g.iloc[0]
    for s in slopes:
        if (s.bound, s.dataset, s.arch, s.target) == (
            bound,
            _py(row["dataset"]),
            _py(row["arch"]),
            _py(row["target"]),
        ):
            return s.slope
    return None


def plot_lipschitz_vs_lambda(lb: Leaderboard) -> bytes | None:
    """Log–log L(A) upper (solid) and lower (dashed) against λ, one colour per (arch, dataset, target);
    λ = 0 runs sit at the left edge, labelled `λ=0`, left of a dotted separator. None without data."""
    t = lb.table
    if t.empty or (t[LA_UP].isna().all() and t[LA_LO].isna().all()):
        return None
    lam = t[LAM]
    lam_pos = [float(v) for v in lam if not _is_missing(v) and v > 0]
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


def plot_precision_vs_lambda(lb: Leaderboard) -> bytes | None:
    """Clean macro precision (and accuracy, dotted) against λ on a log axis; λ = 0 at the left edge."""
    t = lb.table
    if t.empty or t[PREC].isna().all():
        return None
    lam_pos = [float(v) for v in t[LAM] if not _is_missing(v) and v > 0]
    fig, (ax,) = _figure()
    x0 = _lam_axis(ax, lam_pos, bool((t[LAM] == 0).any()))
    groups = _group_labels(t)
    for color, (label, g) in zip(_colors(len(groups)), groups, strict=True):
        for col, ls, marker in ((PREC, "-", "o"), (ACC, ":", "^")):
            sel = g[g[col].notna() & g[LAM].notna()].copy()
            if sel.empty:
                continue
            if x0 is not None:
                sel.loc[sel[LAM] == 0, LAM] = x0
            sel = sel[sel[LAM] > 0].sort_values(LAM)
            ax.plot(
                sel[LAM],
                sel[col],
                ls=ls,
                marker=marker,
                color=color,
                label=f"{label} {'precision' if col == PREC else 'accuracy'}",
            )
    _label_zero(ax, x0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("λ (penalty weight)" + ("; λ = 0 drawn at the left edge" if x0 is not None else ""))
    ax.set_ylabel("clean metric")
    ax.set_title("Precision against λ")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _worst_curves(lb: Leaderboard, metric: str) -> pd.DataFrame:
    """Per (run, norm, level, ε): the smallest attacked `metric` ("accuracy" | "miou") over attacks, plus
    an ε = 0 point from the attack record's clean metrics where no ε = 0 result exists. mIoU rows carry
    level "pixel"."""
    a = lb.attacks[lb.attacks[metric].notna()].copy()
    if a.empty:
        return a
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
        for run in runs:
            sel = w[(w["run"] == run) & (w["norm"] == norm) & (w["level"] == level)].sort_values("eps")
            if sel.empty:
                continue
            lam = lam_of.get(run)
            label = run if _is_missing(lam) else f"{run} (λ={format_cell(LAM, lam)})"
            ax.plot(sel["eps"], sel[metric], marker="o", color=colors[run], label=label)
            shown += sel["eps"].tolist()
        _eps_ticks(ax, shown)
        what = "mIoU" if metric == "miou" else ("pixel accuracy" if level == "pixel" else "accuracy")
        ax.set_xlabel(f"ε ({'ℓ∞' if norm == 'linf' else 'ℓ2'}, pixel units; 0 = clean)")
        ax.set_ylabel(f"attacked {what} (worst over attacks)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.suptitle("Attacked metric against ε")
    return _png(fig)


def plot_tradeoff(lb: Leaderboard) -> bytes | None:
    """Left: precision against L(A) (upper filled, lower hollow, log x). Right (when attacks exist):
    precision against the worst-case attacked mIoU (else accuracy) at the largest ℓ∞ (else ℓ2) budget
    each group was attacked with (named in the legend). None without precision values."""
    t = lb.table
    if t.empty or t[PREC].isna().all():
        return None
    groups = _group_labels(t)
    attacked: dict[str, str | None] = {}
    for label, g in groups:
        present = [c for c in g.columns if g[c].notna().any()]
        attacked[label] = _worst_column(present, "mIoU") or _worst_column(present, "acc")
    has_l = bool(t[[LA_UP, LA_LO]].notna().any().any())
    panels = (["L"] if has_l else []) + (["atk"] if any(attacked.values()) else [])
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=5.2)
    for ax, panel in zip(axes, panels, strict=True):
        for color, (label, g) in zip(_colors(len(groups)), groups, strict=True):
            if panel == "L":
                for col, fill in ((LA_UP, True), (LA_LO, False)):
                    sel = g[g[col].notna() & g[PREC].notna() & (g[col] > 0)]
                    if not sel.empty:
                        ax.scatter(
                            sel[col],
                            sel[PREC],
                            color=color if fill else "none",
                            edgecolors=color,
                            label=f"{label} ({'upper' if fill else 'lower'})",
                        )
            elif (col := attacked[label]) is not None:
                sel = g[g[col].notna() & g[PREC].notna()]
                if not sel.empty:
                    ax.scatter(sel[col], sel[PREC], color=color, label=f"{label}: {col}")
        if panel == "L":
            ax.set_xscale("log")
            ax.set_xlabel("L(A) (filled: certified upper, hollow: measured lower)")
        else:
            ax.set_xlabel("worst-case attacked metric at the largest ε (see legend)")
        ax.set_ylabel("clean macro precision")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Precision–robustness trade-off")
    return _png(fig)


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


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """`"md,csv"` (or a list) → ["md", "csv"]; unknown or empty is an RlipError."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        f = item.strip().lower()
        if f not in FORMATS:
            raise RlipError(f"unknown format {item.strip()!r}; choose from {', '.join(FORMATS)}")
        if f not in out:
            out.append(f)
    if not out:
        raise RlipError(f"no format given; choose from {', '.join(FORMATS)}")
    return out


def write_reports(
    lb: Leaderboard,
    out_dir: str | os.PathLike[str],
    formats: str | Sequence[str] = FORMATS,
    plots: bool | dict[str, bytes] = True,
) -> dict[str, Path]:
    """Write `leaderboard.<fmt>` for each format and the PNG plots into `out_dir`, each atomically.

    plots: True renders them (`make_plots`), False writes none, a dict {file name: PNG bytes} writes
    those. Returns {format or plot file name: path}. An empty leaderboard is an RlipError."""
    fmts = parse_formats(formats)
    if lb.table.empty:
        raise RlipError(f"no runs with records under {lb.runs_dir}; nothing to write")
    out = Path(out_dir)
    written: dict[str, Path] = {}
    pngs = make_plots(lb) if plots is True else (dict(plots) if plots else {})
    for name, png in pngs.items():
        written[name] = atomic_write_bytes(out / name, png)
    for f in fmts:
        path = out / f"{REPORT_STEM}.{f}"
        if f == "md":
            written[f] = atomic_write_text(path, render_markdown(lb, list(pngs)))
        elif f == "csv":
            written[f] = atomic_write_text(path, render_csv(lb))
        elif f == "json":
            written[f] = atomic_write_json(path, to_json_obj(lb))
        else:
            written[f] = atomic_write_text(path, render_html(lb, pngs))
    return written
