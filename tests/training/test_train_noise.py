"""Gaussian noise augmentation (--noise-sigma) and the record of what the trainer really applied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import robustbench_lip.training.epoch as epoch_mod
from robustbench_lip.cli.app import app
from robustbench_lip.config import TrainConfig
from robustbench_lip.config.train import settable_keys
from robustbench_lip.data import get_dataset, make_loader
from robustbench_lip.errors import RlipError
from robustbench_lip.training import augment, train

TINY = {"n_train": 32, "n_test": 8, "image_size": 16}


def _cfg(**kw) -> TrainConfig:
    base = {
        "model": "mresnet18_tiny", "data": "shapes", "lam": 0.05, "data_options": TINY, "epochs": 1,
        "batch_size": 16, "optimizer": "adamw", "reg_subbatch": 2, "sigma_points": 2, "sigma_iters": 2,
        "sigma_final_iters": 2, "device": "cpu", "augment": True,
    }  # fmt: skip
    return TrainConfig.from_dict({**base, **kw})


def _inputs(cfg: TrainConfig, run: Path, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The inputs the task loss saw, step by step, in a run of `cfg`."""
    seen: list[torch.Tensor] = []
    real = epoch_mod.task_loss

    def spy(model, x, *a, **k):
        seen.append(x.detach().clone())
        return real(model, x, *a, **k)

    monkeypatch.setattr(epoch_mod, "task_loss", spy)
    train(cfg, run)
    monkeypatch.setattr(epoch_mod, "task_loss", real)
    return seen


def _clean_inputs(cfg: TrainConfig) -> list[torch.Tensor]:
    """Epoch 0's inputs rebuilt from the documented rule: loader order and flip/crop seeded by the
    epoch seed, nothing else (what the trainer did before noise existed)."""
    seed = epoch_mod.epoch_seed(cfg, 0)
    gen = torch.Generator().manual_seed(seed)
    ds = get_dataset(cfg.data, "train", **cfg.data_options)
    loader = make_loader(ds, cfg.batch_size, shuffle=True, seed=seed, drop_last=True)
    return [augment(x, m, gen)[0] for x, _y, m in loader]


def test_noise_has_the_asked_std_and_zero_noise_is_the_old_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sigma = 0.25
    clean = _clean_inputs(_cfg())
    assert len(clean) == 2
    off = _inputs(_cfg(), tmp_path / "off", monkeypatch)
    assert all(torch.equal(a, b) for a, b in zip(off, clean, strict=True))  # σ = 0: bit-identical
    noisy = _inputs(_cfg(noise_sigma=sigma), tmp_path / "on", monkeypatch)
    d = torch.cat([(a - b).flatten() for a, b in zip(noisy, clean, strict=True)]).double()
    n = d.numel()  # 2 × 16 × 3 × 16 × 16
    assert abs(float(d.mean())) < 4 * sigma / n**0.5
    assert abs(float(d.std()) / sigma - 1) < 0.03
    inside = float((d.abs() < sigma).double().mean())  # Gaussian: P(|Z| < 1) = 0.6827
    assert abs(inside - 0.6827) < 0.02
    x = torch.cat(noisy)
    assert float(x.min()) < 0 and float(x.max()) > 1  # not clamped
    # deterministic: the trainer's own generator, seeded by (seed, epoch), apart from flip/crop's
    gen = torch.Generator().manual_seed(epoch_mod.epoch_seed(_cfg(), 0) + epoch_mod.NOISE_STREAM)
    for a, b in zip(noisy, clean, strict=True):
        assert torch.equal(a, b + sigma * torch.randn(b.shape, generator=gen))


def test_record_says_what_was_applied(tmp_path: Path) -> None:
    res = train(_cfg(augment=None), tmp_path / "plain")  # shapes: no flip/crop by default
    s = res.settings
    assert s["augment"] is False and s["augmentation"] == [] and s["noise_sigma"] == 0
    res = train(_cfg(noise_sigma=0.5), tmp_path / "noisy")
    rec = json.loads((tmp_path / "noisy" / "results" / "train.json").read_text())
    meta = json.loads((tmp_path / "noisy" / "config.json").read_text())
    for settings in (rec["settings"], meta["training"]["settings"]):
        assert settings["augment"] is True and settings["noise_sigma"] == 0.5
        flip, crop, noise = settings["augmentation"]
        assert "flip" in flip and "crop" in crop and "0.5" in noise and "not clamped" in noise


def test_noise_sigma_validation_and_spec_key() -> None:
    assert "noise_sigma" in settable_keys()  # zoo specs: [train] noise_sigma = 0.25
    assert TrainConfig.from_dict({"model": "m", "data": "d"}).noise_sigma == 0  # old configs: off
    for bad in (-0.1, float("nan"), "0.2"):
        with pytest.raises(RlipError, match="noise_sigma"):
            _cfg(noise_sigma=bad)
    r = CliRunner().invoke(app, ["train", "--model", "m", "--data", "d", "--out", "o", "--noise-sigma", "-1"])
    assert r.exit_code != 0
    help_text = " ".join(CliRunner().invoke(app, ["train", "--help"]).output.replace("│", " ").split())
    assert "--noise-sigma" in help_text and "not clamped" in help_text
