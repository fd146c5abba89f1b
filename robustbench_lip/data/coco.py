"""`coco`: COCO instance annotations (pycocotools) + images → fixed-size images, semantic masks, labels.

Expected layout (the official one): ROOT/annotations/instances_train2017.json with images in
ROOT/train2017/, and ROOT/annotations/instances_val2017.json with ROOT/val2017/ (split "train" →
train2017, "test" → val2017).

- Categories: option `categories` (names, a list or a comma-separated string). Default: those of
  person, car, dog, cat, bird present in the file; if none of them is (e.g. an export of `shapes`),
  every category of the file, in id order. Category i of the subset is image class i and mask label i+1;
  mask label 0 is background (pixels of no chosen category).
- Masks: each chosen annotation (polygon or RLE, crowd included) is rasterised with `COCO.annToMask`;
  larger annotations are painted first so smaller objects stay visible on top.
- Image label: the chosen category covering the most pixels of the full-resolution mask (ties → the
  lower index). Images with no pixel of a chosen category are skipped (there is no "background"
  image class: the classifiers' class maps need a real class per image).
- Size: images are resized to image_size×image_size (default 64; bilinear for images, nearest for
  masks; aspect ratio not kept; images already at that size are left untouched, so PNG is lossless).
- n_train / n_test keep the first n usable images (by image id). Images are decoded eagerly (memory:
  3·S² bytes per image).
Grayscale images are converted to RGB (3 channels). Mean/std: the ImageNet constants. Option
`grayscale` (default false): every image converted to one channel (PIL "L", ITU-R 601 luma) with
the luma of those constants — for models that segment one channel (the image-to-image U-Nets with
one category: mask = output > 0).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustbench_lip.config import DatasetInfo
from robustbench_lip.data.base import RlipDataset, check_int, check_options
from robustbench_lip.errors import RlipError
from robustbench_lip.labels import labels_from_counts

logger = logging.getLogger(__name__)

SPLIT_DIRS = {"train": "train2017", "test": "val2017"}
DEFAULT_CATEGORIES: tuple[str, ...] = ("person", "car", "dog", "cat", "bird")
DEFAULT_IMAGE_SIZE = 64
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, the usual choice for COCO images
STD = (0.229, 0.224, 0.225)
GRAY_MEAN = (0.299 * MEAN[0] + 0.587 * MEAN[1] + 0.114 * MEAN[2],)  # luma of the ImageNet mean
GRAY_STD = (0.226,)  # ≈ the ImageNet std, channel-averaged
HOW_TO_GET = (
    "download COCO 2017 (annotations + images) from cocodataset.org, or write a test fixture with "
    "`rlip data export shapes --format coco --out DIR`"
)


def annotation_path(root: Path, split: str) -> Path:
    return root / "annotations" / f"instances_{SPLIT_DIRS[split]}.json"


def _root(root: Any) -> Path:
    if root is None or str(root) == "":
        raise RlipError(
            "coco needs a root folder (--root DIR) holding annotations/ and train2017/, val2017/; "
            + HOW_TO_GET
        )
    return Path(root).expanduser()


def availability(root: Any) -> str:
    """Text for `rlip data list`: whether the annotation files are present under `root`."""
    if root is None:
        return "needs --root"
    r = Path(root).expanduser()
    have = [s for s in SPLIT_DIRS if annotation_path(r, s).is_file() and (r / SPLIT_DIRS[s]).is_dir()]
    if len(have) == len(SPLIT_DIRS):
        return "yes (found)"
    return "no (incomplete)" if have else "no (not found)"


def _options(options: dict[str, Any]) -> dict[str, Any]:
    check_options("coco", options, ("image_size", "categories", "n_train", "n_test", "grayscale"))
    resolved: dict[str, Any] = {
        "image_size": check_int("image_size", options.get("image_size", DEFAULT_IMAGE_SIZE), 8, 1024)
    }
    cats = options.get("categories")
    if cats is not None:
        if isinstance(cats, str):
            cats = [c.strip() for c in cats.split(",") if c.strip()]
        if not isinstance(cats, (list, tuple)) or not cats or not all(isinstance(c, str) and c for c in cats):
            raise RlipError("option categories must be a non-empty list of category names")
        if len(set(cats)) != len(cats):
            raise RlipError(f"option categories lists a name twice: {', '.join(cats)}")
        resolved["categories"] = list(cats)
    for key in ("n_train", "n_test"):
        if options.get(key) is not None:
            resolved[key] = check_int(key, options[key], 1)
    gray = options.get("grayscale", False)
    if not isinstance(gray, bool):
        raise RlipError(f"option grayscale must be true or false, got {gray!r}")
    if gray:
        resolved["grayscale"] = True
    return resolved


def _read_coco(path: Path) -> Any:
    """pycocotools COCO of `path`, validated; a missing/truncated file or a missing key is an RlipError."""
    from pycocotools.coco import COCO

    if not path.is_file():
        raise RlipError(f"COCO annotation file not found: {path}; {HOW_TO_GET}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(path))
    except KeyError as e:
        raise RlipError(f"COCO annotation file {path} is missing the key {e}") from None
    except Exception as e:  # JSON syntax error (truncated file), wrong top-level type, ...
        raise RlipError(f"COCO annotation file {path} is corrupt ({type(e).__name__}: {e})") from None
    d = coco.dataset
    for key in ("images", "annotations", "categories"):
        if not isinstance(d.get(key), list):
            raise RlipError(f"COCO annotation file {path} is missing the key '{key}' (a list)")
    required = {
        "images": ("id", "file_name", "height", "width"),
        "annotations": ("id", "image_id", "category_id", "segmentation"),
        "categories": ("id", "name"),
    }
    for key, fields in required.items():
        for i, item in enumerate(d[key]):
            if not isinstance(item, dict):
                raise RlipError(f"COCO annotation file {path}: {key}[{i}] is not an object")
            for f in fields:
                if f not in item:
                    raise RlipError(f"COCO annotation file {path}: {key}[{i}] is missing the key '{f}'")
    return coco


def _category_subset(coco: Any, path: Path, wanted: list[str] | None) -> tuple[list[int], tuple[str, ...]]:
    cats = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    by_name = {str(c["name"]): int(c["id"]) for c in cats}
    if wanted is None:
        names = [c for c in DEFAULT_CATEGORIES if c in by_name] or [str(c["name"]) for c in cats]
    else:
        unknown = [c for c in wanted if c not in by_name]
        if unknown:
            raise RlipError(
                f"COCO categories not in {path.name}: {', '.join(unknown)} (available: {', '.join(by_name)})"
            )
        names = list(wanted)
    if not names:
        raise RlipError(f"COCO annotation file {path} has no categories")
    return [by_name[n] for n in names], tuple(names)


def _info(resolved: dict[str, Any], names: tuple[str, ...]) -> DatasetInfo:
    s = resolved["image_size"]
    gray = bool(resolved.get("grayscale"))
    return DatasetInfo(
        name="coco",
        in_channels=1 if gray else 3,
        image_size=(s, s),
        num_classes=len(names),
        class_names=names,
        has_masks=True,
        num_mask_classes=len(names) + 1,
        mask_class_names=("background", *names),
        mean=GRAY_MEAN if gray else MEAN,
        std=GRAY_STD if gray else STD,
        options={**resolved, "categories": list(names)},
    )


def info(root: Any, **options: Any) -> DatasetInfo:
    """DatasetInfo of coco under `root` (reads an annotation file unless `categories` is given)."""
    resolved = _options(options)
    if "categories" in resolved:
        return _info(resolved, tuple(resolved["categories"]))
    r = _root(root)
    path = next((annotation_path(r, s) for s in ("test", "train") if annotation_path(r, s).is_file()), None)
    if path is None:
        raise RlipError(f"COCO annotation files not found under {r / 'annotations'}; {HOW_TO_GET}")
    _, names = _category_subset(_read_coco(path), path, None)
    return _info(resolved, names)


def _semantic_mask(
    coco: Any, path: Path, img_id: int, cat_ids: list[int], label_of: dict[int, int]
) -> np.ndarray:
    """The (h, w) uint8 class map of image `img_id` (0 = background; larger annotations are drawn
    first, so smaller ones stay visible on top)."""
    meta = coco.imgs[img_id]
    h, w = int(meta["height"]), int(meta["width"])
    ann_ids = coco.getAnnIds(imgIds=[img_id], catIds=cat_ids, iscrowd=None)
    anns = [a for a in coco.loadAnns(ann_ids) if a["category_id"] in label_of]
    sem = np.zeros((h, w), dtype=np.uint8)
    try:
        with warnings.catch_warnings():  # pycocotools + numpy 2 emit a DeprecationWarning per mask
            warnings.simplefilter("ignore", DeprecationWarning)
            rasters = [(coco.annToMask(a), label_of[a["category_id"]]) for a in anns]
    except Exception as e:
        raise RlipError(f"{path}: cannot rasterise the annotations of image {img_id} ({e})") from None
    rasters.sort(key=lambda t: -int(t[0].sum()))
    for m, lab in rasters:
        if m.shape != (h, w):
            raise RlipError(f"{path}: annotation of image {img_id} does not match its {h}×{w} size")
        sem[m > 0] = lab
    return sem


def _read_resized(
    file: Path, path: Path, sem: np.ndarray, size: int, gray: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(image uint8 (3, size, size) — (1, size, size) when `gray` —, mask uint8 (size, size)) of the
    image file and its class map `sem` (bilinear / nearest resizing)."""
    from PIL import Image

    h, w = sem.shape
    try:
        with Image.open(file) as im:
            pil = im.convert("L" if gray else "RGB")
    except FileNotFoundError:
        raise RlipError(f"COCO image not found: {file} (listed in {path.name})") from None
    except Exception as e:
        raise RlipError(f"COCO image {file} cannot be read ({type(e).__name__}: {e})") from None
    if pil.size != (w, h):
        raise RlipError(f"COCO image {file} is {pil.size[0]}×{pil.size[1]} but {path.name} says {w}×{h}")
    mask_img = Image.fromarray(sem)
    if (w, h) != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
        mask_img = mask_img.resize((size, size), Image.Resampling.NEAREST)
    t = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy())
    image = t[None] if gray else t.permute(2, 0, 1)
    return image, torch.from_numpy(np.asarray(mask_img, dtype=np.uint8).copy())


