"""`rlip attack` through typer's CliRunner: records, table, batch mode over runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.config import ModelConfig
from robustbench_lip.data import dataset_info
from robustbench_lip.modelio import export_pt2, save_model
from robustbench_lip.models import create_model_for
from robustbench_lip.records import make_record, write_record

DATA_OPTS = {"n_train": 8, "n_test": 10, "image_size": 16, "seed": 0}


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def _make_run(root: Path, name: str, seed: int, finished: bool = True, arch: str = "mresnet18_tiny") -> Path:
    info = dataset_info("shapes", **DATA_OPTS)
    torch.manual_seed(seed)
    model = create_model_for(arch, info)
    run = save_model(model, root / name, dataset=info)
    status = "finished" if finished else "running"
    rec = make_record(
        "train", model=model.config.to_dict(), dataset=info.to_dict(), settings={"seed": seed},
        payload={"status": status, "history": [], "final": {}}, wall_s=0.0,
    )  # fmt: skip
    write_record(run / "results" / "train.json", rec)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _make_run(root, "a", 0)
    _make_run(root, "b", 1)
    _make_run(root, "c", 2, finished=False)
    return root


def test_attack_one_model_writes_record(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    res = _runner().invoke(
        app,
        ["attack", str(runs / "a"), "--eps", "0,8/255", "--attack", "all", "--steps", "2",
         "--n", "6", "--batch-size", "4", "--device", "cpu", "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    files = sorted((runs / "a" / "results").glob("attack-*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert rec == json.loads(out.read_text())
    assert rec["kind"] == "attack" and rec["dataset"]["name"] == "shapes" and rec["n"] == 6
    assert rec["settings"]["eps"] == ["0", "8/255"]
    attacks = [(r["eps_text"], r["attack"]) for r in rec["results"]]
    assert attacks == [(e, a) for e in ("0", "8/255") for a in ("fgsm", "pgd", "segpgd", "cospgd", "worst")]
    for r in rec["results"]:
        assert set(r) >= {"attack", "norm", "eps", "steps", "accuracy", "precision", "miou"}
        if r["eps"] == 0:
            assert [r[k] for k in ("accuracy", "precision", "miou")] == [
                rec["clean"][k] for k in rec["clean"]
            ]
        else:
            assert r["accuracy"] <= rec["clean"]["accuracy"]
    assert "clean" in res.stdout and "worst" in res.stdout


def test_n_larger_than_dataset_is_clamped(runs: Path) -> None:
    res = _runner().invoke(
        app, ["attack", str(runs / "b"), "--eps", "0", "--attack", "fgsm", "--n", "999", "--device", "cpu"]
    )
    assert res.exit_code == 0, res.output
    assert "larger than the dataset (10 samples)" in res.stderr
    rec = json.loads(next((runs / "b" / "results").glob("attack-*.json")).read_text())
    assert rec["n"] == 10


def test_batch_mode_attacks_each_finished_run_once(tmp_path: Path) -> None:
    _make_run(tmp_path, "r1", 0)
    _make_run(tmp_path, "r2", 1)
    _make_run(tmp_path, "r3", 2, finished=False)
    args = ["attack", "--eps", "4/255", "--attack", "pgd", "--steps", "1", "--n", "4",
            "--runs-dir", str(tmp_path),
            "--device", "cpu", "--json", str(tmp_path / "all.json")]  # fmt: skip
    first = _runner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "attacked 2 run(s), skipped 0" in first.stdout
    assert len(json.loads((tmp_path / "all.json").read_text())) == 2
    assert not list((tmp_path / "r3" / "results").glob("attack-*.json"))
    second = _runner().invoke(app, args)
    assert second.exit_code == 0 and "attacked 0 run(s), skipped 2" in second.stdout


def test_batch_mode_skips_mask_attacks_for_a_classifier_without_masks(tmp_path: Path) -> None:
    _make_run(tmp_path, "cam", 0)
    _make_run(tmp_path, "dense", 1, arch="sllnet_tiny")  # a dense head: no masks
    args = ["attack", "--eps", "4/255", "--attack", "pgd,sea", "--steps", "1", "--n", "4",
            "--runs-dir", str(tmp_path), "--device", "cpu"]  # fmt: skip
    res = _runner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "dense: no masks to attack; skipping sea" in res.stderr
    dense = json.loads(next((tmp_path / "dense" / "results").glob("attack-*.json")).read_text())
    cam = json.loads(next((tmp_path / "cam" / "results").glob("attack-*.json")).read_text())
    assert dense["settings"]["attack"] == ["pgd"] and "sea" in cam["settings"]["attack"]
    again = _runner().invoke(app, args)
    assert again.exit_code == 0 and "attacked 0 run(s), skipped 2" in again.stdout


class _Plain(nn.Module):
    """A classifier that produces no masks (exported to .pt2, a foreign model)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)
        self.config = ModelConfig("plain", "classification", 3, 10, (3, 32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--eps", "8/255,x"], "bad eps value 'x'"),
        (["--eps", "1.5"], "bad eps value '1.5'"),
        (["--eps", "-1", "--norm", "l2"], "bad eps value '-1'"),
        (["--eps", "0.1", "--attack", "deepfool"], "unknown attack 'deepfool'"),
    ],
)
def test_bad_input_one_line(runs: Path, args: list[str], message: str) -> None:
    res = _runner().invoke(app, ["attack", str(runs / "a"), *args])
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in res.output


def test_segmentation_attack_on_maskless_classifier(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = export_pt2(_Plain().eval(), tmp_path / "plain.pt2")
    res = _runner().invoke(
        app, ["attack", str(path), "--eps", "0.1", "--attack", "segpgd", "--data", "shapes", "--n", "2",
              "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "segmentation attack 'segpgd' needs a model that segments" in lines[0]


def test_batch_mode_reports_a_run_it_cannot_plan_and_attacks_the_others(tmp_path: Path) -> None:
    _make_run(tmp_path, "good", 0)
    bad = _make_run(tmp_path, "nodata", 1)
    cfg = json.loads((bad / "config.json").read_text())
    cfg.pop("dataset")  # a run whose config names no dataset: its settings cannot be planned
    (bad / "config.json").write_text(json.dumps(cfg))
    args = ["attack", "--eps", "4/255", "--attack", "fgsm", "--n", "4", "--runs-dir", str(tmp_path),
            "--device", "cpu"]  # fmt: skip
    res = _runner().invoke(app, args)
    assert res.exit_code == 1
    assert "nodata: the model does not say which dataset" in res.stderr
    assert "attacked 1 run(s), skipped 0 with a record, 1 failed" in res.stdout
    assert len(list((tmp_path / "good" / "results").glob("attack-*.json"))) == 1
    again = _runner().invoke(app, args)
    assert again.exit_code == 1 and "attacked 0 run(s), skipped 1 with a record, 1 failed" in again.stdout
