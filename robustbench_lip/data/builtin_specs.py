"""The built-in datasets, one `DatasetSpec` each (registered on import of data.registry):
generated `shapes` and `lesions` (options n_train, n_test, image_size, seed; no files), real
`cifar10` and `coco` (files under root; natural images), and `folder` (your own images under root).
The real loaders are imported when used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from robustbench_lip.config import DatasetInfo
from robustbench_lip.data import lesions, shapes
from robustbench_lip.data.base import RlipDataset, check_int, check_options
from robustbench_lip.data.layout_checks import check_coco_root
from robustbench_lip.data.registry import DatasetSpec, register_dataset

logger = logging.getLogger(__name__)


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


def _builtin_load(spec: Builtin, root: Any, split: str, **options: Any) -> RlipDataset:
    opts = _builtin_options(spec, options)
    n = opts["n_train"] if split == "train" else opts["n_test"]
    images, labels, masks = spec.generate(n, opts["image_size"], opts["seed"], split)
    logger.debug("generated %s/%s: %d images", spec.name, split, n)
    return RlipDataset(_builtin_info(spec, opts), images, labels, masks)


def _builtin_row(spec: Builtin, root: Any) -> dict[str, Any]:
    return {
        "name": spec.name,
        "n_train": spec.n_train,
        "n_test": spec.n_test,
        "image_size": f"{spec.image_size}×{spec.image_size}",
        "channels": spec.in_channels,
        "classes": len(spec.class_names),
        "masks": f"yes ({len(spec.mask_class_names)})",
        "offline": "yes",
    }


def _cifar_info(root: Any, **options: Any) -> DatasetInfo:
    from robustbench_lip.data import cifar

    return cifar.info(**options)


def _cifar_load(root: Any, split: str, **options: Any) -> RlipDataset:
    from robustbench_lip.data import cifar

    return cifar.load(root, split, **options)


def _cifar_row(root: Any) -> dict[str, Any]:
    from robustbench_lip.data import cifar

    return {
        "name": "cifar10",
        "n_train": 50000,
        "n_test": 10000,
        "image_size": "32×32",
        "channels": 3,
        "classes": 10,
        "masks": "no",
        "offline": cifar.availability(root),
    }


def _coco_info(root: Any, **options: Any) -> DatasetInfo:
    from robustbench_lip.data import coco

    if options.get("categories") is None:
        check_coco_root(root, coco.HOW_TO_GET)
    return coco.info(root, **options)


def _coco_load(root: Any, split: str, **options: Any) -> RlipDataset:
    from robustbench_lip.data import coco

    check_coco_root(root, coco.HOW_TO_GET, coco.SPLIT_DIRS[split])
    return coco.load(root, split, **options)


def _coco_row(root: Any) -> dict[str, Any]:
    from robustbench_lip.data import coco

    return {
        "name": "coco",
        "n_train": "on disk",
        "n_test": "on disk",
        "image_size": f"{coco.DEFAULT_IMAGE_SIZE}×{coco.DEFAULT_IMAGE_SIZE}",
        "channels": 3,
        "classes": "subset",
        "masks": "yes (K+1)",
        "offline": coco.availability(root),
    }


def _folder(what: str) -> Callable[..., Any]:
    def call(*args: Any, **options: Any) -> Any:
        from robustbench_lip.data import folder

        return getattr(folder, what)(*args, **options)

    return call


for _b in BUILTINS.values():
    register_dataset(
        DatasetSpec(
            _b.name,
            info=lambda root, _b=_b, **o: _builtin_info(_b, _builtin_options(_b, o)),
            load=partial(_builtin_load, _b),
            row=partial(_builtin_row, _b),
            generated=True,
        )
    )
register_dataset(DatasetSpec("cifar10", _cifar_info, _cifar_load, _cifar_row, natural=True, download=True))
register_dataset(DatasetSpec("coco", _coco_info, _coco_load, _coco_row, natural=True))
register_dataset(DatasetSpec("folder", _folder("info"), _folder("load"), _folder("table_row")))