def load(root: Any, split: str = "train", **options: Any) -> RlipDataset:
    """COCO `split` under `root` → RlipDataset of uint8 (3,S,S) images, labels and masks (see module doc)."""
    resolved = _options(options)
    r = _root(root)
    path = annotation_path(r, split)
    image_dir = r / SPLIT_DIRS[split]
    coco = _read_coco(path)
    cat_ids, names = _category_subset(coco, path, resolved.get("categories"))
    label_of = {cid: i + 1 for i, cid in enumerate(cat_ids)}
    size = resolved["image_size"]
    limit = resolved.get("n_train" if split == "train" else "n_test")
    images, labels, masks = [], [], []
    skipped = 0
    for img_id in sorted(coco.imgs):
        sem = _semantic_mask(coco, path, img_id, cat_ids, label_of)
        counts = np.bincount(sem.ravel(), minlength=len(names) + 1)
        if counts[1:].sum() == 0:
            skipped += 1
            continue
        file = image_dir / str(coco.imgs[img_id]["file_name"])
        image, mask = _read_resized(file, path, sem, size, bool(resolved.get("grayscale")))
        images.append(image)
        masks.append(mask)
        labels.append(int(labels_from_counts(torch.from_numpy(counts)[None], 1)[0]))  # value k + 1 ↔ class k
        if limit is not None and len(labels) >= limit:
            break
    if not labels:
        raise RlipError(f"{path}: no image has pixels of the chosen categories ({', '.join(names)})")
    if skipped:
        logger.info("coco %s: skipped %d image(s) without pixels of %s", split, skipped, ", ".join(names))
    return RlipDataset(
        _info(resolved, names),
        torch.stack(images),
        torch.tensor(labels, dtype=torch.int64),
        torch.stack(masks),
    )


