"""Result records: one JSON file per (run, evaluation), the source of truth for the leaderboard.

A record is a dict with the envelope keys `kind` ("train" | "certify" | "attack" | "eval"),
`schema_version`, `model` (ModelConfig dict), `dataset` (DatasetInfo dict or null), `settings`
(what was asked), `env` ({rlip, torch, device}), `created` (ISO-8601, UTC) and `wall_s`
(seconds), plus the kind's own payload keys at the top level (e.g. `lipschitz`, `fne` for certify;
`clean`, `results` for attack; `history`, `final` for train). Numbers are numbers; a missing value
is null, never 0.

- `schema`: the typed records (TrainRecord, CertifyRecord, AttackRecord, EvalRecord) with
  to_dict / from_dict, SCHEMA_VERSION, and the enums (RecordKind, FneVerdict, CertificateKind, Task);
  `Record.typed()` gives the payload as its nested dataclass.
- `payloads`: the typed, nested payload of each kind (TrainPayload, CertifyPayload with Lipschitz /
  Bound / Fne / SmoothingPayload, AttackPayload with AttackResult, EvalPayload): `from_dict` checks
  the structure once for every reader, `to_dict` round-trips the stored JSON exactly.
- `store`: record_path, settings_key, write_record / read_record, and `is_recorded` — the one
  "already recorded with these settings" rule of every command.

May import: robustbench_lip.errors, robustbench_lip.io and the package version (records sit below
every package that writes or reads them: training, evaluation, report).
"""

from __future__ import annotations

from robustbench_lip.records.schema import (
    ATTACK_TASK_NAMES,
    ENVELOPE_KEYS,
    KINDS,
    RECORD_TYPES,
    SCHEMA_VERSION,
    VERSION_KEY,
    AttackRecord,
    CertificateKind,
    CertifyRecord,
    EvalRecord,
    FneVerdict,
    Record,
    RecordKind,
    Task,
    TrainRecord,
    env_info,
    make_record,
    now_iso,
    record_from_dict,
)
from robustbench_lip.records.store import (
    RESULTS_DIR,
    is_recorded,
    read_record,
    read_record_dict,
    record_path,
    settings_key,
    write_record,
)

__all__ = [
    "ATTACK_TASK_NAMES",
    "ENVELOPE_KEYS",
    "KINDS",
    "RECORD_TYPES",
    "RESULTS_DIR",
    "SCHEMA_VERSION",
    "VERSION_KEY",
    "AttackRecord",
    "CertificateKind",
    "CertifyRecord",
    "EvalRecord",
    "FneVerdict",
    "Record",
    "RecordKind",
    "Task",
    "TrainRecord",
    "env_info",
    "is_recorded",
    "make_record",
    "now_iso",
    "read_record",
    "read_record_dict",
    "record_from_dict",
    "record_path",
    "settings_key",
    "write_record",
]
