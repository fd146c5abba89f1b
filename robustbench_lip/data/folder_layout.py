"""The on-disk layout of the `folder` dataset: find the task, the classes and the (image, label/mask)
files of each split, without decoding any image. Every layout mistake is a one-line RlipError.

Classification (torchvision ImageFolder):  ROOT/{train,test}/<class>/**/*.{png,jpg,...}
Segmentation:  ROOT/{train,test}/images/*.{png,jpg,...} + ROOT/{train,test}/masks/*.png (same stem)
               and ROOT/classes.txt (one name per line) or ROOT/classes.json (a list of names).
The task is segmentation when ROOT/train has an images/ or masks/ folder (so these two names cannot
be classes), else classification. Hidden files and folders (a leading ".", e.g. .ipynb_checkpoints,
macOS ._x.jpg) are skipped — a deviation from ImageFolder, which would read them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lip.data.layout_checks import folder_root_hint
from robustbench_lip.errors import RlipError

SPLITS: tuple[str, ...] = ("train", "test")
# torchvision.datasets.folder.IMG_EXTENSIONS (compared case-insensitively, as there)
IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS: tuple[str, ...] = (".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff")  # lossless only
CLASS_FILES: tuple[str, ...] = ("classes.txt", "classes.json")
LAYOUT_HELP = (
    "expected ROOT/train/<class>/*.png and ROOT/test/<class>/*.png (classification), or "
    "ROOT/{train,test}/images/*.png + ROOT/{train,test}/masks/*.png and ROOT/classes.txt (segmentation)"
)


@dataclass(frozen=True)
class Layout:
    """What ROOT holds: task "classification" | "segmentation" and the class names (classification:
    the sorted folder names of train/; segmentation: the classes file, index = mask value)."""

    root: Path
    task: str
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """One sample's files: image, class index (classification; -1 for segmentation), mask or None."""

    image: Path
    label: int
    mask: Path | None


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _has_ext(name: str, exts: tuple[str, ...]) -> bool:
    return name.lower().endswith(exts)


def _other_files_note(files: list[str]) -> str:
    exts = sorted({os.path.splitext(f)[1].lower() or f for f in files})
    return f" (found {len(files)} other file(s): {', '.join(exts[:5])})" if files else ""


def _order_key(root: Path, path: Path) -> str:
    """Samples are ordered by SHA-256 of their path relative to ROOT: a fixed, platform-independent
    pseudo-random order that mixes the classes (so "the first n" of a split is a fair sample) and
    keeps each file's place when files are added or removed."""
    return hashlib.sha256(path.relative_to(root).as_posix().encode("utf-8")).hexdigest()


def _split_dir(root: Path, split: str) -> Path:
    d = root / split
    if not d.is_dir():
        hint = folder_root_hint(root)
        raise RlipError(f"folder dataset {root} has no {split}/ folder; {hint or LAYOUT_HELP}")
    return d


def resolve_root(root: Any) -> Path:
    """ROOT as an existing folder; None / missing / a file → RlipError."""
    if root is None or str(root) == "":
        raise RlipError(f"the folder dataset needs --root DIR; {LAYOUT_HELP}")
    r = Path(root).expanduser()
    if not r.is_dir():
        raise RlipError(f"folder dataset root {r} {'is not a folder' if r.exists() else 'does not exist'}")
    return r


def scan(root: Any) -> Layout:
    """The layout of ROOT: task and class names (reads folder names and the classes file only)."""
    r = resolve_root(root)
    train = _split_dir(r, "train")
    _split_dir(r, "test")
    if (train / "images").is_dir() or (train / "masks").is_dir():
        return Layout(r, "segmentation", read_class_file(r))
    classes = tuple(sorted(e.name for e in os.scandir(train) if e.is_dir() and _visible(e.name)))
    if not classes:
        loose = [e.name for e in os.scandir(train) if e.is_file() and _visible(e.name)]
        what = "holds files but no class folder" if loose else "is empty"
        raise RlipError(
            f"{train} {what}; put each class's images in {train}/<class>/ (or use images/ + masks/ "
            "for segmentation)"
        )
    if len(classes) < 2:
        raise RlipError(f"{train} has one class folder ({classes[0]}); classification needs at least two")
    return Layout(r, "classification", classes)


