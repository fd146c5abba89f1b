"""What an evaluation runs on: the model's saved metadata and the one dataset lookup of certify and attack.

Dataset rule: `--data NAME` when given, else the dataset named in the model's config.json;
"none" (certify only) means no data. The dataset options saved with the model (sizes, seed of a
built-in dataset, ...) are used whenever the dataset is the model's own, so an evaluation sees
the test split the model was trained for — and so is its folder (`root`, recorded by `rlip train`)
when no root is given. Always the "test" split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from robustbench_lip.errors import RlipError

NO_DATA = "none"
INPUT_SAMPLE_BYTES_MAX = 2**28
"""Largest float32 input sample an evaluation accepts (256 MiB, e.g. 3×4096×5461)."""
INPUT_WORKING_BYTES_MAX = 2**32
"""Largest input working set: the points held at once, in float32 and in a float64 copy (4 GiB)."""


def check_input_memory(shape: Sequence[int], points: int) -> None:
    """Refuse (RlipError, before anything is allocated) an input shape (C, H, W) whose one float32
    sample, or `points` samples in float32 plus their float64 copy, exceeds the budgets above."""
    numel = 1
    for s in shape:
        numel *= max(int(s), 0)
    sample, working = 4 * numel, 12 * numel * max(int(points), 1)
    if sample > INPUT_SAMPLE_BYTES_MAX or working > INPUT_WORKING_BYTES_MAX:
        text = ",".join(str(int(s)) for s in shape)
        raise RlipError(
            f"--input-shape {text} is too large: one input is {sample / 2**20:,.0f} MiB and {points} of them "
            f"need {working / 2**30:,.1f} GiB (limits {INPUT_SAMPLE_BYTES_MAX // 2**20} MiB and "
            f"{INPUT_WORKING_BYTES_MAX // 2**30} GiB); pass a smaller C,H,W"
        )


def model_meta(model_path: str | os.PathLike[str], need: str | None = None) -> dict[str, Any] | None:
    """The model's config.json content; None for a file without rlip metadata (.pt2, bare
    weights) — or, when `need` is given, RlipError "<why>; <need>" instead of None."""
    from robustbench_lip.modelio import read_model_meta

    try:
        meta = read_model_meta(model_path)
    except RlipError as e:
        if need is not None:
            raise RlipError(f"{e}; {need}") from None
        return None
    return meta if isinstance(meta, dict) else None


def saved_dataset(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """The DatasetInfo dict the model was saved with (None when it has none)."""
    ds = (meta or {}).get("dataset")
    return ds if isinstance(ds, dict) else None


def dataset_name(data: str | None, meta: dict[str, Any] | None) -> str | None:
    """`data` when given, else the model's own dataset; None for "none" or when neither says."""
    name = data if data is not None else (saved_dataset(meta) or {}).get("name")
    if not isinstance(name, str) or not name or name.lower() == NO_DATA:
        return None
    return name


def saved_root(meta: dict[str, Any] | None) -> str | None:
    """The dataset folder the model was trained on (config.json: training.settings.root), or None."""
    training = (meta or {}).get("training")
    settings = training.get("settings") if isinstance(training, dict) else None
    root = settings.get("root") if isinstance(settings, dict) else None
    return root if isinstance(root, str) and root else None


def load_test_set(name: str, root: str | os.PathLike[str] | None, meta: dict[str, Any] | None) -> Any:
    """The test split of dataset `name` (an RlipDataset), with the model's saved options — and,
    when `root` is None, its saved folder — when it is the model's own dataset."""
    from robustbench_lip.data import get_dataset

    saved = saved_dataset(meta) or {}
    own = saved.get("name") == name
    options = dict(saved.get("options") or {}) if own else {}
    fallback = saved_root(meta) if own and root is None else None
    if fallback is None:
        return get_dataset(name, split="test", root=str(root) if root is not None else None, **options)
    try:
        return get_dataset(name, split="test", root=fallback, **options)
    except RlipError as e:
        raise RlipError(f"{e} (that folder is the one the run was trained on; pass --root DIR)") from None
