"""Hints for a dataset `--root` that is one level off: each function looks a little around `root`
(the folder itself, its parent, its children and grandchildren; hidden folders skipped) and returns
a short sentence naming the `--root` that would work, or None when it finds nothing better to say
(also when `root` is not an existing folder: the loaders' own messages say so).

Used by the cifar10, coco and folder loaders when their expected layout is not under `root`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from robustbench_lip.errors import RlipError

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES: tuple[str, ...] = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
COCO_SPLIT_DIRS: tuple[str, ...] = ("train2017", "val2017")
COCO_ARCHIVE = "annotations_trainval2017.zip"
_MAX_ENTRIES = 200  # folders with more entries than this are not searched further (no slow scans)


def _subdirs(folder: Path) -> Iterator[Path]:
    """Non-hidden subfolders of `folder`, sorted, at most _MAX_ENTRIES entries looked at."""
    try:
        with os.scandir(folder) as it:
            entries = []
            for k, e in enumerate(it):
                if k >= _MAX_ENTRIES:
                    break
                if not e.name.startswith(".") and e.is_dir():
                    entries.append(Path(e.path))
    except OSError:
        return iter(())
    return iter(sorted(entries))


def _find_below(root: Path, test: Callable[[Path], bool], depth: int = 2) -> Path | None:
    """The first folder at depth 1..`depth` below `root` (breadth first, sorted) that passes `test`."""
    level = [root]
    for _ in range(depth):
        level = [d for parent in level for d in _subdirs(parent)]
        for d in level:
            if test(d):
                return d
    return None


def _arg(path: Path) -> str:
    text = str(path)
    return f"'{text}'" if any(c.isspace() for c in text) else text


def _has_cifar_files(folder: Path) -> bool:
    return any((folder / f).is_file() for f in CIFAR_FILES)


def cifar_root_hint(root: Path) -> str | None:
    """Why ROOT/cifar-10-batches-py/ is not there and which --root would work (None: no idea)."""
    if not root.is_dir():
        return None
    if _has_cifar_files(root):
        if root.name == CIFAR_FOLDER:
            return f"--root points at {CIFAR_FOLDER} itself; pass its parent: --root {_arg(root.parent)}"
        return (
            f"{root} holds the CIFAR-10 batch files directly; they must be in a folder named {CIFAR_FOLDER} "
            f"(rename {root.name} to {CIFAR_FOLDER} and pass its parent: --root {_arg(root.parent)})"
        )
    found = _find_below(root, lambda d: (d / CIFAR_FOLDER).is_dir())
    if found is not None:
        return f"found {found / CIFAR_FOLDER}: pass --root {_arg(found)}"
    if (root / CIFAR_ARCHIVE).is_file():
        archive = root / CIFAR_ARCHIVE
        return f"{archive} is not extracted: run tar xzf {_arg(archive)} -C {_arg(root)}"
    return None


def _has_instances(folder: Path) -> bool:
    return any((folder / f"instances_{s}.json").is_file() for s in COCO_SPLIT_DIRS)


def coco_root_hint(root: Path) -> str | None:
    """Why ROOT/annotations/instances_*.json is not there and which --root would work (None: no idea)."""
    if not root.is_dir():
        return None
    if _has_instances(root):
        return f"--root points at the annotations folder itself; pass its parent: --root {_arg(root.parent)}"
    if root.name in COCO_SPLIT_DIRS and _has_instances(root.parent / "annotations"):
        return f"--root points at the image folder {root.name}; pass its parent: --root {_arg(root.parent)}"
    ann = root / "annotations"
    if ann.is_dir():
        other = sorted(p.name for p in ann.glob("*.json"))[:5]
        seen = f" (found: {', '.join(other)})" if other else " (it is empty)"
        return (
            f"{ann} has no instances_train2017.json / instances_val2017.json{seen}; rlip reads the "
            f"instance annotations of {COCO_ARCHIVE}"
        )
    found = _find_below(root, lambda d: _has_instances(d / "annotations"))
    if found is not None:
        return f"found {found / 'annotations'}: pass --root {_arg(found)}"
    if (root / COCO_ARCHIVE).is_file():
        archive = root / COCO_ARCHIVE
        return f"{archive} is not extracted: run unzip {_arg(archive)} -d {_arg(root)}"
    return None


def check_coco_root(
    root: str | os.PathLike[str] | None, how_to_get: str, split_dir: str | None = None
) -> None:
    """Raise an RlipError with a hint when `root` has no annotations/instances_{train,val}2017.json at
    all (a missing single split is left to the loader, whose message names the file). `split_dir`
    ("train2017" | "val2017"): the split asked for, named in the message."""
    if root is None or str(root) == "":
        return
    r = Path(root).expanduser()
    if _has_instances(r / "annotations"):
        return
    hint = coco_root_hint(r)
    what = (
        f"file not found: {r / 'annotations' / f'instances_{split_dir}.json'}"
        if split_dir
        else (f"files not found under {r / 'annotations'}")
    )
    raise RlipError(f"COCO annotation {what}; " + (hint if hint else how_to_get))


def _is_split_folder(d: Path) -> bool:
    return (d / "train").is_dir() and (d / "test").is_dir()


def folder_root_hint(root: Path) -> str | None:
    """Why ROOT/train/ and ROOT/test/ are not both there and which --root would work (None: no idea)."""
    if not root.is_dir():
        return None
    if root.name in ("train", "test") and _is_split_folder(root.parent):
        return f"--root points at the {root.name} split itself; pass its parent: --root {_arg(root.parent)}"
    if root.name in ("images", "masks") and _is_split_folder(root.parent.parent):
        return f"--root points inside a split; pass --root {_arg(root.parent.parent)}"
    if (root / "train").is_dir() and not (root / "test").exists() and (root / "val").is_dir():
        return "the held-out split must be named test/ (found val/: rename it, or symlink test -> val)"
    found = _find_below(root, _is_split_folder)
    if found is not None:
        return f"found {found / 'train'} and {found / 'test'}: pass --root {_arg(found)}"
    classes = [d.name for d in _subdirs(root) if d.name not in ("train", "test") and _has_image(d)]
    if len(classes) >= 2 and not (root / "train").exists():
        shown = ", ".join(classes[:3]) + (", ..." if len(classes) > 3 else "")
        return (
            f"{root} holds class folders ({shown}) but no split: move them into {root / 'train'}/ and "
            f"hold some images out in {root / 'test'}/ under the same class folder names"
        )
    return None


def _has_image(folder: Path) -> bool:
    """Whether `folder` directly holds an image file (among its first _MAX_ENTRIES entries)."""
    exts = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
    try:
        with os.scandir(folder) as it:
            for k, e in enumerate(it):
                if k >= _MAX_ENTRIES:
                    break
                if e.name.lower().endswith(exts) and e.is_file():
                    return True
    except OSError:
        pass
    return False
