"""`rlip train --loss`: the config's loss settings, the training loss they select, the records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from robustbench_lip.choices import Loss, values
from robustbench_lip.cli.app import app
from robustbench_lip.config import TrainConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.losses_lip import LOSSES, margin_cross_entropy, multiclass_hinge
from robustbench_lip.models import create_model, mask_logits
from robustbench_lip.training.losses import config_loss, task_loss

runner = CliRunner()


def test_loss_choices_are_the_library_losses() -> None:
    assert set(values(Loss)) == set(LOSSES)


def test_default_is_cross_entropy_and_old_configs_load_as_it() -> None:
    old = {"model": "mresnet18_tiny", "data": "shapes", "lam": 0.0}  # a config written before --loss
    cfg = TrainConfig.from_dict(old)
    assert cfg.loss == "ce" and cfg.loss_options() == {} and config_loss(cfg) is None
    d = cfg.to_dict()
    assert d["loss"] == "ce" and d["loss_offset"] is None
    assert TrainConfig.from_dict(d) == cfg


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"loss": "focal"}, "loss must be one of"),
        ({"loss_margin": 1.0}, "loss_margin is an option of the loss hinge / hkr, not of ce"),
        ({"loss": "margin_ce", "loss_temperature": 0.0}, "loss_temperature must be > 0"),
        ({"loss": "hkr", "loss_alpha": 1.5}, "loss_alpha"),
    ],
)
def test_bad_loss_settings(extra: dict, words: str) -> None:
    with pytest.raises(RlipError, match=words):
        TrainConfig.from_dict({"model": "m", "data": "d", **extra})


def test_the_config_selects_the_loss_for_logits_and_masks() -> None:
    torch.manual_seed(0)
    cls = create_model("mresnet18_tiny").eval()
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    cfg = TrainConfig(model="m", data="d", loss="margin_ce", loss_offset=0.3, loss_temperature=0.2)
    got = task_loss(cls, x, y, None, False, 1.0, config_loss(cfg))
    torch.testing.assert_close(got, margin_cross_entropy(cls(x), y, offset=0.3, temperature=0.2))
    assert torch.equal(task_loss(cls, x, y, None, False), F.cross_entropy(cls(x), y))  # ce: unchanged
    seg = create_model("unet_fne_tiny").eval()
    xs = torch.rand(2, 1, 16, 16)
    m = (xs[:, 0] > 0.5).long()
    hinge = TrainConfig(model="m", data="d", loss="hinge", loss_margin=0.5)
    got = task_loss(seg, xs, None, m, False, 10.0, config_loss(hinge))
    torch.testing.assert_close(got, multiclass_hinge(10.0 * mask_logits(seg, xs), m, margin=0.5))


def test_train_command_records_the_loss(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--model", "lipresnet18_tiny", "--data", "shapes", "--out", str(out), "--epochs", "1"]
    args += ["--n-train", "32", "--n-test", "8", "--image-size", "16", "--device", "cpu"]
    args += ["--batch-size", "16", "--sigma-points", "4", "--optimizer", "adamw", "--lr", "1e-3"]
    loss = ["--loss", "margin_ce", "--loss-offset", "0.2", "--loss-temperature", "0.1"]
    r = runner.invoke(app, [*args, *loss])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "results" / "train.json").read_text())["settings"]
    got = (s["loss"], s["loss_offset"], s["loss_temperature"], s["loss_margin"])
    assert got == ("margin_ce", 0.2, 0.1, None)
    bad = runner.invoke(app, [*args[:6], str(tmp_path / "b"), *args[7:], "--loss-margin", "1"])
    assert bad.exit_code == 1 and "loss_margin is an option" in bad.stderr
