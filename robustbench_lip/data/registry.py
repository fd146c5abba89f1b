"""Dataset names → loaders: `list_datasets`, `get_dataset`, `dataset_info`, `dataset_table`.

Built-in generated datasets (`shapes`, `lesions`) take the options n_train, n_test, image_size and
seed. Real datasets (`cifar10`, `coco`) read files under `root` (see data/cifar.py, data/coco.py);
`folder` reads your own images under `root` (ImageFolder layout or image/mask pairs, data/folder.py).
Unknown names and unknown options are RlipErrors that list what is accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustbench_lip.choices import Split, values
from robustbench_lip.config import DatasetInfo
from robustbench_lip.data import lesions, shapes
from robustbench_lip.data.base import RlipDataset, check_int, check_options
from robustbench_lip.data.layout_checks import check_coco_root
from robustbench_lip.errors import RlipError

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = values(Split)


@dataclass(frozen=True)
class Builtin:
    """A generated dataset: its generator module and defaults."""

    name: str
    generate: Callable[..., Any]
    in_channels: int
    class_names: tuple[str, ...]
    mask_class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_train: int
    n_test: int
    image_size: int = 32
    min_size: int = 16
    max_size: int = 256


BUILTINS: dict[str, Builtin] = {
    "shapes": Builtin(
        name="shapes",
        generate=shapes.generate,
        in_channels=3,
        class_names=shapes.CLASS_NAMES,
        mask_class_names=("background", *shapes.CLASS_NAMES),
        mean=shapes.MEAN,
        std=shapes.STD,
        n_train=4000,
        n_test=1000,
    ),
    "lesions": Builtin(
        name="lesions",
        generate=lesions.generate,
        in_channels=1,
        class_names=lesions.CLASS_NAMES,
        mask_class_names=lesions.MASK_CLASS_NAMES,
        mean=lesions.MEAN,
        std=lesions.STD,
        n_train=2000,
        n_test=500,
    ),
}
REAL: tuple[str, ...] = ("cifar10", "coco", "folder")


def list_datasets() -> list[str]:
    """Names accepted by `get_dataset`: the built-ins first, then the real datasets."""
    return [*BUILTINS, *REAL]


def _unknown(name: Any) -> RlipError:
    return RlipError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")


def check_split(split: Any) -> str:
    if split not in SPLITS:
        raise RlipError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def _builtin_options(spec: Builtin, options: dict[str, Any]) -> dict[str, int]:
    check_options(spec.name, options, ("n_train", "n_test", "image_size", "seed"))
    return {
        "n_train": check_int("n_train", options.get("n_train", spec.n_train), 1),
        "n_test": check_int("n_test", options.get("n_test", spec.n_test), 1),
        "image_size": check_int(
            "image_size", options.get("image_size", spec.image_size), spec.min_size, spec.max_size
        ),
        "seed": check_int("seed", options.get("seed", 0), 0),
    }


def _builtin_info(spec: Builtin, opts: dict[str, int]) -> DatasetInfo:
    s = opts["image_size"]
    return DatasetInfo(
        name=spec.name,
        in_channels=spec.in_channels,
        image_size=(s, s),
        num_classes=len(spec.class_names),
        class_names=spec.class_names,
        has_masks=True,
        num_mask_classes=len(spec.mask_class_names),
        mask_class_names=spec.mask_class_names,
        mean=spec.mean,
        std=spec.std,
        options=dict(opts),
    )


def dataset_info(name: str, root: str | None = None, **options: Any) -> DatasetInfo:
    """The DatasetInfo of `name` with `options` (cheap for built-ins; reads only metadata for real ones).

    `info.options` holds the resolved options: passing them back to `get_dataset` rebuilds the dataset."""
    if name in BUILTINS:
        spec = BUILTINS[name]
        return _builtin_info(spec, _builtin_options(spec, options))
    if name == "cifar10":
        from robustbench_lip.data import cifar

        return cifar.info(**options)
    if name == "coco":
        from robustbench_lip.data import coco

        if options.get("categories") is None:
            check_coco_root(root, coco.HOW_TO_GET)
        return coco.info(root, **options)
    if name == "folder":
        from robustbench_lip.data import folder

        return folder.info(root, **options)
    raise _unknown(name)


def get_dataset(name: str, split: str = "train", root: str | None = None, **options: Any) -> RlipDataset:
    """Dataset `name`, split "train" | "test": built-ins are generated (no files), real ones read from `root`.

    Samples are (image float32 (C,H,W) in [0,1], label int64, mask int64 (H,W) or None)."""
    if not isinstance(name, str) or name not in list_datasets():
        raise _unknown(name)
    check_split(split)
    if name in BUILTINS:
        spec = BUILTINS[name]
        opts = _builtin_options(spec, options)
        n = opts["n_train"] if split == "train" else opts["n_test"]
        images, labels, masks = spec.generate(n, opts["image_size"], opts["seed"], split)
        logger.debug("generated %s/%s: %d images", name, split, n)
        return RlipDataset(_builtin_info(spec, opts), images, labels, masks)
    if name == "cifar10":
        from robustbench_lip.data import cifar

        return cifar.load(root, split, **options)
    if name == "folder":
        from robustbench_lip.data import folder

        return folder.load(root, split, **options)
    from robustbench_lip.data import coco

    check_coco_root(root, coco.HOW_TO_GET, coco.SPLIT_DIRS[split])
    return coco.load(root, split, **options)


def dataset_table(root: str | None = None) -> list[dict[str, Any]]:
    """One row per dataset for `rlip data list`: name, n_train, n_test, image_size, channels, classes,
    masks, offline (whether it can be used without a network now; real ones: files found under root)."""
    from robustbench_lip.data import cifar, coco, folder

    rows: list[dict[str, Any]] = []
    for spec in BUILTINS.values():
        rows.append(
            {
                "name": spec.name,
                "n_train": spec.n_train,
                "n_test": spec.n_test,
                "image_size": f"{spec.image_size}×{spec.image_size}",
                "channels": spec.in_channels,
                "classes": len(spec.class_names),
                "masks": f"yes ({len(spec.mask_class_names)})",
                "offline": "yes",
            }
        )
    rows.append(
        {
            "name": "cifar10",
            "n_train": 50000,
            "n_test": 10000,
            "image_size": "32×32",
            "channels": 3,
            "classes": 10,
            "masks": "no",
            "offline": cifar.availability(root),
        }
    )
    rows.append(
        {
            "name": "coco",
            "n_train": "on disk",
            "n_test": "on disk",
            "image_size": f"{coco.DEFAULT_IMAGE_SIZE}×{coco.DEFAULT_IMAGE_SIZE}",
            "channels": 3,
            "classes": "subset",
            "masks": "yes (K+1)",
            "offline": coco.availability(root),
        }
    )
    rows.append(folder.table_row(root))
    return rows
