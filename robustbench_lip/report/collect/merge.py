"""Merging a run's records into one leaderboard row (and its long-format attack results).

Rules, per run:
- identity (arch, dataset, λ, penalty target, seed, epochs, status, training time) comes from the
  train record (`settings`, `model`, `wall_s`); without one, from the other records' envelope;
- clean metrics come from the train record's `final` (image-label accuracy / macro precision, mask
  mIoU on the test split); a metric it lacks falls back to the newest attack record's `clean`, then
  the newest certify record's `clean` — accuracy / precision only from image-level records;
- attack columns are `<attack>_<norm>@<ε> [<protocol>, n=<n>] <metric>`: protocol `custom` for an
  attack chosen with `--attack`, the preset's name for one run by `--preset`; n images attacked;
  metric is `acc` / `prec` when the record scores image labels and `pixel acc` / `pixel prec` when it
  scores pixels (segmenters; the record's `levels`), plus `mIoU`; an attack run with a non-default
  objective is named `<attack>(<objective>)`;
- several records of one kind (different settings): for every value — a scalar such as L(A) upper,
  a per-ε certified value, an (attack, norm, ε, level) result — the newest record (`created`, then
  file name) that has it wins; values only older records have are kept (union);
- `worst_<norm>@<ε> [every attack, n=<n>] <metric>` = the smallest value over the attack results at
  that norm and ε on one sample set — the largest n among them (attack records attack the first n
  test images) — including the records' own per-image `worst` entries (so it is ≤ every single
  attack's value on those images); results on other sample sets are left out, never mixed in;
- `robust_<norm>@<ε> [<protocol>, n=<n>] <metric>` (`[…, steps=<s>]` when an attack of the protocol
  ran with other steps than the protocol's): the smallest value over the attacks of one protocol
  record (`--preset`), all on the same n images.
Records measured on other data than the run's own (`settings.other_data`, or an evaluation record
whose dataset name differs from the run's) are left out of its row (logged): never merged.
Registered metrics (report.metrics): per column, the newest record of the metric's kind with a value.
A missing value is None (an empty cell), never 0. Records are read through their typed payloads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, cast

from robustbench_lip.records import KINDS
from robustbench_lip.records.payloads import AttackPayload, CertifyPayload, TrainPayload
from robustbench_lip.report.collect.fields import (
    PROTOCOL_STEPS,
    as_int,
    as_str,
    clean_value,
    eps_text,
    first,
    fne_verdict,
    get,
    num,
    result_key,
    result_values,
)
from robustbench_lip.report.collect.load import LoadedRecord, newest_first
from robustbench_lip.report.collect.smoothed import smoothed_columns, split_smoothed
from robustbench_lip.report.columns import (
    ACC,
    FAMILY,
    FNE,
    LA_GAP,
    LA_LO,
    LA_UP,
    LAM,
    MIOU,
    PREC,
    TRAIN_S,
    ColumnKey,
    attack_metric,
    eps_value,
    make_tag,
)
from robustbench_lip.report.metrics import (
    ATTACK_COLUMNS,
    CERTIFY_COLUMNS,
    LEADERBOARD_METRICS,
    LIPSCHITZ_COLUMNS,
    BoundColumn,
)

logger = logging.getLogger(__name__)

#: Protocol named in the columns of attacks chosen one by one (`--attack`, no `--preset`).
CUSTOM_PROTOCOL = "custom"
#: Protocol named in the worst-case columns: the minimum over every attack and protocol on one sample set.
WORST_PROTOCOL = "every attack"


def _attack(lr: LoadedRecord) -> AttackPayload:
    return cast(AttackPayload, lr.payload)


def _certify(lr: LoadedRecord) -> CertifyPayload:
    return cast(CertifyPayload, lr.payload)


def attack_rows(run: str, attacks: Sequence[LoadedRecord]) -> list[dict[str, Any]]:
    """Long-format attack results of one run, deduplicated per (attack, norm, ε, level): newest wins."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for lr in newest_first(attacks):
        rec = _attack(lr)
        level, n = rec.level, as_int(rec.n)
        for i, res in enumerate(rec.results or []):
            k = result_key(rec, i, res, lr.path)
            protocol = as_str(res.protocol) or as_str(rec.protocol)
            if k is None or (*k, level, n, protocol) in seen:
                continue
            attack, norm, eps = k
            seen[(*k, level, n, protocol)] = {
                "run": run,
                "attack": attack,
                "norm": norm,
                "eps": eps_value(eps),
                "eps_text": eps,
                "level": level,
                "n": n,
                "protocol": protocol,
                **result_values(res, f"{lr.path.name} result {i}"),
                "created": lr.record.created,
                "file": lr.path.name,
            }
    return list(seen.values())