def write_coco_split(
    root: Path,
    split: str,
    images: torch.Tensor,
    masks: torch.Tensor,
    category_names: tuple[str, ...],
    description: str,
    supercategory: str = "object",
) -> None:
    """Write ROOT/annotations/instances_<split dir>.json and ROOT/<split dir>/*.png from uint8 images
    (N,C,H,W) (C = 1 or 3) and masks (N,H,W) with labels 0 = background, k+1 = category k.

    One annotation per (image, category present), with an RLE segmentation (compressed counts);
    category k has id k+1. Images are lossless PNG (grayscale PNGs for C = 1)."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from robustbench_lip.io import to_json

    split_dir = SPLIT_DIRS[split]
    (root / split_dir).mkdir(parents=True, exist_ok=False)
    (root / "annotations").mkdir(exist_ok=True)
    n, c, h, w = images.shape
    img_entries, ann_entries = [], []
    for i in range(n):
        img_id = i + 1
        file_name = f"{img_id:012d}.png"
        arr = images[i].permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0], mode="L") if c == 1 else Image.fromarray(arr, mode="RGB")
        pil.save(root / split_dir / file_name, format="PNG")
        img_entries.append({"id": img_id, "file_name": file_name, "height": h, "width": w, "license": 0})
        m = masks[i].numpy()
        for lab in np.unique(m).tolist():
            if lab == 0:
                continue
            binary = np.asfortranarray((m == lab).astype(np.uint8))
            rle = mask_utils.encode(binary)
            ann_entries.append(
                {
                    "id": len(ann_entries) + 1,
                    "image_id": img_id,
                    "category_id": int(lab),
                    "segmentation": {"size": [h, w], "counts": rle["counts"].decode("ascii")},
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle).tolist()],
                    "iscrowd": 0,
                }
            )
    doc = {
        "info": {
            "description": description,
            "version": "1.0",
            "year": 2017,
            "contributor": "robustbench-lip",
        },
        "licenses": [{"id": 0, "name": "generated data", "url": ""}],
        "images": img_entries,
        "annotations": ann_entries,
        "categories": [
            {"id": k + 1, "name": name, "supercategory": supercategory}
            for k, name in enumerate(category_names)
        ],
    }
    (root / "annotations" / f"instances_{split_dir}.json").write_text(to_json(doc), encoding="utf-8")
