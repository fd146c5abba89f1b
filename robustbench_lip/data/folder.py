"""`folder`: your own images, in torchvision's ImageFolder layout or as image/mask pairs.

Layouts (see data/folder_layout.py; `--root DIR`):
- classification: DIR/{train,test}/<class>/*.png|jpg|... ; classes = the sorted folder names of
  DIR/train (ImageFolder's order), the same indices in test/ (a test/ class not in train/ is an error).
- segmentation: DIR/{train,test}/images/NAME.png|jpg|... + DIR/{train,test}/masks/NAME.png (paired by
  NAME) + DIR/classes.txt (one class name per line; line k, from 0, names mask value k, background
  first) or DIR/classes.json (a JSON list of names). Masks are single-channel images of class
  indices (8-bit grayscale, palette or 16-bit); a value outside the list (e.g. 255 = "ignore" in some
  datasets, which rlip's losses do not have) is an error. Image label, as for `lesions`: the most
  frequent non-background value of the full-resolution mask, 0 when the mask is all background
  (ties → the lower index); so image classes = mask classes and label k ↔ mask value k.

Options: image_size (side S, default 32: images resized to S×S bilinear, masks nearest; aspect
ratio not kept), channels (1 or 3; default: 1 if the first train image is grayscale, else 3;
colour → gray by PIL's ITU-R 601 luma, gray → RGB by repeating the channel, alpha dropped, 16-bit
gray scaled by 1/257; a split mixing grayscale and colour files is converted so, with a logged
warning naming the counts and the rule), mean / std
(per channel; default: measured on the train split's resized images, rounded to 4 decimals; a
constant channel gets std 1), n_train / n_test (keep the first n). Samples are ordered by a hash of
their path (fixed, mixes the classes: the first n of a split is a fair sample). Images are decoded
eagerly into memory (C·S² bytes each); the test split's default mean/std reads the train split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from robustbench_lip.config import DatasetInfo
from robustbench_lip.data.base import RlipDataset, check_int, check_options
from robustbench_lip.data.folder_decode import channel_stats, decode, first_channels
from robustbench_lip.data.folder_layout import Layout, Sample, scan, split_samples
from robustbench_lip.errors import RlipError

logger = logging.getLogger(__name__)

NAME = "folder"
DEFAULT_IMAGE_SIZE = 32
OPTIONS: tuple[str, ...] = ("image_size", "channels", "mean", "std", "n_train", "n_test")


def _floats(name: str, value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        out = [float(v) for v in value]
        if not out or any(isinstance(v, bool) or not np.isfinite(v) for v in out):
            raise ValueError
    except (TypeError, ValueError):
        raise RlipError(
            f"option {name} must be one number per channel (e.g. [0.5, 0.5, 0.5]), got {value!r}"
        ) from None
    return out


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated options (channels / mean / std only when given)."""
    check_options(NAME, options, OPTIONS)
    out: dict[str, Any] = {
        "image_size": check_int("image_size", options.get("image_size", DEFAULT_IMAGE_SIZE), 8, 1024)
    }
    if options.get("channels") is not None:
        out["channels"] = check_int("channels", options["channels"], 1, 3)
        if out["channels"] == 2:
            raise RlipError("option channels must be 1 (grayscale) or 3 (RGB), got 2")
    for key in ("mean", "std"):
        vals = _floats(key, options.get(key))
        if vals is not None:
            if key == "std" and min(vals) <= 0:
                raise RlipError(f"option std must be > 0 for every channel, got {vals}")
            out[key] = vals
    for key in ("n_train", "n_test"):
        if options.get(key) is not None:
            out[key] = check_int(key, options[key], 1)
    return out


def _per_channel(opts: dict[str, Any], key: str, channels: int) -> None:
    vals = opts.get(key)
    if vals is None:
        return
    if len(vals) == 1 and channels > 1:
        opts[key] = vals * channels
    elif len(vals) != channels:
        raise RlipError(f"option {key} has {len(vals)} values but the images have {channels} channel(s)")


def _take(samples: list[Sample], opts: dict[str, Any], split: str) -> list[Sample]:
    n = opts.get(f"n_{split}")
    return samples[:n] if n is not None else samples


def _resolve(root: Any, options: dict[str, Any]) -> tuple[Layout, dict[str, Any], list[Sample], Any]:
    """Layout, resolved options (channels, mean, std filled in), the train samples and — when the
    statistics had to be measured — the decoded train tensors (else None)."""
    opts = _options(options)
    layout = scan(root)
    train = _take(split_samples(layout, "train"), opts, "train")
    if "channels" not in opts:
        opts["channels"] = first_channels(train[0].image)
    for key in ("mean", "std"):
        _per_channel(opts, key, opts["channels"])
    decoded = None
    if "mean" not in opts or "std" not in opts:
        decoded = decode(layout, train, opts["channels"], opts["image_size"])
        mean, std = channel_stats(decoded[0])
        logger.info("folder: mean %s, std %s measured on %d train images", mean, std, len(train))
        opts.setdefault("mean", mean)
        opts.setdefault("std", std)
    return layout, {k: opts[k] for k in OPTIONS if k in opts}, train, decoded


def _info(layout: Layout, opts: dict[str, Any]) -> DatasetInfo:
    s = opts["image_size"]
    names = layout.class_names
    seg = layout.task == "segmentation"
    return DatasetInfo(
        name=NAME,
        in_channels=opts["channels"],
        image_size=(s, s),
        num_classes=len(names),
        class_names=names,
        has_masks=seg,
        num_mask_classes=len(names) if seg else None,
        mask_class_names=names if seg else None,
        mean=tuple(opts["mean"]),
        std=tuple(opts["std"]),
        options=dict(opts),
    )


def info(root: Any, **options: Any) -> DatasetInfo:
    """DatasetInfo of the folder dataset under `root` (decodes the train split unless mean and std
    are given). `info.options` holds the resolved options: passing them back skips the measurement."""
    layout, opts, _, _ = _resolve(root, options)
    return _info(layout, opts)


def load(root: Any, split: str = "train", **options: Any) -> RlipDataset:
    """`split` ("train" | "test") of the folder dataset under `root` → RlipDataset of uint8 (C,S,S)
    images, int64 labels and (segmentation) masks; see the module docstring."""
    layout, opts, train, decoded = _resolve(root, options)
    if split == "train" and decoded is not None:
        tensors = decoded
    else:
        samples = train if split == "train" else _take(split_samples(layout, split), opts, split)
        tensors = decode(layout, samples, opts["channels"], opts["image_size"])
    images, labels, *rest = tensors
    logger.debug("loaded folder %s from %s: %d images", split, layout.root, len(labels))
    return RlipDataset(_info(layout, opts), images, labels, rest[0] if rest else None)


def table_row(root: Any) -> dict[str, Any]:
    """The `rlip data list` row: what is found under `root` (class count, masks) if it is given."""
    row: dict[str, Any] = {
        "name": NAME,
        "n_train": "on disk",
        "n_test": "on disk",
        "image_size": f"{DEFAULT_IMAGE_SIZE}×{DEFAULT_IMAGE_SIZE}",
        "channels": "1 or 3",
        "classes": "folders",
        "masks": "images/+masks/",
        "offline": "needs --root",
    }
    if root is None:
        return row
    try:
        layout = scan(root)
    except RlipError:
        found = Path(root).expanduser().is_dir()
        row["offline"] = "no (bad layout: see rlip data preview)" if found else "no (not found)"
        return row
    k = len(layout.class_names)
    masks = f"yes ({k})" if layout.task == "segmentation" else "no"
    row.update(classes=k, masks=masks, offline="yes (found)")
    return row