def _identity(run: str, train: LoadedRecord | None, newest_all: Sequence[LoadedRecord]) -> dict[str, Any]:
    """run, arch, dataset, λ, target, seed, epochs, status: from the train record, else the envelopes."""
    settings = train.record.settings if train else {}
    arch = first([settings.get("model")] + [lr.arch for lr in newest_all])
    dataset = first(
        [settings.get("data"), train.dataset if train else None] + [lr.dataset for lr in newest_all]
    )
    status = as_str(cast(TrainPayload, train.payload).status) if train else None
    return {
        "run": run,
        "arch": as_str(arch),
        "dataset": as_str(dataset),
        LAM: num(settings.get("lam"), f"{run} settings.lam"),
        FAMILY: _family(as_str(arch)),
        "target": as_str(settings.get("reg_target")),
        "seed": as_int(settings.get("seed")),
        "epochs": as_int(settings.get("epochs")),
        "status": status,
    }


def _family(arch: str | None) -> str | None:
    """The registry's family of `arch` (penalty / constrained), None for an unregistered one."""
    from robustbench_lip.models import model_family

    return model_family(arch) if arch else None


def _clean_of(lr: LoadedRecord) -> Any:
    """The clean metrics of a record: a train record's `final`, another record's `clean`."""
    return cast(TrainPayload, lr.payload).final if lr.kind == "train" else getattr(lr.payload, "clean", None)


def _clean(run: str, train: LoadedRecord | None, evals: Sequence[LoadedRecord]) -> dict[str, float | None]:
    """acc, precision, mIoU: train final, then the newest attack clean, then the newest certify clean
    (`evals` in that order); accuracy / precision only from records whose level is not pixel."""
    row: dict[str, float | None] = {}
    for key, col in (("accuracy", ACC), ("precision", PREC), ("miou", MIOU)):
        sources = ([train] if train else []) + [
            lr for lr in evals if key == "miou" or getattr(lr.payload, "level", None) != "pixel"
        ]
        row[col] = first(num(clean_value(_clean_of(s), key), f"{run} clean {key}") for s in sources)
    return row


def _lipschitz(certs: Sequence[LoadedRecord]) -> dict[str, Any]:
    """The LIPSCHITZ_COLUMNS (L(A) upper / lower / gap, L(R) lower / upper) and FNE: per value, the
    newest certify record with it; L(A) gap = upper / lower when no record states it."""

    def value(col: BoundColumn) -> float | None:
        bounds = [(lr, getattr(_certify(lr).lipschitz, col.op, None)) for lr in certs]
        where = f"lipschitz.{col.op}.{col.field}"
        return first(
            num(getattr(b, col.field), f"{lr.path.name} {where}") for lr, b in bounds if b is not None
        )

    row: dict[str, Any] = {col.name: value(col) for col in LIPSCHITZ_COLUMNS}
    up, lo = row[LA_UP], row[LA_LO]
    if row[LA_GAP] is None and up is not None and lo is not None and lo > 0:
        row[LA_GAP] = up / lo
    row[FNE] = first(fne_verdict(_certify(lr).fne) for lr in certs)
    return row


def _certified(certs: Sequence[LoadedRecord]) -> dict[str, float]:
    """`cert <metric>@<ε>` columns (metrics.CERTIFY_COLUMNS): union over the certify records, the newest
    wins per ε."""
    row: dict[str, float] = {}
    for col in CERTIFY_COLUMNS:
        for lr in reversed(certs):  # oldest first, newer overwrite
            for eps_key, v in (getattr(_certify(lr), col.field) or {}).items():
                eps = eps_text(eps_key, "l2")
                if eps is None:
                    logger.warning("skipping %s[%r] of %s: bad eps", col.field, eps_key, lr.path)
                    continue
                val = num(v, f"{lr.path.name} {col.field}[{eps_key}]")
                if val is not None:
                    row[ColumnKey.cert(col.metric, eps).name()] = val
    return row


def _registered(by_kind: dict[str, list[LoadedRecord]]) -> dict[str, float | None]:
    """The registered metrics' columns (report.metrics): the newest record of the kind with a value."""
    row: dict[str, float | None] = {}
    for name in LEADERBOARD_METRICS.names():
        m = LEADERBOARD_METRICS.get(name)
        recs = newest_first(by_kind[m.kind])
        row[name] = first(num(m.value(lr.payload), f"{lr.path.name} {name}") for lr in recs)
    return row


def _largest_n(long_rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int | None]:
    """Per (norm, ε) the sample set (n) the worst case is taken on: the largest n (None: unsaid)."""
    out: dict[tuple[str, str], int | None] = {}
    for r in long_rows:
        k, n = (r["norm"], r["eps_text"]), r.get("n")
        if k not in out or (n is not None and (out[k] is None or n > out[k])):  # type: ignore[operator]
            out[k] = n
    return out


def _tag(protocol: str, n: int | None, rows: Sequence[dict[str, Any]] = ()) -> str:
    """`standard, n=128` (+ `, steps=20` when an attack of `rows` ran with other steps than the
    protocol's; n unknown: `n=?`)."""
    own = PROTOCOL_STEPS.get(protocol, {})
    other = sorted({r["steps"] for r in rows if r["steps"] not in (None, own.get(r["attack"]))})
    return make_tag(protocol, n, "/".join(map(str, other)) or None)


