"""Typed result records: one dataclass per record kind, with `to_dict()` / `from_dict()`.

A record's JSON is a flat dict: the envelope keys `kind`, `schema_version`, `model` (ModelConfig
dict or null), `dataset` (DatasetInfo dict or null), `settings` (what was asked; its key names the
file), `env` ({rlip, torch, device}), `created` (ISO-8601, UTC), `wall_s` (seconds), plus the
kind's own payload keys at the top level (e.g. `lipschitz`, `fne` for certify; `clean`, `results`
for attack; `status`, `history`, `final` for train). Numbers are numbers; a missing value is null.

Versions: `SCHEMA_VERSION` is written into every new record. Records written before versioning
have no `schema_version` and load as version 0 (same keys; v1 only adds `schema_version` and the
certify record's `certificate`). A missing payload key loads as None; unknown keys are kept in
`extra` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import torch

from robustbench_lip import __version__
from robustbench_lip.errors import RlipError
from robustbench_lip.records.payloads import PAYLOAD_TYPES, Payload
from robustbench_lip.tasks import Task

SCHEMA_VERSION = 1


class RecordKind(str, Enum):
    """What a record holds: a training run, a certificate, an attack evaluation, a plain evaluation."""

    TRAIN = "train"
    CERTIFY = "certify"
    ATTACK = "attack"
    EVAL = "eval"


class FneVerdict(str, Enum):
    """The certify record's `fne.verdict` (firm non-expansiveness of A, i.e. R = 2A − I 1-Lipschitz)."""

    VIOLATED = "violated"  # a witnessed pair violates it
    NOT_VIOLATED = "not violated on tested points"  # searched, no violation found (not a proof)
    CERTIFIED = "certified"  # certified L(R) ≤ 1
    UNDEFINED = "undefined (output shape differs from input shape)"


class CertificateKind(str, Enum):
    """What a certify record's robustness claims rest on."""

    LIPSCHITZ = "lipschitz"  # a certified global Lipschitz upper bound of the forward map
    SMOOTHED = "smoothed"  # randomized smoothing: probabilistic (≥ 1 − α), for the smoothed model g


#: How an attack record's `task` key names the scoring level (kept from the first records so
#: existing readers keep working): image labels ("classifier") or pixel masks ("segmenter").
ATTACK_TASK_NAMES: dict[Task, str] = {Task.CLASSIFICATION: "classifier", Task.SEGMENTATION: "segmenter"}

KINDS: tuple[str, ...] = tuple(k.value for k in RecordKind)
ENVELOPE_KEYS: tuple[str, ...] = ("kind", "model", "dataset", "settings", "env", "created", "wall_s")
VERSION_KEY = "schema_version"


def env_info(device: str | torch.device = "cpu") -> dict[str, str]:
    """Versions and device of this process."""
    return {"rlip": __version__, "torch": torch.__version__, "device": str(device)}


