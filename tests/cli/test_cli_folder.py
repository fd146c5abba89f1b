"""Own data through the CLI: `rlip data list|preview|export` on a folder, and `rlip train` (one epoch),
`rlip certify`, `rlip attack` on a tiny ImageFolder and a tiny image/mask folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.data import get_dataset
from tests.helpers.folders import write_image_folder, write_seg_folder


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def _ok(*args: str):
    r = _runner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("own")
    return {"cls": write_image_folder(base / "pets"), "seg": write_seg_folder(base / "scans")}


def test_data_list_preview_export(roots: dict[str, Path], tmp_path: Path) -> None:
    r = _ok("data", "list", "--root", str(roots["seg"]))
    assert "folder" in r.stdout and "(found)" in r.stdout and "yes (3)" in r.stdout  # 3 mask classes
    for kind, root in roots.items():
        out = tmp_path / f"{kind}.png"
        _ok("data", "preview", "folder", "--root", str(root), "--n", "4", "--out", str(out))
        with Image.open(out) as im:
            assert im.format == "PNG"
    # ImageFolder → genuine CIFAR-10 batches → the cifar10 loader gives back the same samples
    _ok(
        "data",
        "export",
        "folder",
        "--root",
        str(roots["cls"]),
        "--format",
        "cifar",
        "--out",
        str(tmp_path / "c"),
    )
    for split in ("train", "test"):
        src = get_dataset("folder", split, root=str(roots["cls"]))
        back = get_dataset("cifar10", split, root=str(tmp_path / "c"))
        assert torch.equal(back.uint8_images(), src.uint8_images())
        assert (
            torch.equal(back.tensors()[1], src.tensors()[1]) and back.info.class_names == src.info.class_names
        )
    # images + masks → COCO → the coco loader gives back the same images and masks (it skips
    # background-only images; its image label is the category index, folder's the mask value)
    out = tmp_path / "k"
    _ok(
        "data",
        "export",
        "folder",
        "--root",
        str(roots["seg"]),
        "--format",
        "coco",
        "--out",
        str(out),
        "--split",
        "test",
    )
    src = get_dataset("folder", "test", root=str(roots["seg"]))
    back = get_dataset("coco", "test", root=str(out), image_size=32)
    _x, y, m = src.tensors()
    keep = [i for i in range(len(src)) if int(y[i]) > 0]
    assert back.info.mask_class_names == src.info.mask_class_names
    assert torch.equal(back.uint8_images(), src.uint8_images()[keep].expand(-1, 3, -1, -1))
    assert torch.equal(back.tensors()[2], m[keep]) and torch.equal(back.tensors()[1], y[keep] - 1)


FAST_TRAIN = ["--epochs", "1", "--batch-size", "6", "--image-size", "16", "--device", "cpu", "--optimizer",
              "adamw", "--lr", "1e-3", "--sigma-points", "2", "--reg-subbatch", "2"]  # fmt: skip


# ~30 s of CPU each (mostly certify's witnessed lower bounds): the segmentation run, whose data path
# differs only in the loader (covered by test_data_folder.py), runs with the slow tests.
@pytest.mark.parametrize(
    ("kind", "model"),
    [("cls", "mresnet18_tiny"), pytest.param("seg", "unet_tiny", marks=pytest.mark.slow)],
)
def test_train_certify_attack_on_own_folder(
    roots: dict[str, Path], tmp_path: Path, kind: str, model: str
) -> None:
    root, run = str(roots[kind]), tmp_path / "run"
    _ok(
        "train",
        "--model",
        model,
        "--data",
        "folder",
        "--root",
        root,
        "--out",
        str(run),
        "--lam",
        "0.1",
        *FAST_TRAIN,
    )
    meta = json.loads((run / "config.json").read_text())
    ds = meta["dataset"]
    assert ds["name"] == "folder" and ds["options"]["image_size"] == 16
    assert ds["has_masks"] == (kind == "seg") and meta["model"]["mean"] == ds["mean"]
    # certify and attack read the dataset name and options from the run; the folder is still --root
    _ok("certify", str(run), "--root", root, "--n", "4", "--steps", "0", "--target", "A", "--eps", "36/255",
        "--device", "cpu")  # fmt: skip
    (cert,) = [json.loads(p.read_text()) for p in (run / "results").glob("certify-*.json")]
    assert cert["dataset"] == ds and cert["lipschitz"]["A"]["upper"] is not None
    key = "certified_miou" if kind == "seg" else "certified_accuracy"
    assert set(cert[key]) == {"36/255"}
    _ok("attack", str(run), "--root", root, "--n", "4", "--steps", "1", "--eps", "8/255", "--attack", "pgd",
        "--batch-size", "4", "--device", "cpu")  # fmt: skip
    (att,) = [json.loads(p.read_text()) for p in (run / "results").glob("attack-*.json")]
    assert att["dataset"] == ds and att["n"] == 4
