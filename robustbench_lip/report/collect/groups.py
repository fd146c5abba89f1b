"""Which runs differ only in their training seed: a group key per run, from its train record.

The key is the train record's `settings` without `seed` (model, data and its options, λ, penalty and
optimiser settings, epochs, ...), as canonical JSON. A run without a train record gets a key of its
own (it is never averaged with another run).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from robustbench_lip.report.collect.load import LoadedRecord, newest_first

#: Settings that may differ between runs of one group.
SEED_KEYS: tuple[str, ...] = ("seed",)


def seed_group_keys(records: Sequence[LoadedRecord]) -> dict[str, str]:
    """{run: group key} for every run of `records`; equal keys ⇔ same train settings but the seed."""
    trains: dict[str, dict] = {}
    for lr in newest_first([r for r in records if r.kind == "train"]):
        trains.setdefault(lr.run, lr.record.settings)
    keys: dict[str, str] = {}
    for run in dict.fromkeys(r.run for r in records):
        settings = trains.get(run, {})
        if not settings:
            keys[run] = json.dumps({"run": run})
            continue
        rest = {k: v for k, v in settings.items() if k not in SEED_KEYS}
        keys[run] = json.dumps(rest, sort_keys=True, default=str)
    return keys
