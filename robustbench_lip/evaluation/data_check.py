"""Shim: moved to `robustbench_lip.evaluations.data_check` (kept for evaluation.attack's imports)."""

from robustbench_lip.evaluations.data_check import check_data, check_fits, check_own_data, why_other  # noqa: F401
