"""Attack evaluations: clean vs attacked accuracy / precision / mIoU per (ε, attack).

- `settings`: `AttackSettings`, the defaults of `rlip attack` (torch-free, read by the CLI), and the
  record settings they give;
- `run`: `attack_run(model_path, settings)` — the evaluation (load → attack → record → write) and
  `pending_attacks`, the runs not yet recorded;
- `plan`: `plan_attacks` → `Plan`, a request checked against the model and the data (`all`,
  protocols, objective, budgets);
- `protocol`: the runner of each (ε, attack) cell — per-attack RNG streams, SEA, the `standard`
  protocol;
- `worst_case`: per image, the most harmful attack of a cell (the "worst" row);
- `metrics`: `evaluate_attacks(model, dataset, ...)` — the record's payload.

May import: evaluations (base, inputs, data_check), attacks, scoring, metrics, records, tasks,
device, errors — never cli or report.
"""
