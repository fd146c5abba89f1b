"""Extension points from outside the package: a toy attack and a toy dataset, each registered here
through its registry (one file), show in the CLI and work end to end — the attack in `rlip attack`
and in the leaderboard built from that run dir, the dataset in `rlip data list/preview` and
`rlip train`. Every registration is undone after its test (no state leaks between tests)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from robustbench_lip.attacks import ATTACKS, AttackCall, AttackSpec, register_attack
from robustbench_lip.attacks.registry import LABELS, MASKS
from robustbench_lip.cli.app import app
from robustbench_lip.config import DatasetInfo
from robustbench_lip.data import dataset_info, get_dataset
from robustbench_lip.data.base import RlipDataset
from robustbench_lip.data.registry import DATASETS, DatasetSpec, register_dataset
from robustbench_lip.errors import RlipError
from robustbench_lip.modelio import load_model, save_model
from robustbench_lip.models import create_model_for
from robustbench_lip.records import make_record, write_record
from robustbench_lip.registry import DuplicateName

WIDE = {"COLUMNS": "200", "TERM": "dumb"}
DATA_OPTS = {"n_train": 8, "n_test": 10, "image_size": 16, "seed": 0}


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


# --- a toy attack: brighten every pixel by ε (ℓ∞ only), clamped to [0, 1] ---------------------------


def _brighten(call: AttackCall) -> Any:
    return lambda x, y, m: (x + call.eps).clamp(0, 1)


TOY_ATTACK = AttackSpec(
    "toybright", _brighten, targets=(LABELS, MASKS), norms=("linf",), steps=1, summary="x + ε, clamped"
)


@pytest.fixture
def toy_attack() -> Iterator[AttackSpec]:
    with ATTACKS.registered(TOY_ATTACK.name, TOY_ATTACK) as spec:
        yield spec
    assert TOY_ATTACK.name not in ATTACKS


def _make_run(root: Path) -> Path:
    info = dataset_info("shapes", **DATA_OPTS)
    torch.manual_seed(3)
    model = create_model_for("mresnet18_tiny", info)
    run = save_model(model, root / "run", dataset=info)
    rec = make_record(
        "train", model=model.config.to_dict(), dataset=info.to_dict(), settings={"seed": 3},
        payload={"status": "finished", "history": [], "final": {}}, wall_s=0.0,
    )  # fmt: skip
    write_record(run / "results" / "train.json", rec)
    return run


def test_toy_attack_registers_once_and_unregisters() -> None:
    assert TOY_ATTACK.name not in ATTACKS
    with ATTACKS.registered(TOY_ATTACK.name, TOY_ATTACK):
        with pytest.raises(DuplicateName, match="already registered"):
            register_attack(TOY_ATTACK)
        other = AttackSpec(TOY_ATTACK.name, _brighten, norms=("linf", "l2"))
        register_attack(other, replace=True)
        assert ATTACKS.get(TOY_ATTACK.name) is other
    assert TOY_ATTACK.name not in ATTACKS
    with pytest.raises(RlipError, match="unknown attack 'toybright'; known: fgsm, pgd"):
        ATTACKS.get("toybright")


def test_toy_attack_in_help_record_and_leaderboard(toy_attack: AttackSpec, tmp_path: Path) -> None:
    runner = _runner()
    help_text = runner.invoke(app, ["attack", "--help"], env=WIDE).stdout
    assert "toybright" in help_text
    run = _make_run(tmp_path / "runs")
    res = runner.invoke(
        app,
        ["attack", str(run), "--eps", "8/255", "--attack", "toybright,pgd", "--steps", "2", "--n", "6",
         "--batch-size", "4", "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    (path,) = (run / "results").glob("attack-*.json")
    rec = json.loads(path.read_text())
    row = next(r for r in rec["results"] if r["attack"] == "toybright")
    assert row["steps"] == 1 and row["restarts"] == 1
    # independent truth: the accuracy of the model on the brightened first 6 test images
    model = load_model(run)
    x, y, _ = get_dataset("shapes", "test", **DATA_OPTS).take(6).tensors()
    with torch.no_grad():
        acc = (model((x + 8 / 255).clamp(0, 1)).argmax(1) == y).double().mean().item()
    assert row["accuracy"] == pytest.approx(acc, abs=1e-12)
    # the leaderboard built from that run dir has the toy attack's column
    out = tmp_path / "rep"
    lb = runner.invoke(app, ["leaderboard", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)])
    assert lb.exit_code == 0, lb.output
    with open(out / "leaderboard.csv", newline="") as f:
        header = next(csv.reader(f))
    assert any(h.startswith("toybright_linf@8/255") for h in header), header


def test_toy_attack_refuses_a_norm_it_does_not_declare(toy_attack: AttackSpec, tmp_path: Path) -> None:
    run = _make_run(tmp_path / "runs")
    res = _runner().invoke(
        app, ["attack", str(run), "--eps", "0.5", "--norm", "l2", "--attack", "toybright", "--n", "2"]
    )
    assert res.exit_code == 1
    assert "supports linf, not l2" in res.output + (res.stderr if res.stderr_bytes is not None else "")


# --- a toy dataset: a bright bar, vertical (label 0) or horizontal (label 1), on seeded noise -------------


def _bars_info(
    root: Any, n_train: int = 24, n_test: int = 8, image_size: int = 16, seed: int = 0
) -> DatasetInfo:
    return DatasetInfo(
        name="toybars", in_channels=3, image_size=(image_size, image_size), num_classes=2,
        class_names=("vertical", "horizontal"), has_masks=False, num_mask_classes=None,
        mask_class_names=(), mean=(0.5,) * 3, std=(0.25,) * 3,
        options={"n_train": n_train, "n_test": n_test, "image_size": image_size, "seed": seed},
    )  # fmt: skip


def _bars_load(root: Any, split: str, **options: Any) -> RlipDataset:
    info = _bars_info(root, **options)
    o = info.options
    n, s = o[f"n_{split}"], o["image_size"]
    g = torch.Generator().manual_seed(o["seed"] * 2 + (split == "test"))
    images = torch.rand(n, 3, s, s, generator=g) * 0.3
    labels = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(0, s, (n,), generator=g)
    for i in range(n):
        if labels[i] == 0:
            images[i, :, :, pos[i]] = 1.0
        else:
            images[i, :, pos[i], :] = 1.0
    return RlipDataset(info, images, labels)


TOY_DATA = DatasetSpec("toybars", _bars_info, _bars_load, generated=True)


@pytest.fixture
def toy_data() -> Iterator[DatasetSpec]:
    with DATASETS.registered(TOY_DATA.name, TOY_DATA) as spec:
        yield spec
    assert TOY_DATA.name not in DATASETS


def test_toy_dataset_registers_once_and_unregisters() -> None:
    with DATASETS.registered(TOY_DATA.name, TOY_DATA):
        with pytest.raises(DuplicateName, match="already registered"):
            register_dataset(TOY_DATA)
        assert get_dataset("toybars", "test", n_test=3)[0][0].shape == (3, 16, 16)
    with pytest.raises(RlipError, match="unknown dataset 'toybars'"):
        get_dataset("toybars", "test")


def test_toy_dataset_lists_previews_and_trains(toy_data: DatasetSpec, tmp_path: Path) -> None:
    runner = _runner()
    listed = runner.invoke(app, ["data", "list"], env=WIDE)
    assert listed.exit_code == 0, listed.output
    line = next(ln for ln in listed.stdout.splitlines() if "toybars" in ln)
    assert "24" in line and "16×16" in line and "no" in line  # n_train, size, masks from its info
    png = tmp_path / "p.png"
    shown = runner.invoke(app, ["data", "preview", "toybars", "--out", str(png), "--n", "4", "--seed", "1"])
    assert shown.exit_code == 0, shown.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "run"
    trained = runner.invoke(
        app,
        ["train", "--model", "mresnet18_tiny", "--data", "toybars", "--out", str(out), "--n-train", "16",
         "--n-test", "8", "--device", "cpu", "--batch-size", "8", "--epochs", "1", "--optimizer", "adamw",
         "--lr", "1e-3", "--sigma-points", "4", "--reg-subbatch", "4"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    rec = json.loads((out / "results" / "train.json").read_text())
    assert rec["dataset"]["name"] == "toybars" and rec["status"] == "finished"
    # the leaderboard built from that run has a row on the toy dataset, with the run's own accuracy
    rep = tmp_path / "rep"
    lb = runner.invoke(app, ["leaderboard", "--runs-dir", str(tmp_path), "--out", str(rep), "--no-plots"])
    assert lb.exit_code == 0, lb.output
    with open(rep / "leaderboard.csv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["dataset"] == "toybars"]
    assert float(row["acc"]) == pytest.approx(rec["final"]["accuracy"], abs=1e-9)
