"""Is an evaluation's data the run's own, and does the model fit it?

A run's certify / attack / smoothing records are merged into its leaderboard row, so they must be
measured on the run's own test split. Other data — another dataset name, a dataset whose classes
or image format differ from the saved ones, or (for datasets whose folder is their identity, such
as `folder`) another root — is refused unless asked for with `--other-data`; such a record carries
`settings.other_data = true` and the leaderboard keeps it out of the run's row. A model whose
class count differs from the data's is refused either way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.inputs import saved_dataset, saved_root

#: Datasets whose root folder is what they are (another folder is another dataset).
ROOT_IS_IDENTITY: frozenset[str] = frozenset({"folder"})
#: What must match between the saved and the loaded DatasetInfo for the data to be the run's own.
IDENTITY_FIELDS: tuple[str, ...] = ("name", "num_classes", "class_names", "num_mask_classes", "in_channels")
OTHER_DATA_FLAG = "--other-data"


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def why_other(
    info: DatasetInfo, root: str | os.PathLike[str] | None, meta: dict[str, Any] | None
) -> str | None:
    """Why `info` (loaded from `root`) is not the test split the run in `meta` was trained on; None
    when it is, or when the model has no saved dataset (a foreign file)."""
    saved = saved_dataset(meta)
    if saved is None:
        return None
    loaded = info.to_dict()
    for key in IDENTITY_FIELDS:
        a, b = saved.get(key), loaded.get(key)
        if key in saved and (list(a) if isinstance(a, (list, tuple)) else a) != (
            list(b) if isinstance(b, (list, tuple)) else b
        ):
            return f"its {key} is {b!r}, the run's is {a!r}"
    trained = saved_root(meta)
    if info.name in ROOT_IS_IDENTITY and root is not None and trained is not None:
        if not _same_path(root, trained):
            return f"its folder {root} is not the run's {trained}"
    return None


def check_own_data(
    info: DatasetInfo, root: str | os.PathLike[str] | None, meta: dict[str, Any] | None, other_data: bool
) -> None:
    """RlipError when the data is not the run's own and `other_data` was not asked for."""
    why = why_other(info, root, meta)
    if why is not None and not other_data:
        raise RlipError(
            f"dataset {info.name!r} is not the one this run was trained on ({why}); pass {OTHER_DATA_FLAG} "
            "to evaluate on it anyway (recorded as other data, kept out of the run's leaderboard row)"
        )


def check_fits(config: ModelConfig, info: DatasetInfo) -> None:
    """RlipError when the model's class count does not fit the data's: a classifier's num_classes vs
    the image classes, a segmenter's outputs vs the mask values."""
    if config.task == "classification" and int(config.num_classes) != int(info.num_classes):
        raise RlipError(
            f"the model predicts {config.num_classes} classes but dataset {info.name!r} has "
            f"{info.num_classes}; evaluate it on data with its own classes"
        )
    if config.task == "segmentation":
        if not info.has_masks or info.num_mask_classes is None:
            raise RlipError(f"the model segments but dataset {info.name!r} has no masks")
        if int(config.num_classes) != int(info.num_mask_classes):
            raise RlipError(
                f"the model predicts {config.num_classes} mask classes but dataset {info.name!r} has "
                f"{info.num_mask_classes}; evaluate it on data with its own classes"
            )


def check_data(
    config: ModelConfig | None,
    info: DatasetInfo,
    root: str | os.PathLike[str] | None,
    meta: dict[str, Any] | None,
    other_data: bool,
) -> None:
    """`check_own_data` then (when the model has a config) `check_fits`."""
    check_own_data(info, root, meta, other_data)
    if config is not None:
        check_fits(config, info)
