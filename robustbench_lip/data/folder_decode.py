"""Decoding for the `folder` dataset: images → uint8 (C,S,S), masks → class indices, image labels from
masks, per-channel statistics. Unreadable files and bad mask values are one-line RlipErrors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lip.data.folder_layout import Layout, Sample
from robustbench_lip.errors import RlipError
from robustbench_lip.labels import labels_from_counts

logger = logging.getLogger(__name__)

_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def _open_error(path: Path, e: Exception) -> RlipError:
    return RlipError(f"cannot read image {path} ({type(e).__name__}: {e})")


def _to_array(im: Any, channels: int) -> np.ndarray:
    """A PIL image → uint8 (H, W, C) with C = `channels`."""
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode == "I":
        gray = np.clip(np.round(np.asarray(im, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        im = Image.fromarray(gray, mode="L")
    arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def first_channels(path: Path) -> int:
    """1 if the image at `path` is grayscale (modes 1, L, LA, I, I;16, F), else 3."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return 1 if im.mode in _GRAY_MODES else 3
    except Exception as e:
        raise _open_error(path, e) from None


def read_image(path: Path, channels: int, size: int) -> tuple[np.ndarray, tuple[int, int], bool]:
    """uint8 (C, S, S) of the image at `path`, its original (width, height), and whether it is
    grayscale in the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            orig, gray = im.size, im.mode in _GRAY_MODES
            arr = _to_array(im, channels)
    except Exception as e:  # not an image, truncated, decompression bomb, ...
        raise _open_error(path, e) from None
    if orig != (size, size):
        mode = "L" if channels == 1 else "RGB"
        pil = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode=mode)
        arr = _to_array(pil.resize((size, size), Image.Resampling.BILINEAR), channels)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), orig, gray


def warn_mixed(n_gray: int, n_colour: int, channels: int, root: Path) -> None:
    """Log (warning) that a folder mixes grayscale and colour images, and how they were converted."""
    if n_gray == 0 or n_colour == 0:
        return
    rule = (
        "colour → gray by ITU-R 601 luma" if channels == 1 else "gray → RGB by repeating the channel"
    )
    logger.warning(
        "folder %s mixes %d grayscale and %d colour image(s); all are read with %d channel(s) (%s); "
        "pass the dataset option channels=1 or 3 (--data-opt channels=3) to choose",
        root, n_gray, n_colour, channels, rule,
    )  # fmt: skip


def read_mask(path: Path, num_classes: int, class_file: str) -> np.ndarray:
    """int64 (H, W) class indices of the mask at `path`, each in [0, num_classes)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            arr = np.asarray(im)
    except Exception as e:
        raise RlipError(f"cannot read mask {path} ({type(e).__name__}: {e})") from None
    if arr.ndim == 3:  # RGB(A) / LA: accepted only when it is gray (identical colour channels)
        rgb = arr[:, :, : 3 if arr.shape[2] >= 3 else 1]
        if not (rgb == rgb[:, :, :1]).all():
            raise RlipError(
                f"mask {path} is a colour ({mode}) image; a mask holds one class index per pixel "
                "(8-bit grayscale or palette PNG)"
            )
        arr = rgb[:, :, 0]
    values = arr.astype(np.int64)
    bad = np.unique(values[(values < 0) | (values >= num_classes)])
    if bad.size:
        note = ""
        if set(np.unique(values).tolist()) <= {0, 255}:
            note = "; it is a black/white mask (0/255): store 1, not 255, for the foreground"
        elif 255 in bad:
            note = "; 255 ('ignore' in some datasets) is not supported: map those pixels to a class"
        raise RlipError(
            f"mask {path} has value {int(bad[-1])}, outside the {num_classes} classes of {class_file} "
            f"(0..{num_classes - 1}){note}"
        )
    return values


def _mask_label(mask: np.ndarray, k: int) -> int:
    counts = torch.from_numpy(np.bincount(mask.ravel(), minlength=k))[None]
    return int(labels_from_counts(counts, 0)[0])  # image classes = mask classes: offset 0


def decode(layout: Layout, samples: list[Sample], channels: int, size: int) -> tuple[torch.Tensor, ...]:
    """images uint8 (N,C,S,S), labels int64 (N,), masks uint8 (N,S,S) (segmentation) of `samples`."""
    from PIL import Image

    k = len(layout.class_names)
    class_file = next((f for f in ("classes.txt", "classes.json") if (layout.root / f).is_file()), "")
    images = np.empty((len(samples), channels, size, size), dtype=np.uint8)
    labels = np.empty(len(samples), dtype=np.int64)
    masks = np.empty((len(samples), size, size), dtype=np.uint8) if layout.task == "segmentation" else None
    n_gray = 0
    for i, s in enumerate(samples):
        images[i], (w, h), gray = read_image(s.image, channels, size)
        n_gray += gray
        if s.mask is None or masks is None:
            labels[i] = s.label
            continue
        m = read_mask(s.mask, k, class_file)
        if m.shape != (h, w):
            raise RlipError(f"mask {s.mask} is {m.shape[1]}×{m.shape[0]} but its image {s.image} is {w}×{h}")
        labels[i] = _mask_label(m, k)
        pil = Image.fromarray(m.astype(np.uint8), mode="L")
        if (w, h) != (size, size):
            pil = pil.resize((size, size), Image.Resampling.NEAREST)
        masks[i] = np.asarray(pil)
    warn_mixed(n_gray, len(samples) - n_gray, channels, layout.root)
    out = (torch.from_numpy(images), torch.from_numpy(labels))
    return out if masks is None else (*out, torch.from_numpy(masks))


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images (N,C,H,W) in [0,1] units, rounded to 4
    decimals; a channel with std < 1e-3 (constant) gets std 1.0 (normalising it would blow it up)."""
    x = images.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3), unbiased=False).tolist()
    if min(std) < 1e-3:
        logger.warning("folder: a channel of the train images is constant; using std 1.0 for it")
    return [round(v, 4) for v in mean], [round(v, 4) if v >= 1e-3 else 1.0 for v in std]
