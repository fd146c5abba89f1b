"""A run that does no better than a constant prediction is flagged in its record (final.collapsed)
and shown as collapsed by `rlip zoo train` / `rlip zoo list`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.data import get_dataset
from robustbench_lip.training.evaluate import COLLAPSE_TOL, collapse, constant_scores

runner = CliRunner()


def test_constant_scores_match_a_direct_count():
    ds = get_dataset("shapes", "test", n_train=8, n_test=40, image_size=16, seed=0)
    y = torch.as_tensor([ds[i][1] for i in range(40)])
    base = constant_scores(ds)
    assert base["accuracy"] == pytest.approx(float(torch.bincount(y).max()) / 40)
    les = get_dataset("lesions", "test", n_train=8, n_test=20, image_size=16, seed=0)
    m = torch.stack([les[i][2] for i in range(20)])
    bg = float((m == 0).float().mean())  # all-background: IoU(bg) = bg share, IoU(lesion) = 0
    assert constant_scores(les)["miou"] == pytest.approx(bg / 2, abs=1e-6)


def test_collapse_by_task():
    ds = get_dataset("lesions", "test", n_train=8, n_test=20, image_size=16, seed=0)
    base = constant_scores(ds)
    assert collapse({"accuracy": 0.99, "miou": base["miou"] + COLLAPSE_TOL / 2}, ds, "image2image")
    assert not collapse({"accuracy": 0.0, "miou": base["miou"] + 0.1}, ds, "image2image")
    assert collapse({"accuracy": base["accuracy"], "miou": 0.9}, ds, "classification")
    assert not collapse({"accuracy": base["accuracy"] + 0.1, "miou": 0.0}, ds, "classification")


SPEC = """
name = "col"
[data]
name = "shapes"
n_train = 32
n_test = 16
image_size = 16
[sweep]
models = ["sllnet_tiny"]
lams = [0]
[train]
epochs = 1
batch_size = 16
lr = 1e-3
sigma_points = 2
sigma_iters = 2
sigma_final_iters = 2
device = "cpu"
"""


def test_zoo_list_shows_a_collapsed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_lip.cli.common import console

    monkeypatch.setattr(console, "width", 250)
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    runs = tmp_path / "runs"
    r = runner.invoke(app, ["zoo", "train", str(spec), "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    path = runs / "col-sllnet_tiny-lam0-s0" / "results" / "train.json"
    rec = json.loads(path.read_text())
    assert isinstance(rec["final"]["collapsed"], bool)
    assert all(isinstance(h["collapsed"], bool) for h in rec["history"])
    rec["final"]["collapsed"] = True
    path.write_text(json.dumps(rec))
    r = runner.invoke(app, ["zoo", "list", "--runs-dir", str(runs)])
    assert r.exit_code == 0 and "collapsed to chance" in r.stdout
    rec["final"]["collapsed"] = False
    path.write_text(json.dumps(rec))
    r = runner.invoke(app, ["zoo", "list", "--runs-dir", str(runs)])
    assert r.exit_code == 0 and "collapsed" not in r.stdout and "finished" in r.stdout
