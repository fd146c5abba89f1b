"""The dataset registry: one `DatasetSpec` per dataset name, read by `get_dataset`, `dataset_info`,
`rlip data list/preview/export` and the training loop's default augmentation (`is_natural`).

Built-in generated datasets (`shapes`, `lesions`) take the options n_train, n_test, image_size and
seed. Real datasets (`cifar10`, `coco`) read files under `root` (see data/cifar.py, data/coco.py);
`folder` reads your own images under `root` (ImageFolder layout or image/mask pairs, data/folder.py).
Unknown names and unknown options are RlipErrors that list what is accepted.

Adding a dataset is one `register_dataset(DatasetSpec(...))` (from any module, also outside the
package): `info(root, **options) -> DatasetInfo`, `load(root, split, **options) -> RlipDataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustbench_lip.choices import Split, values
from robustbench_lip.config import DatasetInfo
from robustbench_lip.data.base import RlipDataset
from robustbench_lip.errors import RlipError
from robustbench_lip.registry import Registry

SPLITS: tuple[str, ...] = values(Split)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset. info(root, **options) -> DatasetInfo (cheap: metadata only); load(root, split,
    **options) -> RlipDataset; row(root) -> the `rlip data list` row (None: derived from `info`;
    availability inside: whether it can be used offline now); natural: natural images, augmented
    (flip/crop) in training unless the config says otherwise; generated: made in memory from a seed
    (options seed, n_train, n_test; no files); download: accepts the `download` option."""

    name: str
    info: Callable[..., DatasetInfo]
    load: Callable[..., RlipDataset]
    row: Callable[[str | None], dict[str, Any]] | None = None
    natural: bool = False
    generated: bool = False
    download: bool = False


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Register `spec` under its name (a name twice is an error unless `replace`)."""
    return DATASETS.register(spec.name, spec, replace=replace)


def list_datasets() -> list[str]:
    """Names accepted by `get_dataset`, in registration order (the built-ins first)."""
    return DATASETS.names()


def dataset_spec(name: Any) -> DatasetSpec:
    """The spec of `name`; RlipError listing the datasets when there is none."""
    spec = DATASETS.find(name)
    if spec is None:
        raise RlipError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    return spec


def is_natural(name: str) -> bool:
    """Whether `name` is a registered dataset of natural images (False for unknown names)."""
    spec = DATASETS.find(name)
    return spec is not None and spec.natural


def check_split(split: Any) -> str:
    if split not in SPLITS:
        raise RlipError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def dataset_info(name: str, root: str | None = None, **options: Any) -> DatasetInfo:
    """The DatasetInfo of `name` with `options` (cheap for built-ins; reads only metadata for real ones).

    `info.options` holds the resolved options: passing them back to `get_dataset` rebuilds the dataset."""
    return dataset_spec(name).info(root, **options)


def get_dataset(name: str, split: str = "train", root: str | None = None, **options: Any) -> RlipDataset:
    """Dataset `name`, split "train" | "test": built-ins are generated (no files), real ones read from `root`.

    Samples are (image float32 (C,H,W) in [0,1], label int64, mask int64 (H,W) or None)."""
    spec = dataset_spec(name)
    check_split(split)
    return spec.load(root, split, **options)


def info_row(spec: DatasetSpec, root: str | None) -> dict[str, Any]:
    """The `rlip data list` row of a spec without its own `row`: from its default info."""
    info = spec.info(root)
    h, w = info.image_size
    opts = info.options or {}
    return {
        "name": spec.name,
        "n_train": opts.get("n_train", "?"),
        "n_test": opts.get("n_test", "?"),
        "image_size": f"{h}×{w}",
        "channels": info.in_channels,
        "classes": info.num_classes,
        "masks": f"yes ({info.num_mask_classes})" if info.has_masks else "no",
        "offline": "yes",
    }


def dataset_table(root: str | None = None) -> list[dict[str, Any]]:
    """One row per dataset for `rlip data list`: name, n_train, n_test, image_size, channels, classes,
    masks, offline (whether it can be used without a network now; real ones: files found under root)."""
    return [spec.row(root) if spec.row is not None else info_row(spec, root) for _, spec in DATASETS.items()]


from robustbench_lip.data import builtin_specs  # noqa: E402,F401  (registers the built-in datasets)
