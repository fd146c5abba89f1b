"""The `folder` dataset on tiny PNG/JPEG folders written with PIL: ImageFolder labels and pixels
against torchvision's ImageFolder, segmentation labels and masks, statistics, options, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_lip.data import dataset_info, get_dataset, list_datasets
from robustbench_lip.data.folder_layout import scan, split_samples
from robustbench_lip.errors import RlipError
from tests.helpers.folders import write_image_folder, write_seg_folder

S = 16


@pytest.fixture(scope="module")
def cls_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("cls"))


@pytest.fixture(scope="module")
def seg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_seg_folder(tmp_path_factory.mktemp("seg"))


def _msg(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def test_folder_is_listed() -> None:
    assert "folder" in list_datasets()


@pytest.mark.parametrize("split", ["train", "test"])
def test_classification_matches_torchvision_image_folder(cls_root: Path, split: str) -> None:
    from torchvision.datasets import ImageFolder

    tv = ImageFolder(str(cls_root / "train"))
    ds = get_dataset("folder", split, root=str(cls_root), image_size=S)
    assert ds.info.class_names == tuple(tv.classes) == ("bird", "cat", "dog")  # sorted folder names
    assert not ds.info.has_masks and ds.info.num_classes == 3 and ds.info.image_size == (S, S)
    truth = {Path(p).resolve(): y for p, y in ImageFolder(str(cls_root / split)).samples}
    samples = split_samples(scan(cls_root), split)
    assert len(ds) == len(truth) == len(samples)
    x, y, m = ds.tensors()
    assert m is None and x.shape == (len(ds), 3, S, S)
    for i, s in enumerate(samples):
        assert truth[s.image.resolve()] == int(y[i])
        with Image.open(s.image) as im:  # PIL bilinear resize of the decoded file
            ref = np.asarray(im.convert("RGB").resize((S, S), Image.Resampling.BILINEAR))
        assert np.array_equal(ds.uint8_images()[i].permute(1, 2, 0).numpy(), ref)


def test_statistics_are_measured_on_train_and_shared_by_test(cls_root: Path) -> None:
    train = get_dataset("folder", "train", root=str(cls_root), image_size=S)
    test = get_dataset("folder", "test", root=str(cls_root), image_size=S)
    x = train.uint8_images().numpy().astype(np.float64) / 255
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    assert np.allclose(train.info.mean, mean, atol=6e-5) and np.allclose(train.info.std, std, atol=6e-5)
    assert test.info == train.info
    # the resolved options rebuild the same dataset, without measuring again
    again = get_dataset("folder", "test", root=str(cls_root), **test.info.options)
    assert again.info == test.info and torch.equal(again.uint8_images(), test.uint8_images())
    given = dataset_info("folder", root=str(cls_root), image_size=S, mean=0.5, std=[0.2, 0.3, 0.4])
    assert given.mean == (0.5, 0.5, 0.5) and given.std == (0.2, 0.3, 0.4)


def test_order_is_fixed_prefixes_and_stable_under_additions(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "r", n=6)
    full = get_dataset("folder", "train", root=str(root), image_size=8)
    part = get_dataset("folder", "train", root=str(root), image_size=8, n_train=5)
    assert torch.equal(part.uint8_images(), full.uint8_images()[:5])
    first = [s.image.name for s in split_samples(scan(root), "train")]
    assert len({s.label for s in split_samples(scan(root), "train")[:6]}) > 1  # classes are mixed
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "train" / "cat" / "new.png")
    after = [s.image.name for s in split_samples(scan(root), "train")]
    assert [n for n in after if n != "new.png"] == first


def test_grayscale_is_inferred_and_channels_option(tmp_path: Path) -> None:
    root = tmp_path / "g"
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (S, S), dtype=np.uint8)).save(root / split / c / "x.png")
            # a 16-bit grayscale PNG: values v·257 must read back as v
            v = rng.integers(0, 256, (S, S)).astype(np.uint16)
            Image.fromarray(v * 257).save(root / split / c / "y16.png")
    ds = get_dataset("folder", "train", root=str(root), image_size=S)
    assert ds.info.in_channels == 1 and ds.uint8_images().shape[1] == 1
    samples = split_samples(scan(root), "train")
    for i, s in enumerate(samples):
        with Image.open(s.image) as im:
            ref = np.asarray(im, dtype=np.float64)
        ref = np.round(ref / 257).astype(np.uint8) if s.image.name == "y16.png" else ref.astype(np.uint8)
        assert np.array_equal(ds.uint8_images()[i, 0].numpy(), ref)
    rgb = get_dataset("folder", "train", root=str(root), image_size=S, channels=3)
    assert rgb.info.in_channels == 3 and torch.equal(
        rgb.uint8_images(), ds.uint8_images().expand(-1, 3, -1, -1)
    )


@pytest.mark.parametrize("mask_mode", ["L", "P"])
def test_segmentation_masks_labels_and_classes(tmp_path: Path, mask_mode: str) -> None:
    root = write_seg_folder(tmp_path / "s", n=8, mode=mask_mode)
    ds = get_dataset("folder", "train", root=str(root), image_size=12)
    info = ds.info
    assert info.has_masks and info.mask_class_names == ("background", "disc", "bar") == info.class_names
    assert info.num_mask_classes == 3 and info.in_channels == 1
    _x, y, m = ds.tensors()
    assert m is not None and m.shape == (8, 12, 12)
    for i, s in enumerate(split_samples(scan(root), "train")):
        k = int(s.image.stem[2:])
        assert int(y[i]) == (0 if k % 4 == 3 else 1 + k % 2)  # most frequent foreground class, or 0
        with Image.open(s.mask) as im:
            ref = np.asarray(Image.fromarray(np.asarray(im)).resize((12, 12), Image.Resampling.NEAREST))
        assert np.array_equal(m[i].numpy(), ref)
    (root / "classes.txt").unlink()
    (root / "classes.json").write_text(json.dumps(["bg", "disc", "bar", "spare"]))
    info = dataset_info("folder", root=str(root), image_size=12, mean=0.5, std=0.25)
    assert info.mask_class_names == ("bg", "disc", "bar", "spare") and info.num_mask_classes == 4


def _rewrite(root: Path, rel: str, data: bytes | np.ndarray | None) -> None:
    p = root / rel
    if data is None:
        p.unlink()
    elif isinstance(data, bytes):
        p.write_bytes(data)
    else:
        Image.fromarray(data).save(p)


@pytest.mark.parametrize(
    ("layout", "change", "words"),
    [
        ("cls", lambda r: shutil.rmtree(r / "test"), ["no test/ folder"]),
        ("cls", lambda r: shutil.rmtree(r / "train"), ["no train/ folder"]),
        ("cls", lambda r: (r / "test" / "cow").mkdir(), ["cow", "not a class"]),
        (
            "cls",
            lambda r: _rewrite(r, "train/cat/cat_0.png", b"not a png"),
            ["cannot read image", "cat_0.png"],
        ),
        ("seg", lambda r: _rewrite(r, "train/masks/im1.png", None), ["im1.png has no mask"]),
        ("seg", lambda r: _rewrite(r, "train/images/im2.png", None), ["mask", "im2.png has no image"]),
        ("seg", lambda r: _rewrite(r, "train/masks/im0.png", np.full((24, 24), 7, np.uint8)), ["value 7"]),
        (
            "seg",
            lambda r: _rewrite(r, "train/masks/im0.png", np.eye(24, dtype=np.uint8) * 255),
            ["value 255", "0/255", "store 1"],
        ),
        ("seg", lambda r: (r / "classes.txt").unlink(), ["classes.txt", "one class name per line"]),
        ("seg", lambda r: _rewrite(r, "test/masks/im0.png", np.zeros((5, 5), np.uint8)), ["5×5", "24×24"]),
        (
            "seg",
            lambda r: _rewrite(
                r,
                "train/masks/im0.png",
                np.dstack([np.eye(24, dtype=np.uint8)] * 2 + [np.zeros((24, 24), np.uint8)]),
            ),
            ["colour"],
        ),
    ],
)
def test_layout_errors_are_one_line(tmp_path: Path, layout: str, change, words: list[str]) -> None:
    root = write_image_folder(tmp_path / "c") if layout == "cls" else write_seg_folder(tmp_path / "s")
    change(root)
    with pytest.raises(RlipError) as e:
        for split in ("train", "test"):
            get_dataset("folder", split, root=str(root), image_size=S)
    msg = _msg(e)
    for w in words:
        assert w in msg, msg


def test_no_images_and_root_hints(tmp_path: Path) -> None:
    empty = tmp_path / "e"
    for split in ("train", "test"):
        (empty / split / "a").mkdir(parents=True)
        (empty / split / "b").mkdir(parents=True)
        (empty / split / "a" / "notes.txt").write_text("x")
    with pytest.raises(RlipError) as e:
        get_dataset("folder", "train", root=str(empty))
    assert "has no images" in _msg(e) and ".txt" in str(e.value)
    root = write_image_folder(tmp_path / "data" / "pets")
    with pytest.raises(RlipError) as e:  # one level too deep
        get_dataset("folder", "train", root=str(root / "train"))
    assert f"--root {root}" in _msg(e)
    with pytest.raises(RlipError) as e:  # one level too shallow
        get_dataset("folder", "train", root=str(tmp_path / "data"))
    assert f"--root {root}" in _msg(e)
    unsplit = tmp_path / "flowers"
    (root / "train").rename(unsplit)
    with pytest.raises(RlipError) as e:  # class folders without a train/test split
        get_dataset("folder", "train", root=str(unsplit))
    assert "no split" in _msg(e) and str(unsplit / "test") in str(e.value)
    (unsplit).rename(root / "train")
    (root / "test").rename(root / "val")
    with pytest.raises(RlipError, match="must be named test/"):
        get_dataset("folder", "train", root=str(root))
    with pytest.raises(RlipError, match="--root"):
        get_dataset("folder", "train")
    with pytest.raises(RlipError, match="accepted"):
        get_dataset("folder", "train", root=str(root), size=3)
    with pytest.raises(RlipError, match="channels"):
        get_dataset("folder", "train", root=str(root), channels=2)
