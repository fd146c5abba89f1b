"""Shim: moved to `robustbench_lip.evaluations.inputs` (kept for evaluation.attack's imports)."""

from robustbench_lip.evaluations.inputs import (  # noqa: F401
    NO_DATA,
    check_input_memory,
    dataset_name,
    load_test_set,
    model_meta,
    saved_dataset,
    saved_root,
)