def now_iso() -> str:
    """The current UTC time, ISO-8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Record:
    """The envelope shared by every kind; subclasses add their payload fields."""

    kind: ClassVar[RecordKind]
    model: dict[str, Any] | None
    dataset: dict[str, Any] | None
    settings: dict[str, Any]
    env: dict[str, Any] = field(default_factory=env_info)
    created: str = field(default_factory=now_iso)
    wall_s: float = 0.0
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def payload_keys(cls) -> tuple[str, ...]:
        """The kind's own top-level keys, in the order they are written."""
        base = {f.name for f in dataclasses.fields(Record)}
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in base)

    #: payload keys written only when not None (e.g. certify's per-layer table)
    optional_keys: ClassVar[tuple[str, ...]] = ()
    #: whether a record of this kind must carry a `settings` object (a train record's names the run)
    requires_settings: ClassVar[bool] = False

    def typed(self) -> Payload:
        """The payload as its typed, nested dataclass (records.payloads; RlipError when its
        structure is wrong — an object that is not one, a missing required key)."""
        return PAYLOAD_TYPES[self.kind.value].from_dict(self.payload(), f"{self.kind.value} record")

    def payload(self) -> dict[str, Any]:
        """The payload keys and values (optional keys left out when None)."""
        out = {k: _plain(getattr(self, k)) for k in self.payload_keys()}
        return {k: v for k, v in out.items() if not (k in self.optional_keys and v is None)}

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready flat dict: envelope, then payload, then unknown keys kept from loading."""
        out: dict[str, Any] = {
            "kind": self.kind.value,
            VERSION_KEY: int(self.schema_version),
            "model": self.model,
            "dataset": self.dataset,
            "settings": self.settings,
            "env": self.env,
            "created": self.created,
            "wall_s": float(self.wall_s),
        }
        out.update(self.payload())
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """Load a record of this kind (any kind when called on `Record`); see the module docstring."""
        if not isinstance(d, dict):
            raise RlipError(f"a record must be a JSON object, got {type(d).__name__}")
        kind = d.get("kind")
        if kind is None:
            raise RlipError("not a record: no 'kind' key")
        target = RECORD_TYPES.get(kind) if isinstance(kind, str) else None  # type: ignore[arg-type]
        if target is None:
            raise RlipError(f"not a record: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        if cls is not Record and target is not cls:
            raise RlipError(f"expected a {cls.kind.value} record, got kind {kind!r}")
        version = d.get(VERSION_KEY, 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise RlipError(f"bad {VERSION_KEY} {version!r}")
        if version > SCHEMA_VERSION:
            raise RlipError(
                f"record schema version {version} is newer than this rlip's {SCHEMA_VERSION}; upgrade rlip"
            )
        if target.requires_settings and not isinstance(d.get("settings"), dict):
            raise RlipError(f"{kind} record whose 'settings' is not an object")
        known = {"kind", VERSION_KEY, *ENVELOPE_KEYS, *target.payload_keys()}
        kwargs: dict[str, Any] = {k: d.get(k) for k in target.payload_keys()}
        defaults = target.defaults()
        kwargs.update({k: defaults[k] for k, v in kwargs.items() if v is None and k in defaults})
        wall_s = d.get("wall_s")
        if wall_s is not None and (isinstance(wall_s, bool) or not isinstance(wall_s, (int, float))):
            raise RlipError(f"bad wall_s {wall_s!r}: expected a number of seconds")
        return target(
            model=d.get("model"),
            dataset=d.get("dataset"),
            settings=d.get("settings") or {},
            env=d.get("env") or {},
            created=d.get("created") or "",
            wall_s=float(d.get("wall_s") or 0.0),
            schema_version=version,
            extra={k: v for k, v in d.items() if k not in known},
            **kwargs,
        )

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Values of payload keys that version-0 records lack (and that cannot be null)."""
        return {}


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, Enum) else v


