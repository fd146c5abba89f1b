"""What a new user meets (issue 26): one image label space for datasets and segmenters, and the
small dead ends (help texts, missing runs dir, mixed grayscale/RGB folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from robustbench_lip.config import ModelConfig
from robustbench_lip.data import get_dataset
from robustbench_lip.errors import RlipError
from robustbench_lip.labels import label_offset, labels_from_masks
from robustbench_lip.models import predict_labels
from robustbench_lip.scoring import score
from tests.helpers.folders import write_seg_folder


class _Oracle(nn.Module):
    """A segmenter that outputs one-hot logits of the true masks of a fixed set of images."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, m: int) -> None:
        super().__init__()
        self.images, self.masks, self.m = images.float(), masks.long(), m
        c, h, w = images.shape[1:]
        self.config = ModelConfig("oracle", "segmentation", c, m, (c, h, w), num_mask_classes=m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = [int(((self.images - xi).abs().flatten(1).sum(1)).argmin()) for xi in x]
        return nn.functional.one_hot(self.masks[idx], self.m).permute(0, 3, 1, 2).float() * 7.0


@pytest.mark.parametrize("name", ["folder", "shapes", "lesions"])
def test_perfect_segmenter_gets_every_image_label(tmp_path: Path, name: str) -> None:
    if name == "folder":
        ds = get_dataset("folder", split="test", root=write_seg_folder(tmp_path, n=8), image_size=16)
    else:
        ds = get_dataset(name, split="test", n_test=12, image_size=16, seed=3)
    x, y, m = ds.tensors()
    model = _Oracle(x, m, ds.info.num_mask_classes).eval()
    got = score(model, ds, batch_size=5)
    assert got["miou"] == pytest.approx(1.0)
    assert got["accuracy"] == pytest.approx(1.0), (name, y.tolist())


def test_label_rule_is_one_function() -> None:
    masks = torch.tensor([[[0, 2], [2, 1]], [[0, 0], [0, 0]], [[3, 3], [1, 1]]])
    assert labels_from_masks(masks, 4, 0).tolist() == [2, 0, 1]  # ties → the lower value
    fallback = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    assert labels_from_masks(masks, 4, 1, fallback).tolist() == [1, 2, 0]
    assert label_offset(10, 11) == 1 and label_offset(3, 3) == 0
    with pytest.raises(RlipError, match="one label space"):
        label_offset(10, 13)


def test_predict_labels_takes_the_dataset_offset() -> None:
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 4.0  # every pixel has mask value 2
    model = _Oracle(torch.zeros(1, 1, 2, 2), logits.argmax(1), 3)
    assert predict_labels(model, torch.zeros(1, 1, 2, 2), offset=0).tolist() == [2]
    assert predict_labels(model, torch.zeros(1, 1, 2, 2), offset=1).tolist() == [1]


# --- evaluations on other data than the run's (issue 26, 1c) ---------------------------------------


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from robustbench_lip.modelio import save_model
    from robustbench_lip.models import create_model_for
    from tests.helpers.folders import write_image_folder

    base = tmp_path_factory.mktemp("other")
    roots = {
        "own": write_image_folder(base / "own", n=2),
        "same_classes": write_image_folder(base / "copy", n=2),
        "more_classes": write_image_folder(base / "more", n=2, classes=("ant", "bee", "cow", "doe")),
    }
    info = get_dataset("folder", split="train", root=str(roots["own"]), image_size=16).info
    torch.manual_seed(0)
    model = create_model_for("mresnet18_tiny", info)
    run = base / "runs" / "r"
    save_model(model, run, dataset=info, training={"settings": {"root": str(roots["own"])}})
    return {**roots, "run": run}


CERT = {"n": 2, "steps": 0, "target": "A", "eps": [36 / 255], "device": "cpu"}


def test_other_folder_is_refused_without_the_flag(own_run: dict[str, Path]) -> None:
    from robustbench_lip.evaluations.attacks.run import attack_run
    from robustbench_lip.evaluations.lipschitz.run import certify_run

    with pytest.raises(RlipError, match="--other-data"):
        certify_run(own_run["run"], root=own_run["same_classes"], write=False, **CERT)
    with pytest.raises(RlipError, match="--other-data"):
        attack_run(
            own_run["run"], eps=[8 / 255], attack="fgsm", root=own_run["same_classes"], n=2, write=False
        )
    rec = certify_run(own_run["run"], root=own_run["same_classes"], write=False, other_data=True, **CERT)
    assert rec.settings["other_data"] is True
    own = certify_run(own_run["run"], root=own_run["own"], write=False, **CERT)  # its own folder: fine
    assert "other_data" not in own.settings


def test_a_model_whose_classes_do_not_fit_is_refused(own_run: dict[str, Path]) -> None:
    from robustbench_lip.evaluations.lipschitz.run import certify_run

    with pytest.raises(RlipError, match="predicts 3 classes but dataset 'folder' has 4"):
        certify_run(own_run["run"], root=own_run["more_classes"], write=False, other_data=True, **CERT)


def test_other_data_records_stay_out_of_the_run_row(tmp_path: Path) -> None:
    from robustbench_lip.records import make_record, write_record
    from robustbench_lip.report import build_leaderboard

    run = tmp_path / "runs" / "r"
    final = {"accuracy": 0.5, "precision": 0.5, "miou": None}
    model = {"arch": "mresnet18_w8", "task": "classification"}
    done = {"status": "finished", "history": [], "final": final}
    settings = {"lam": 0.1, "seed": 0, "data": "shapes"}
    train = make_record("train", model=model, dataset={"name": "shapes"}, settings=settings, payload=done,
                        wall_s=1.0)  # fmt: skip
    write_record(run / "results" / "train.json", train)
    for name, data, up, day, other in (("own", "shapes", 3.0, 2, False), ("flag", "shapes", 9.0, 3, True),
                                       ("lesions", "lesions", 7.0, 4, False)):  # fmt: skip
        bound = {"upper": up, "lower": 1.0, "lower_mean": 1.0, "converged": True}
        clean = {"accuracy": 0.1, "precision": 0.1, "miou": None}
        payload = {"lipschitz": {"A": bound}, "fne": {"violated": None}, "unsupported_ops": [],
                   "certified_accuracy": {"36/255": up / 10}, "clean": clean}  # fmt: skip
        settings = {"n": 8, **({"other_data": True} if other else {})}
        rec = make_record("certify", model=model, dataset={"name": data}, settings=settings, payload=payload,
                          wall_s=1.0)  # fmt: skip
        rec["created"] = f"2026-01-0{day}T00:00:00+00:00"
        write_record(run / "results" / f"certify-{name}.json", rec)
    row = build_leaderboard(tmp_path / "runs").table.iloc[0]
    assert row["dataset"] == "shapes" and row["L(A) upper"] == 3.0
    assert row["cert acc@36/255"] == pytest.approx(0.3)


# --- the smaller dead ends -------------------------------------------------------------------------


def _cli(*args: str, **kw: Any) -> Any:
    from typer.testing import CliRunner

    from robustbench_lip.cli.app import app

    return CliRunner().invoke(app, list(args), **kw)


def test_train_help_names_folder_for_root() -> None:
    out = _cli("train", "--help", terminal_width=250).output
    line = next(ln for ln in out.splitlines() if "--root" in ln)
    assert "folder" in line


@pytest.mark.parametrize(
    "cmd", [["certify"], ["certify", "--smoothing", "0.25"], ["attack", "--eps", "8/255"]]
)
def test_missing_default_runs_dir_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cmd: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no zoo/runs here
    r = _cli(*cmd)
    assert r.exit_code == 1 and "runs folder not found: zoo/runs" in r.output
    assert "Traceback" not in r.output and "nothing to certify" not in r.output


def test_mixed_grayscale_and_rgb_folder_warns_with_the_rule(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np
    from PIL import Image

    from tests.helpers.folders import write_image_folder

    root = write_image_folder(tmp_path / "mix", n=2)
    gray = np.full((20, 24), 77, np.uint8)
    Image.fromarray(gray).save(root / "train" / "cat" / "gray.png")  # one grayscale file among RGB ones
    with caplog.at_level("WARNING", logger="robustbench_lip.data.folder_decode"):
        ds = get_dataset("folder", split="train", root=str(root), channels=3, image_size=16)
    msgs = [r.getMessage() for r in caplog.records if "mixes" in r.getMessage()]
    assert len(msgs) == 1 and "1 grayscale and 6 colour" in msgs[0] and "gray → RGB" in msgs[0]
    x = ds.uint8_images()
    i = next(i for i in range(len(x)) if bool((x[i] == 77).all()))  # the gray file, channel repeated
    assert x[i].shape[0] == 3