def read_class_file(root: Path) -> tuple[str, ...]:
    """ROOT/classes.txt (one name per line; blank lines at the end ignored) or ROOT/classes.json (a
    JSON list of names): entry k names mask value k. Exactly one of the two must exist."""
    present = [root / f for f in CLASS_FILES if (root / f).is_file()]
    if not present:
        raise RlipError(
            f"segmentation folder {root} needs {root / 'classes.txt'}: one class name per line, line k "
            "(from 0) naming mask value k, background first (or classes.json: a list of names)"
        )
    if len(present) > 1:
        raise RlipError(f"{root} has both classes.txt and classes.json; keep one")
    path = present[0]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RlipError(f"cannot read {path} ({type(e).__name__}: {e})") from None
    if path.suffix == ".json":
        try:
            names = json.loads(text)
        except ValueError as e:
            raise RlipError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RlipError(f"{path} must hold a JSON list of class names (index = mask value)")
    else:
        names = [line.strip() for line in text.rstrip().splitlines()]
    names = [str(n).strip() for n in names]
    if "" in names:
        raise RlipError(f"{path}: class {names.index('')} has an empty name (entry k names mask value k)")
    if len(names) < 2 or len(names) > 255:
        raise RlipError(f"{path} lists {len(names)} classes; a mask needs 2 to 255 (background included)")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RlipError(f"{path} lists a class name twice: {', '.join(dup)}")
    return tuple(names)


def _class_files(class_dir: Path) -> tuple[list[Path], list[str]]:
    """Image files under `class_dir` (recursive, symlinks followed, hidden skipped), other file names."""
    images: list[Path] = []
    other: list[str] = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        for f in sorted(filenames):
            if not _visible(f):
                continue
            if _has_ext(f, IMG_EXTENSIONS):
                images.append(Path(dirpath) / f)
            else:
                other.append(f)
    return images, other


def _classification_samples(layout: Layout, split: str) -> list[Sample]:
    d = _split_dir(layout.root, split)
    index = {c: i for i, c in enumerate(layout.class_names)}
    found = sorted(e.name for e in os.scandir(d) if e.is_dir() and _visible(e.name))
    unknown = [c for c in found if c not in index]
    if unknown:
        raise RlipError(
            f"{d / unknown[0]} is not a class of {layout.root / 'train'} (classes: "
            f"{', '.join(layout.class_names[:10])}{', ...' if len(layout.class_names) > 10 else ''})"
        )
    samples, others = [], []
    for c in found:
        files, other = _class_files(d / c)
        others += other
        if not files and split == "train":
            raise RlipError(f"class folder {d / c} has no images{_other_files_note(other)}")
        samples += [Sample(p, index[c], None) for p in files]
    if not samples:
        raise RlipError(f"{d} has no images in its class folders{_other_files_note(others)}")
    return samples


def _stems(folder: Path, exts: tuple[str, ...], what: str) -> tuple[dict[str, Path], list[str]]:
    """stem → file for the `exts` files directly in `folder`; a stem used twice is an RlipError."""
    out: dict[str, Path] = {}
    other = []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        if not e.is_file() or not _visible(e.name):
            continue
        if not _has_ext(e.name, exts):
            other.append(e.name)
            continue
        stem = os.path.splitext(e.name)[0]
        if stem in out:
            raise RlipError(f"two {what} files named {stem!r} in {folder}: {out[stem].name}, {e.name}")
        out[stem] = Path(e.path)
    return out, other


def _segmentation_samples(layout: Layout, split: str) -> list[Sample]:
    d = _split_dir(layout.root, split)
    for sub in ("images", "masks"):
        if not (d / sub).is_dir():
            raise RlipError(f"segmentation folder {d} has no {sub}/ folder; {LAYOUT_HELP}")
    images, other = _stems(d / "images", IMG_EXTENSIONS, "image")
    masks, other_masks = _stems(d / "masks", MASK_EXTENSIONS, "mask")
    lossy = [f for f in other_masks if _has_ext(f, (".jpg", ".jpeg", ".webp"))]
    if lossy:
        raise RlipError(
            f"mask {d / 'masks' / lossy[0]} is lossy (JPEG/WebP change label values); save masks as PNG"
        )
    if not images:
        raise RlipError(f"{d / 'images'} has no images{_other_files_note(other)}")
    no_mask = [s for s in images if s not in masks]
    if no_mask:
        more = f" (and {len(no_mask) - 1} more)" if len(no_mask) > 1 else ""
        raise RlipError(
            f"image {images[no_mask[0]]} has no mask {d / 'masks' / no_mask[0]}.png{more}; masks are "
            "matched to images by file name without extension"
        )
    no_image = [s for s in masks if s not in images]
    if no_image:
        more = f" (and {len(no_image) - 1} more)" if len(no_image) > 1 else ""
        raise RlipError(f"mask {masks[no_image[0]]} has no image {d / 'images' / no_image[0]}.*{more}")
    return [Sample(images[s], -1, masks[s]) for s in images]


def split_samples(layout: Layout, split: str) -> list[Sample]:
    """Every sample of `split` ("train" | "test"), in the fixed order of `_order_key`."""
    if split not in SPLITS:
        raise RlipError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if layout.task == "classification":
        samples = _classification_samples(layout, split)
    else:
        samples = _segmentation_samples(layout, split)
    return sorted(samples, key=lambda s: _order_key(layout.root, s.image))
