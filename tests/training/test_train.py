"""Trainer: resume reproduces the uninterrupted weights, records, bad input, divergence."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import robustbench_lip.training.epoch as epoch_mod
from robustbench_lip.config import OptimConfig, PenaltyConfig, TrainConfig
from robustbench_lip.errors import RlipError
from robustbench_lip.runs import is_finished
from robustbench_lip.training import augment, lr_factor, measure_sigma, train

TINY_DATA = {"n_train": 48, "n_test": 12, "image_size": 16}


def _cfg(**kw) -> TrainConfig:
    base = {
        "model": "mresnet18_tiny",
        "data": "shapes",
        "lam": 0.05,
        "data_options": TINY_DATA,
        "epochs": 3,
        "batch_size": 16,
        "optimizer": "adamw",
        "lr": 3e-3,
        "reg_subbatch": 4,
        "reg_eps": 1.0,
        "sigma_points": 4,
        "sigma_iters": 3,
        "sigma_final_iters": 5,
        "device": "cpu",
        "warmup": 0.2,
    }
    base.update(kw)
    return TrainConfig.from_dict(base)  # the flat keys of records, specs and the CLI


class Interrupt(Exception):
    pass


def test_resume_reproduces_uninterrupted_weights(tmp_path: Path) -> None:
    cfg = _cfg(reg_points="interp", augment=True)
    full = train(cfg, tmp_path / "full")
    assert full.status == "finished" and len(full.history) == 3

    def stop_in_epoch_3(e: dict) -> None:
        if e["event"] == "step" and e["epoch"] == 3 and e["step"] == 2:
            raise Interrupt

    part = tmp_path / "part"
    with pytest.raises(Interrupt):
        train(cfg, part, progress=stop_in_epoch_3)
    rec = json.loads((part / "results" / "train.json").read_text())
    assert rec["status"] == "running" and len(rec["history"]) == 2
    assert not is_finished(part)
    resumed = train(cfg, part)
    assert resumed.status == "finished" and not resumed.skipped
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(part / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    # a finished run is skipped
    again = train(cfg, part)
    assert again.skipped and again.final == resumed.final


def test_record_and_model_dir(tmp_path: Path) -> None:
    from robustbench_lip.modelio import load_model

    cfg = _cfg(model="unet_i2i_tiny", data="lesions", epochs=1, lam=0.1)
    res = train(cfg, tmp_path / "run")
    rec = json.loads((tmp_path / "run" / "results" / "train.json").read_text())
    assert rec["kind"] == "train" and rec["status"] == "finished"
    s = rec["settings"]
    assert (s["lam"], s["reg_target"], s["seed"], s["epochs"], s["model"], s["data"]) == (
        0.1,
        "reflection",  # default where defined
        0,
        1,
        "unet_i2i_tiny",
        "lesions",
    )
    final = rec["final"]
    assert set(final) == {
        "accuracy",
        "precision",
        "miou",
        "sigma_A_mean",
        "sigma_A_max",
        "sigma_R_mean",
        "sigma_R_max",
        "collapsed",
    }
    assert isinstance(final["collapsed"], bool)
    for k in ("accuracy", "miou", "sigma_A_max", "sigma_R_max"):
        assert isinstance(final[k], float) and math.isfinite(final[k])
    assert final["sigma_A_mean"] <= final["sigma_A_max"] and final["sigma_R_mean"] <= final["sigma_R_max"]
    assert rec["model"]["arch"] == "unet_i2i_tiny" and rec["dataset"]["name"] == "lesions"
    assert rec["wall_s"] > 0 and res.final == final
    # train returns the typed record it wrote
    from robustbench_lip.io import to_json
    from robustbench_lip.records import TrainRecord

    assert isinstance(res.record, TrainRecord) and json.loads(to_json(res.record.to_dict())) == rec
    model = load_model(tmp_path / "run")
    assert model.config.task == "image2image"
    # the saved model's σ_R on the held-out points matches the record (same measurement)
    from robustbench_lip.data import get_dataset

    x = get_dataset("lesions", "test", **TINY_DATA).take(4).tensors()[0]
    s_r = measure_sigma(model, x, "reflection", iters=5)
    assert float(s_r.max()) == pytest.approx(final["sigma_R_max"], rel=1e-4)
    # classifier without masks-trained head: R undefined
    res2 = train(_cfg(epochs=1, lam=0.0), tmp_path / "clf")
    assert res2.final["sigma_R_max"] is None and res2.final["miou"] is not None


def test_bad_input_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(RlipError, match="unknown model"):
        train(_cfg(model="nope"), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(RlipError, match="dataset"):
        train(_cfg(data="nope"), tmp_path / "b")
    assert not (tmp_path / "b").exists()
    with pytest.raises(RlipError, match="λ"):
        _cfg(lam=-1.0)
    with pytest.raises(RlipError, match="reflection"):
        train(_cfg(reg_target="reflection"), tmp_path / "c")
    assert not (tmp_path / "c").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RlipError, match="not an rlip run"):
        train(_cfg(), other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert (other / "notes.txt").read_text() == "mine"


def test_other_settings_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_cfg(epochs=1, lam=0.0), run)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(RlipError, match="other settings"):
        train(_cfg(epochs=1, lam=0.5), run)
    assert (run / "model.safetensors").read_bytes() == before


def test_divergence_keeps_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = epoch_mod.task_loss
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] > 4 else loss  # 3 steps per epoch: NaN in epoch 2

    monkeypatch.setattr(epoch_mod, "task_loss", flaky)
    run = tmp_path / "run"
    with pytest.raises(RlipError, match=r"diverged.*epoch 2"):
        train(_cfg(), run)
    rec = json.loads((run / "results" / "train.json").read_text())
    assert rec["status"] == "failed" and "diverged" in rec["error"]
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values() if v.is_floating_point())
    assert not (run / "model.safetensors").exists()


def test_augment_moves_images_and_masks_together() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    mask = (x[:, 0] > 0.5).long()
    xa, ma = augment(x, mask, g)
    assert xa.shape == x.shape and ma.shape == mask.shape
    assert torch.equal(ma, (xa[:, 0] > 0.5).long())  # zero padding ↔ background
    assert not torch.equal(xa, x)


def test_lr_schedule() -> None:
    f = lr_factor(_cfg(warmup=0.25).optim, 100)
    assert f(0) == pytest.approx(1 / 25) and f(24) == pytest.approx(1.0)
    assert f(25) == pytest.approx(1.0) and f(100) == pytest.approx(0.0, abs=1e-12)
    assert f(25 + 75 // 2) == pytest.approx(0.5 * (1 + math.cos(math.pi * (75 // 2) / 75)))
    g = lr_factor(_cfg(schedule="constant", warmup=0.0).optim, 10)
    assert [g(i) for i in range(10)] == [1.0] * 10


def test_one_step_run_uses_a_positive_lr(tmp_path: Path) -> None:
    """Regression: a 1-epoch run of a single step (n_train ≤ batch size) recorded lr 0.0; the
    first (here: only) step must use lr > 0, and λ must change the weights."""
    for total in (1, 2, 3):
        for warm in (0.0, 0.2, 0.5, 0.9):
            f = lr_factor(_cfg(warmup=warm).optim, total)
            assert all(f(s) > 0 for s in range(total))
    weights = []
    for lam in (0.0, 0.5):
        cfg = _cfg(lam=lam, epochs=1, batch_size=64, data_options={**TINY_DATA, "n_train": 16})
        res = train(cfg, tmp_path / f"lam{lam}")
        assert res.history[0]["lr"] == pytest.approx(3e-3)
        weights.append(load_file(tmp_path / f"lam{lam}" / "model.safetensors"))
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_large_lambda_with_batchnorm_keeps_sigma_down(tmp_path: Path) -> None:
    """The penalty on a BatchNorm mResNet at a large λ: running statistics stay finite and the
    held-out σ of the eval-mode network (running statistics) ends well below the unregularised
    run's (measured 0.38 vs 0.57; penalty λσ² without hinge, the tiny net is already below 1;
    without hard points — with the default 4 of 8 it measured 0.44)."""
    kw = {
        "epochs": 4,
        "reg_eps": 1.0,
        "reg_subbatch": 8,
        "reg_hard": 0,
        "sigma_iters": 10,
        "sigma_final_iters": 30,
    }
    plain = train(_cfg(lam=0.0, **kw), tmp_path / "plain")
    reg = train(_cfg(lam=1.0, **kw), tmp_path / "reg")
    sd = load_file(tmp_path / "reg" / "model.safetensors")
    assert all(bool(torch.isfinite(v).all()) for k, v in sd.items() if "running" in k)
    assert reg.final["sigma_A_max"] < 0.75 * plain.final["sigma_A_max"]
    assert all(h["sigma_A_max"] < plain.final["sigma_A_max"] for h in reg.history[1:])


def test_logit_scale_scales_the_mask_logits_of_the_loss() -> None:
    """Binary image-to-image model: CE over cat([0, T·z]) is the logistic loss of T·z (closed form)."""
    from robustbench_lip.data import get_dataset
    from robustbench_lip.models import create_model_for
    from robustbench_lip.training import task_loss

    ds = get_dataset("lesions", "train", n_train=4, n_test=2, image_size=16)
    x, y, m = ds.tensors()
    torch.manual_seed(0)
    model = create_model_for("unet_i2i_tiny", ds.info).eval()
    with torch.no_grad():
        z = model(x)[:, 0]
        for t in (1.0, 7.5):
            want = torch.nn.functional.binary_cross_entropy_with_logits(t * z, m.float())
            got = task_loss(model, x, y, m.long(), False, t)
            assert float(got) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(RlipError, match="logit_scale"):
        _cfg(logit_scale=0.0)


def test_reg_bn_reaches_the_penalty() -> None:
    from robustbench_lip.training import build

    assert build(_cfg()).penalty.bn == "batch"
    assert build(_cfg(reg_bn="running")).penalty.bn == "running"
    with pytest.raises(RlipError, match="reg_bn"):
        _cfg(reg_bn="frozen")


# a train_config.json written by rlip 0.1 before the nested config (flat reg_* keys, no reg_method)
OLD_FLAT = {
    "model": "mresnet18_tiny",
    "data": "shapes",
    "lam": 0.01,
    "root": None,
    "data_options": {"n_train": 48, "n_test": 12, "image_size": 16},
    "model_options": {},
    "reg_target": "A",
    "reg_eps": 0.0,
    "reg_iters": 1,
    "reg_points": "data",
    "reg_reduce": "max",
    "reg_subbatch": 8,
    "reg_every": 2,
    "reg_warm": False,
    "reg_bn": "batch",
    "reg_hard": 4,
    "epochs": 2,
    "batch_size": 32,
    "optimizer": "adamw",
    "lr": 0.003,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "schedule": "cosine",
    "warmup": 0.2,
    "dice": False,
    "logit_scale": 1.0,
    "augment": None,
    "seed": 0,
    "device": "cpu",
    "amp": None,
    "sigma_points": 8,
    "sigma_iters": 2,
    "sigma_final_iters": 5,
}


def test_old_flat_configs_load_into_the_nested_form(tmp_path: Path) -> None:
    """A flat config of the previous version loads into TrainConfig{penalty, optim}, writes back the same
    keys (plus the new reg_method, noise_sigma and the loss settings at their defaults), and a run
    folder holding it is recognised as the same run."""
    cfg = TrainConfig.from_dict(OLD_FLAT)
    assert cfg.penalty == PenaltyConfig(lam=0.01, target="A", every=2, subbatch=8, hard=4, bn="batch")
    assert cfg.optim == OptimConfig(name="adamw", lr=0.003, warmup=0.2)
    assert cfg.lam == 0.01 and cfg.epochs == 2 and cfg.sigma_final_iters == 5
    losses = {"loss": "ce", "loss_offset": None, "loss_temperature": None, "loss_margin": None}
    assert cfg.to_dict() == {
        **OLD_FLAT, "reg_method": "double_backward", "noise_sigma": 0.0, **losses, "loss_alpha": None
    }
    nested = {k: v for k, v in OLD_FLAT.items() if not k.startswith("reg_") and k != "lam"}
    nested["penalty"] = {"lam": 0.01, "target": "A", "every": 2}
    assert TrainConfig.from_dict(nested) == cfg
    with pytest.raises(RlipError, match="same setting"):
        TrainConfig.from_dict({**nested, "reg_every": 2})
    with pytest.raises(RlipError, match=r"penalty\.every_k"):
        TrainConfig.from_dict({**nested, "penalty": {"every_k": 2}})
    # resuming a run folder of the previous version: its flat marker matches the nested config
    from robustbench_lip.training import prepare_run_dir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "train_config.json").write_text(json.dumps(OLD_FLAT))
    assert prepare_run_dir(run, cfg) is True
    other = TrainConfig.from_dict({**OLD_FLAT, "reg_every": 1})
    with pytest.raises(RlipError, match="reg_every"):
        prepare_run_dir(run, other)


def test_outputs_finite_catches_eval_mode_overflow() -> None:
    """Finite weights whose eval-mode outputs overflow (running BN statistics) are caught."""
    from robustbench_lip.data import get_dataset
    from robustbench_lip.training.evaluate import outputs_finite

    test_set = get_dataset("shapes", "test", **TINY_DATA)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.BatchNorm2d(2, eps=0.0))
    assert outputs_finite(net, test_set, torch.device("cpu"))
    net[1].running_var.zero_()
    net[1].running_mean.fill_(1e6)
    net[1].train()
    assert not outputs_finite(net, test_set, torch.device("cpu"))
    assert net[1].training  # the caller's mode is restored