def _robust_columns(long_rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """`robust_<norm>@<ε> [<protocol>, n=<n>] <metric>`: min over one protocol's attacks on one n."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in long_rows:
        if r.get("protocol") is not None and r["attack"] != "worst":
            groups.setdefault((r["protocol"], r.get("n"), r["norm"], r["eps_text"]), []).append(r)
    row: dict[str, float] = {}
    for (protocol, n, norm, eps), rows in groups.items():
        tag = _tag(protocol, n, rows)
        for r in rows:
            for entry in ATTACK_COLUMNS:
                if r[entry.field] is not None:
                    metric = attack_metric(entry.metric, r["level"])
                    col = ColumnKey.attacked("robust", norm, eps, metric, tag).name()
                    row[col] = min(r[entry.field], row.get(col, math.inf))
    return row


def _attack_columns(long_rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per (attack, norm, ε, metric) columns (newest first wins), `worst_<norm>@<ε> <metric>` = min
    over the attacks on the largest sample set, then the protocols' robust columns."""
    row: dict[str, float] = {}
    worst: dict[tuple[str, str], dict[str, float]] = {}
    n_of = _largest_n(long_rows)
    for r in long_rows:
        w = worst.setdefault((r["norm"], r["eps_text"]), {})
        same_set = r.get("n") == n_of[(r["norm"], r["eps_text"])]
        for entry in ATTACK_COLUMNS:
            v = r[entry.field]
            if v is None:
                continue
            metric = attack_metric(entry.metric, r["level"])
            if r["attack"] != "worst":
                key = ColumnKey.attacked(r["attack"], r["norm"], r["eps_text"], metric, _attack_tag(r))
                row.setdefault(key.name(), v)
            if same_set:
                w[metric] = min(v, w.get(metric, math.inf))
    for (norm, eps), values in worst.items():
        tag = _tag(WORST_PROTOCOL, n_of[(norm, eps)])
        for metric, v in values.items():
            row[ColumnKey.attacked("worst", norm, eps, metric, tag).name()] = v
    row.update(_robust_columns(long_rows))
    return row


def _attack_tag(r: dict[str, Any]) -> str:
    """The tag of one attack's column: `<protocol>, n=<n>` (a preset's attack, `steps=` when other than
    the protocol's), `custom, n=<n>` (an attack chosen with `--attack`)."""
    if r.get("protocol") is not None:
        return _tag(r["protocol"], r.get("n"), [r])
    return _tag(CUSTOM_PROTOCOL, r.get("n"))


def _own_data(run: str, recs: Sequence[LoadedRecord]) -> list[LoadedRecord]:
    """The records measured on the run's own data (see the module docstring); the others are logged."""
    recs = [lr for lr in recs if not lr.other_data]
    trains = [lr for lr in recs if lr.kind == "train"]
    own = as_str(first([get(lr.record.settings, "data") for lr in trains]))
    own = own or as_str(first([lr.dataset for lr in trains]))
    out = []
    for lr in recs:
        name = as_str(lr.dataset)
        if lr.kind != "train" and own and name and name.lower() != own.lower():
            logger.info("run %s: %s is on dataset %s, not %s; left out", run, lr.path.name, name, own)
            continue
        out.append(lr)
    return out


def run_row(run: str, recs: Sequence[LoadedRecord]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One leaderboard row {column: value} and the run's long-format attack results."""
    by_kind: dict[str, list[LoadedRecord]] = {k: [] for k in KINDS}
    recs = _own_data(run, recs)
    for lr in recs:
        by_kind[lr.kind].append(lr)
    trains = newest_first(by_kind["train"])
    certs, smoothed = split_smoothed(newest_first(by_kind["certify"]))  # never mixed: own columns
    attacks = newest_first(by_kind["attack"])
    train = trains[0] if trains else None
    if len(trains) > 1:
        logger.warning("run %s has %d train records; using the newest (%s)", run, len(trains), trains[0].path)
    row = _identity(run, train, newest_first(recs))
    row.update(_clean(run, train, attacks + certs))
    row.update(_lipschitz(certs))
    row.update(_certified(certs))
    row.update(smoothed_columns(smoothed))
    long_rows = attack_rows(run, attacks)
    row.update(_attack_columns(long_rows))
    row.update(_registered(by_kind))
    row[TRAIN_S] = num(train.wall_s, f"{run} train wall_s") if train else None
    return row, long_rows


def attack_clean_metrics(records: Sequence[LoadedRecord]) -> dict[str, dict[str, Any]]:
    """{run: {accuracy, precision, miou, level}} from the newest attack record of each run that has a
    `clean` object (the unattacked metrics on the very images that were attacked; level "image" or
    "pixel" for accuracy / precision, None when the record does not say)."""
    out: dict[str, dict[str, Any]] = {}
    for lr in newest_first([r for r in records if r.kind == "attack" and not r.other_data]):
        rec = _attack(lr)
        if lr.run not in out and rec.clean is not None:
            out[lr.run] = {
                k: num(clean_value(rec.clean, k), f"{lr.path.name} clean.{k}")
                for k in ("accuracy", "precision", "miou")
            }
            out[lr.run]["level"] = rec.level
    return out
