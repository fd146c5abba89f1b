"""Real loaders (cifar10 through torchvision, coco through pycocotools) on fixtures written in the
genuine formats by `export_dataset`, plus hand-written COCO JSON; corrupt input; atomic export."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustbench_lip.data import cifar as cifar_mod
from robustbench_lip.data import coco as coco_mod
from robustbench_lip.data import dataset_info, export_dataset, get_dataset
from robustbench_lip.errors import RlipError

N = 12


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    export_dataset("shapes", format="cifar", out=root, n=N, seed=5)
    return root


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coco") / "export"
    export_dataset("shapes", format="coco", out=root, n=N, seed=5)
    return root


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# --- CIFAR-10 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_round_trip_through_torchvision(cifar_root: Path, split: str) -> None:
    src = get_dataset("shapes", split, seed=5, **{f"n_{split}": N})
    ds = get_dataset("cifar10", split, root=str(cifar_root))
    assert len(ds) == N and not ds.info.has_masks and ds.tensors()[2] is None
    assert torch.equal(ds.uint8_images(), src.uint8_images())  # exact uint8 round trip
    assert torch.equal(ds.tensors()[0], src.tensors()[0])
    assert torch.equal(ds.tensors()[1], src.tensors()[1])
    assert ds.info.class_names == src.info.class_names  # read from batches.meta


def test_cifar_files_are_the_genuine_format(cifar_root: Path) -> None:
    folder = cifar_root / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
    )
    # the CIFAR web page's recipe: pickle.load(f, encoding="bytes") → b"data", b"labels"
    with open(folder / "data_batch_1", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape[1] == 3072
    assert isinstance(d[b"labels"], list)
    total = 0
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "rb") as f:
            total += len(pickle.load(f, encoding="bytes")[b"labels"])
    assert total == N
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="bytes")[b"label_names"][0] == b"circle"
    # rows are channel-major: first 1024 bytes = red plane of image 0
    src = get_dataset("shapes", "train", n_train=N, seed=5).uint8_images()
    assert np.array_equal(d[b"data"][0, :1024], src[0, 0].flatten().numpy())


def test_unmodified_torchvision_rejects_non_official_md5(cifar_root: Path) -> None:
    """Why the loader bypasses only the md5 check: stock CIFAR10 refuses any non-official file."""
    from torchvision.datasets import CIFAR10

    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR10(str(cifar_root), train=False, download=False)


def test_cifar_n_option_and_info(cifar_root: Path) -> None:
    ds = get_dataset("cifar10", "train", root=str(cifar_root), n_train=5)
    assert len(ds) == 5 and ds.info.options == {"n_train": 5}
    info = dataset_info("cifar10")
    assert (info.in_channels, info.image_size, info.num_classes, info.has_masks) == (3, (32, 32), 10, False)


def test_grayscale_export_replicates_channels(tmp_path: Path) -> None:
    export_dataset("lesions", format="cifar", out=tmp_path, n=6, split="test")
    ds = get_dataset("cifar10", "test", root=str(tmp_path))
    src = get_dataset("lesions", "test", n_test=6).uint8_images()
    x = ds.uint8_images()
    assert torch.equal(x, src.expand(-1, 3, -1, -1)) and ds.info.class_names == ("no_lesion", "lesion")
    with pytest.raises(RlipError, match="incomplete"):  # only the test split was written
        get_dataset("cifar10", "train", root=str(tmp_path))


def test_cifar_missing_root_names_folder_and_fix(tmp_path: Path) -> None:
    with pytest.raises(RlipError) as e:
        get_dataset("cifar10", "train", root=str(tmp_path / "nowhere"))
    msg = _one_line(e)
    assert "cifar-10-batches-py" in msg and "rlip data export shapes --format cifar" in msg
    with pytest.raises(RlipError, match="root"):
        get_dataset("cifar10", "train")


def _copy_cifar(src: Path, dst: Path) -> Path:
    folder = dst / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for p in (src / "cifar-10-batches-py").iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


def test_cifar_truncated_pickle(cifar_root: Path, tmp_path: Path) -> None:
    folder = _copy_cifar(cifar_root, tmp_path)
    data = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(data[: len(data) // 2])
    with pytest.raises(RlipError) as e:
        get_dataset("cifar10", "train", root=str(tmp_path))
    assert "data_batch_3" in _one_line(e) and "corrupt" in str(e.value)
    get_dataset("cifar10", "test", root=str(tmp_path))  # the test split is intact


def test_cifar_missing_key_and_wrong_size(cifar_root: Path, tmp_path: Path) -> None:
    folder = _copy_cifar(cifar_root, tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({"labels": [0, 1]}, protocol=2))
    with pytest.raises(RlipError, match="corrupt") as e:
        get_dataset("cifar10", "test", root=str(tmp_path))
    _one_line(e)
    bad = {"data": np.zeros((2, 100), dtype=np.uint8), "labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(RlipError, match="corrupt"):
        get_dataset("cifar10", "test", root=str(tmp_path))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_cifar_pickle_cannot_run_code(cifar_root: Path, tmp_path: Path) -> None:
    folder = _copy_cifar(cifar_root, tmp_path / "root")
    marker = tmp_path / "pwned"
    (folder / "test_batch").write_bytes(pickle.dumps({"data": _Evil(marker), "labels": []}, protocol=2))
    with pytest.raises(RlipError, match="refusing"):
        get_dataset("cifar10", "test", root=str(tmp_path / "root"))
    assert not marker.exists()


def test_cifar_export_needs_32px(tmp_path: Path) -> None:
    with pytest.raises(RlipError, match="32×32"):
        export_dataset("shapes", format="cifar", out=tmp_path / "o", n=2, image_size=48)
    assert not (tmp_path / "o").exists()


# --- COCO ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_coco_round_trip_images_labels_masks(coco_root: Path, split: str) -> None:
    src = get_dataset("shapes", split, seed=5, **{f"n_{split}": N})
    ds = get_dataset("coco", split, root=str(coco_root), image_size=32)
    assert ds.info.class_names == src.info.class_names  # no default category in the file → all
    assert ds.info.num_mask_classes == 11 and ds.info.mask_class_names == src.info.mask_class_names
    _x, y, m = ds.tensors()
    _sx, sy, sm = src.tensors()
    assert torch.equal(ds.uint8_images(), src.uint8_images())  # lossless PNG
    assert torch.equal(y, sy) and torch.equal(m, sm)


def test_coco_files_are_the_genuine_format(coco_root: Path) -> None:
    from pycocotools.coco import COCO

    ann = coco_root / "annotations" / "instances_val2017.json"
    doc = json.loads(ann.read_text())
    assert {"images", "annotations", "categories", "info", "licenses"} <= doc.keys()
    assert len(doc["images"]) == N and doc["categories"][0] == {
        "id": 1,
        "name": "circle",
        "supercategory": "shapes",
    }
    img = doc["images"][0]
    assert (coco_root / "val2017" / img["file_name"]).is_file() and img["file_name"].endswith(".png")
    coco = COCO(str(ann))
    a = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))[0]
    with warnings.catch_warnings():  # pycocotools + numpy 2 DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        mask = coco.annToMask(a)
    src = get_dataset("shapes", "test", n_test=1, seed=5).tensors()[2][0].numpy()
    assert np.array_equal(mask, (src > 0).astype(np.uint8)) and a["area"] == mask.sum()


def test_coco_default_size_and_category_subset(coco_root: Path) -> None:
    ds = get_dataset("coco", "test", root=str(coco_root))
    assert ds.tensors()[0].shape == (N, 3, 64, 64) and ds.info.image_size == (64, 64)
    src = get_dataset("shapes", "test", n_test=N, seed=5)
    sy = src.tensors()[1]
    keep = [i for i in range(N) if int(sy[i]) in (0, 1)]  # circle, square
    sub = get_dataset("coco", "test", root=str(coco_root), image_size=32, categories="square,circle")
    assert sub.info.class_names == ("square", "circle") and sub.info.num_classes == 2
    assert len(sub) == len(keep)  # images without pixels of the subset are skipped
    y, m = sub.tensors()[1], sub.tensors()[2]
    expected_y = torch.tensor([1 - int(sy[i]) for i in keep])
    assert torch.equal(y, expected_y)
    assert torch.equal(m > 0, src.tensors()[2][keep] > 0) and set(m.unique().tolist()) <= {0, 1, 2}
    assert torch.equal(sub.uint8_images(), src.uint8_images()[keep])
    info = dataset_info("coco", root=str(coco_root), image_size=32)
    assert info.class_names == src.info.class_names and info.options["categories"][0] == "circle"
    with pytest.raises(RlipError, match="not in"):
        get_dataset("coco", "test", root=str(coco_root), categories=["zebra"])


def _write_hand_coco(root: Path, doc: dict, images: dict[str, np.ndarray]) -> None:
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    for name, arr in images.items():
        Image.fromarray(arr).save(root / "val2017" / name)


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def test_coco_hand_written_polygons_labels_and_skips(tmp_path: Path) -> None:
    """Real-COCO-like input: JPEG images, polygon annotations, overlapping objects, other categories."""
    rng = np.random.default_rng(0)
    cats = [
        {"id": 1, "name": "person"},
        {"id": 3, "name": "car"},
        {"id": 5, "name": "airplane"},
        {"id": 18, "name": "dog"},
    ]
    doc = {
        "images": [
            {"id": 10, "file_name": "a.jpg", "height": 40, "width": 40},
            {"id": 11, "file_name": "b.jpg", "height": 40, "width": 40},
            {"id": 12, "file_name": "c.jpg", "height": 40, "width": 40},
        ],
        "annotations": [
            # image 10: a big person with a small dog on top → label person; dog pixels labelled dog
            {"id": 1, "image_id": 10, "category_id": 1, "segmentation": _rect(5, 5, 30, 30), "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 18, "segmentation": _rect(10, 10, 16, 16), "iscrowd": 0},
            # image 11: only an airplane (not in the default subset) → skipped
            {"id": 3, "image_id": 11, "category_id": 5, "segmentation": _rect(0, 0, 20, 20), "iscrowd": 0},
            # image 12: a small person and a larger car → label car
            {"id": 4, "image_id": 12, "category_id": 1, "segmentation": _rect(2, 2, 8, 8), "iscrowd": 0},
            {"id": 5, "image_id": 12, "category_id": 3, "segmentation": _rect(15, 15, 35, 35), "iscrowd": 0},
        ],
        "categories": cats,
    }
    imgs = {n: rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for n in ("a.jpg", "b.jpg", "c.jpg")}
    _write_hand_coco(tmp_path, doc, imgs)
    ds = get_dataset("coco", "test", root=str(tmp_path), image_size=40)
    names = ds.info.class_names
    assert names == ("person", "car", "dog")  # the default subset present in the file, in default order
    x, y, m = ds.tensors()
    assert len(ds) == 2
    assert [names[int(v)] for v in y] == ["person", "car"]
    person, car, dog = 1, 2, 3
    assert m[0, 20, 20] == person and m[0, 13, 13] == dog and m[0, 35, 35] == 0 and m[0, 2, 2] == 0
    assert m[1, 5, 5] == person and m[1, 25, 25] == car and m[1, 38, 38] == 0
    # JPEG decoding goes through PIL; the pixels are the decoded file's
    with Image.open(tmp_path / "val2017" / "c.jpg") as im:
        assert np.array_equal(
            x[1].mul(255).round().byte().permute(1, 2, 0).numpy(), np.asarray(im.convert("RGB"))
        )


def test_coco_corrupt_inputs(coco_root: Path, tmp_path: Path) -> None:
    src = json.loads((coco_root / "annotations" / "instances_val2017.json").read_text())

    def attempt(doc_text: str) -> str:
        root = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        (root / "annotations").mkdir(parents=True)
        (root / "val2017").mkdir()
        (root / "annotations" / "instances_val2017.json").write_text(doc_text)
        with pytest.raises(RlipError) as e:
            get_dataset("coco", "test", root=str(root), image_size=32)
        return _one_line(e)

    assert "'annotations'" in attempt(json.dumps({k: v for k, v in src.items() if k != "annotations"}))
    assert "corrupt" in attempt(json.dumps(src)[:200])  # truncated JSON
    no_seg = json.loads(json.dumps(src))
    del no_seg["annotations"][0]["segmentation"]
    assert "'segmentation'" in attempt(json.dumps(no_seg))
    no_id = json.loads(json.dumps(src))
    del no_id["images"][1]["file_name"]
    assert "'file_name'" in attempt(json.dumps(no_id))
    # annotations fine but the image files are missing
    assert "not found" in attempt(json.dumps(src))
    with pytest.raises(RlipError, match="not found") as e:
        get_dataset("coco", "train", root=str(tmp_path / "nowhere"))
    assert "rlip data export shapes --format coco" in _one_line(e)


# --- export: validation and atomicity --------------------------------------------------------------


def test_export_bad_input(tmp_path: Path) -> None:
    with pytest.raises(RlipError, match="available"):
        export_dataset("mnist", format="cifar", out=tmp_path / "a")
    with pytest.raises(RlipError, match="format"):
        export_dataset("shapes", format="voc", out=tmp_path / "a")
    with pytest.raises(RlipError, match="≥ 1"):
        export_dataset("shapes", format="cifar", out=tmp_path / "a", n=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RlipError) as e:
        export_dataset("shapes", format="coco", out=tmp_path / "file" / "sub", n=2)
    _one_line(e)
    with pytest.raises(RlipError):
        export_dataset("shapes", format="cifar", out=tmp_path / "file" / "sub", n=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(RlipError, match="not empty"):
        export_dataset("shapes", format="coco", out=tmp_path / "full", n=2)


def test_export_refuses_to_overwrite(cifar_root: Path) -> None:
    with pytest.raises(RlipError, match="already exists"):
        export_dataset("shapes", format="cifar", out=cifar_root, n=2)


@pytest.mark.parametrize("fmt", ["cifar", "coco"])
def test_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    calls = {"n": 0}
    if fmt == "cifar":
        real = cifar_mod.batch_bytes

        def failing(*a: object, **k: object) -> bytes:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(28, "No space left on device")
            return real(*a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(cifar_mod, "batch_bytes", failing)
    else:
        real_split = coco_mod.write_coco_split

        def failing_split(*a: object, **k: object) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
            real_split(*a, **k)  # type: ignore[arg-type]

        import robustbench_lip.data.export as export_mod

        monkeypatch.setattr(export_mod, "write_coco_split", failing_split)
    out = tmp_path / "new" / "out"
    with pytest.raises(RlipError, match="No space left") as e:
        export_dataset("shapes", format=fmt, out=out, n=4)
    _one_line(e)
    assert calls["n"] >= 2
    assert list(tmp_path.iterdir()) == []  # no target, no hidden temporary folder, no created out


def test_coco_grayscale_gives_one_channel_binary_masks_for_one_category(coco_root: Path) -> None:
    """grayscale = true: one channel, the luma of the RGB images (PIL "L"), masks unchanged; with one
    category the FNE U-Net segments (mask = output > 0)."""
    from robustbench_lip.models import create_model_for

    full = get_dataset("coco", "test", root=str(coco_root), image_size=32)
    cat = [full.info.class_names[int(full.tensors()[1][0])]]  # a category present in the file
    rgb = get_dataset("coco", "test", root=str(coco_root), image_size=32, categories=cat)
    gray = get_dataset("coco", "test", root=str(coco_root), image_size=32, categories=cat, grayscale=True)
    assert gray.info.in_channels == 1 and gray.info.num_mask_classes == 2 and len(gray.info.mean) == 1
    x, _, m = gray.tensors()
    xr, _, mr = rgb.tensors()
    assert x.shape[1] == 1 and torch.equal(m, mr)
    luma = (0.299 * xr[:, 0] + 0.587 * xr[:, 1] + 0.114 * xr[:, 2]) * 255
    assert float((luma - x[:, 0] * 255).abs().max()) <= 1.0  # PIL rounds the luma to integers
    assert create_model_for("unet_fne_tiny", gray.info, image_size=(32, 32)).config.num_mask_classes == 2
    with pytest.raises(RlipError, match="grayscale"):
        get_dataset("coco", "test", root=str(coco_root), grayscale="yes")
