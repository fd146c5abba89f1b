"""Writers of tiny `folder` datasets (PNG/JPEG files made with PIL) shared by the folder tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root: Path, n: int = 4, classes: tuple[str, ...] = ("dog", "cat", "bird")) -> Path:
    """ROOT/{train,test}/<class>/*.png|jpg: random RGB images of 20×24 pixels (JPEG for odd i)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", max(1, n // 2))):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(count):
                arr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{c}_{i}.{'jpg' if i % 2 else 'png'}")
    return root


def write_seg_folder(root: Path, n: int = 4, mode: str = "L") -> Path:
    """ROOT/{train,test}/{images,masks}/NAME.png + ROOT/classes.txt (background, disc, bar).

    Image i: a 24×24 gray noise image; mask: a 10×10 block of value 1 + (i % 2) and a 4×4 block of the
    other class (so the label is 1 + i % 2), except every fourth image, which is all background."""
    rng = np.random.default_rng(1)
    for split, count in (("train", n), ("test", n)):
        for sub in ("images", "masks"):
            (root / split / sub).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(
                root / split / "images" / f"im{i}.png"
            )
            m = np.zeros((24, 24), np.uint8)
            if i % 4 != 3:
                m[2:12, 2:12] = 1 + i % 2
                m[18:22, 18:22] = 2 - i % 2
            mask = Image.fromarray(m)
            if mode == "P":
                mask = mask.convert("P")
                mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
            mask.save(root / split / "masks" / f"im{i}.png")
    (root / "classes.txt").write_text("background\ndisc\nbar\n")
    return root
