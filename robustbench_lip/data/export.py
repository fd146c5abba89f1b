"""Write a dataset to disk in the genuine CIFAR-10 or COCO layout, atomically.

- format "cifar": OUT/cifar-10-batches-py/ (data_batch_1..5 for the train split, test_batch for the
  test split, batches.meta); readable by torchvision's CIFAR10(OUT) and `get_dataset("cifar10", root=OUT)`.
  Needs 32×32 images; 1-channel images are replicated to 3 identical channels. OUT may already exist
  (other content is left alone) but OUT/cifar-10-batches-py must not.
- format "coco": OUT/annotations/instances_{train,val}2017.json + OUT/{train,val}2017/*.png (lossless;
  masks as RLE annotations, one per image and category); readable by `get_dataset("coco", root=OUT)`.
  Needs masks. OUT must not exist or be an empty folder.
Everything is first written into a hidden temporary folder beside the target and renamed into place
at the end, so a failure (or Ctrl-C) leaves no partial output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from robustbench_lip.choices import ExportFormat, values
from robustbench_lip.config import DatasetInfo
from robustbench_lip.data.base import RlipDataset, check_int
from robustbench_lip.data.cifar import BASE_FOLDER, write_cifar_folder
from robustbench_lip.data.coco import write_coco_split
from robustbench_lip.data.registry import check_split, dataset_spec, get_dataset
from robustbench_lip.errors import RlipError

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = values(ExportFormat)


def _load_splits(
    name: str, splits: list[str], n: int | None, root: Any, options: dict[str, Any]
) -> dict[str, RlipDataset]:
    out = {}
    for split in splits:
        opts = dict(options)
        if n is not None and dataset_spec(name).generated:  # generate only what is exported
            opts[f"n_{split}"] = n
        ds = get_dataset(name, split, root=root, **opts)
        out[split] = ds.take(n) if n is not None else ds
    return out


def _mkdir(path: Path) -> Path | None:
    """Create `path` (and parents); returns the topmost folder created here (None if it existed),
    so that a failed export can remove exactly what it created. Failure is an RlipError."""
    if path.is_dir():
        return None
    top = path
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    try:
        path.mkdir(parents=True)
    except OSError as e:
        with contextlib.suppress(OSError):
            if top.is_dir():
                shutil.rmtree(top)
        raise RlipError(f"cannot create output folder {path}: {e.strerror or e}") from None
    return top


def _tempdir(parent: Path, prefix: str) -> Path:
    """A hidden temporary folder in `parent` with the usual permissions (mkdtemp makes it 0700)."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))
    except OSError as e:
        raise RlipError(f"cannot write into {parent}: {e.strerror or e}") from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def _destination(
    name: str, format: str, out: str | os.PathLike[str], n: int | None, split: str | None
) -> tuple[int | None, list[str], Path, Path]:
    """Check the options and the output folder: (n, splits, out folder, target folder)."""
    dataset_spec(name)  # unknown name: RlipError listing the datasets
    if format not in FORMATS:
        raise RlipError(f"unknown export format {format!r}; available: {', '.join(FORMATS)}")
    if n is not None:
        n = check_int("n", n, 1)
    splits = ["train", "test"] if split is None else [check_split(split)]
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise RlipError(f"--out {out} exists and is not a folder")
    target = out / BASE_FOLDER if format == "cifar" else out
    if format == "cifar" and target.exists():
        raise RlipError(f"{target} already exists; remove it or choose another --out")
    if format == "coco" and out.is_dir() and any(out.iterdir()):
        raise RlipError(f"--out {out} is not empty; COCO export needs a new or empty folder")
    return n, splits, out, target


def _check_fits(name: str, format: str, info: DatasetInfo) -> None:
    """Refuse data the format cannot hold (CIFAR: 32×32, 1 or 3 channels; COCO: masks)."""
    if format == "cifar":
        if tuple(info.image_size) != (32, 32):
            raise RlipError(
                f"CIFAR format holds 32×32 images, {name} has {info.image_size}; pass image_size=32"
            )
        if info.in_channels not in (1, 3):
            raise RlipError(f"CIFAR format holds RGB images, {name} has {info.in_channels} channels")
    elif not info.has_masks:
        raise RlipError(f"COCO export needs masks and {name} has none")


def _write(
    name: str, format: str, data: dict[str, RlipDataset], info: DatasetInfo, tmp: Path, target: Path
) -> None:
    """Write the splits into the temporary folder `tmp`, then move the result to `target`."""
    if format == "cifar":
        arrays = {}
        for s, ds in data.items():
            images = ds.uint8_images()
            if images.shape[1] == 1:  # grayscale → three identical channels
                images = images.expand(-1, 3, -1, -1).contiguous()
            arrays[s] = (images, ds.tensors()[1])
        write_cifar_folder(tmp / BASE_FOLDER, arrays, tuple(info.class_names))
        os.replace(tmp / BASE_FOLDER, target)
    else:
        categories = tuple(info.mask_class_names or ())[1:]
        for s, ds in data.items():
            masks = ds.tensors()[2]
            assert masks is not None
            write_coco_split(
                tmp,
                s,
                ds.uint8_images(),
                masks.to(torch.uint8),
                categories,
                description=f"robustbench-lip export of {name} ({s}, options {info.options})",
                supercategory=name,
            )
        os.replace(tmp, target)


def export_dataset(
    name: str,
    format: str = "cifar",
    out: str | os.PathLike[str] = ".",
    n: int | None = None,
    split: str | None = None,
    root: str | None = None,
    **options: Any,
) -> Path:
    """Export dataset `name` (built-in, or a real one read from `root`) in `format` under `out`.

    n: images per split (default: the whole split); split: "train" | "test" | None (both).
    options go to `get_dataset` (n_train, n_test, image_size, seed, ...). Returns the folder written
    (OUT/cifar-10-batches-py for cifar, OUT for coco)."""
    n, splits, out, target = _destination(name, format, out, n, split)
    data = _load_splits(name, splits, n, root, options)  # validate everything before writing
    info = next(iter(data.values())).info
    _check_fits(name, format, info)

    created = _mkdir(out) if format == "cifar" else _mkdir(out.parent)
    parent = out if format == "cifar" else out.parent
    tmp = _tempdir(parent, f".{target.name}.")
    try:
        _write(name, format, data, info, tmp, target)
    except OSError as e:
        raise RlipError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if created is not None and not target.exists():
            shutil.rmtree(created, ignore_errors=True)  # only folders this call created
    logger.debug("exported %s (%s) as %s to %s", name, ", ".join(splits), format, target)
    return target
