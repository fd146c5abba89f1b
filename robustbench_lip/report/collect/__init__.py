"""Records → one row per run: the only part of the report that reads record dicts.

`load` finds and reads `RUN/results/*.json` into typed records and payloads (records.schema,
records.payloads; skipping, with a warning, what is not a record); `fields` reads leaf values
(numbers, ε texts) and the few payload rules (FNE verdict, attack labels); `merge` turns a run's
records into a leaderboard row (`smoothed`: the smoothing certificates' columns).

May import: records, attacks.eps, models (the family of an arch), report.columns, report.metrics.
"""

from __future__ import annotations

from robustbench_lip.report.collect.fields import fne_verdict
from robustbench_lip.report.collect.groups import seed_group_keys
from robustbench_lip.report.collect.load import LoadedRecord, SkippedFile, find_result_dirs, load_records
from robustbench_lip.report.collect.merge import attack_clean_metrics, attack_rows, run_row

__all__ = [
    "LoadedRecord",
    "SkippedFile",
    "attack_clean_metrics",
    "attack_rows",
    "find_result_dirs",
    "fne_verdict",
    "load_records",
    "run_row",
    "seed_group_keys",
]