@dataclass
class TrainRecord(Record):
    """kind "train": status ("running" | "finished" | "failed" | "interrupted"), per-epoch history,
    final metrics, the penalty config, and the error message of a failed run."""

    kind: ClassVar[RecordKind] = RecordKind.TRAIN
    optional_keys: ClassVar[tuple[str, ...]] = ("error",)
    requires_settings: ClassVar[bool] = True
    status: str | None = None
    history: list[dict[str, Any]] | None = None
    final: dict[str, Any] | None = None
    penalty: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class CertifyRecord(Record):
    """kind "certify": Lipschitz bounds of A and R (certified upper, witnessed lower), the FNE test,
    certified robustness per ε (text keys such as "36/255"), clean metrics, timings (s), notes.
    `layers` (the per-layer bound table) is written only when asked for; `radius_rules` (which rule
    gave the classifier's and the masks' certified radii) only when known (None in older records). A
    randomized-smoothing certificate (`certificate` "smoothed", evaluations.smoothing.run) leaves the
    Lipschitz keys null and holds everything in `smoothing` (written only for it)."""

    kind: ClassVar[RecordKind] = RecordKind.CERTIFY
    optional_keys: ClassVar[tuple[str, ...]] = ("layers", "smoothing", "radius_rules")
    certificate: CertificateKind | str = CertificateKind.LIPSCHITZ
    lipschitz: dict[str, Any] | None = None
    fne: dict[str, Any] | None = None
    certified_accuracy: dict[str, float] | None = None
    certified_accuracy_estimate: dict[str, float] | None = None
    certified_miou: dict[str, float | None] | None = None
    certified_miou_estimate: dict[str, float | None] | None = None
    certified_pixel_accuracy: dict[str, float] | None = None
    clean: dict[str, Any] | None = None
    unsupported_ops: list[str] | None = None
    bound_problems: list[dict[str, Any]] | None = None
    timings: dict[str, float] | None = None
    notes: list[str] | None = None
    layers: list[dict[str, Any]] | None = None
    smoothing: dict[str, Any] | None = None
    radius_rules: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.certificate, str) and not isinstance(self.certificate, CertificateKind):
            try:
                self.certificate = CertificateKind(self.certificate)
            except ValueError:
                pass  # a newer kind: kept as text

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"certificate": CertificateKind.LIPSCHITZ}

    @property
    def fne_verdict(self) -> FneVerdict | None:
        """The FNE verdict as an enum (None when not tested or not one of the known values)."""
        v = (self.fne or {}).get("verdict")
        try:
            return FneVerdict(v) if isinstance(v, str) else None
        except ValueError:
            return None


@dataclass
class AttackRecord(Record):
    """kind "attack": clean metrics and one result row per (attack, ε) (+ "worst"), each with
    accuracy / precision / mIoU at the levels of `levels`; `task` is "classifier" or "segmenter"
    (ATTACK_TASK_NAMES), `n` the number of samples attacked (the first n of the test split);
    `protocol` the attack protocol (`--preset`, e.g. "standard") or None, `steps` / `restarts` as
    asked (each result row holds its attack's own). Records before these fields load them as None."""

    kind: ClassVar[RecordKind] = RecordKind.ATTACK
    clean: dict[str, Any] | None = None
    results: list[dict[str, Any]] | None = None
    n: int | None = None
    objective: str | None = None
    task: str | None = None
    attacks: list[str] | None = None
    levels: dict[str, Any] | None = None
    ignore_index: int | None = None
    protocol: str | None = None
    steps: int | None = None
    restarts: int | None = None


@dataclass
class EvalRecord(Record):
    """kind "eval": plain metrics of a model on a dataset (accuracy, precision, mIoU, ...)."""

    kind: ClassVar[RecordKind] = RecordKind.EVAL
    metrics: dict[str, Any] | None = None


RECORD_TYPES: dict[str, type[Record]] = {
    RecordKind.TRAIN.value: TrainRecord,
    RecordKind.CERTIFY.value: CertifyRecord,
    RecordKind.ATTACK.value: AttackRecord,
    RecordKind.EVAL.value: EvalRecord,
}


def record_from_dict(d: dict[str, Any]) -> Record:
    """The typed record of any kind (dispatch on `kind`)."""
    return Record.from_dict(d)


def make_record(
    kind: str,
    *,
    model: dict[str, Any] | None,
    dataset: dict[str, Any] | None,
    settings: dict[str, Any],
    payload: dict[str, Any],
    wall_s: float,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Assemble a record dict from a payload built elsewhere: the envelope (with the current
    `schema_version`) plus exactly the `payload` keys at the top level."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    clash = set(payload) & {*ENVELOPE_KEYS, VERSION_KEY}
    if clash:
        raise ValueError(f"payload keys clash with the envelope: {sorted(clash)}")
    rec: dict[str, Any] = {
        "kind": kind,
        VERSION_KEY: SCHEMA_VERSION,
        "model": model,
        "dataset": dataset,
        "settings": settings,
        "env": env_info(device),
        "created": now_iso(),
        "wall_s": float(wall_s),
    }
    rec.update(payload)
    return rec
