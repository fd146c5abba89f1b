"""The evaluation protocol loads once: `rlip certify RUN` (and a runs folder) reads each run's
config.json once and exports and propagates the model once (the head rule reuses the graph)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import robustbench_lip.lipschitz.bounds as bounds
import robustbench_lip.modelio.load as load
from robustbench_lip.cli.app import app

runner = CliRunner()


def _save(tmp_path: Path, arch: str, data: str) -> Path:
    from robustbench_lip.data import dataset_info
    from robustbench_lip.modelio import save_model
    from robustbench_lip.models import create_model_for

    info = dataset_info(data, n_train=8, n_test=8)
    torch.manual_seed(3)
    out = tmp_path / "runs" / f"{data}-{arch}"
    save_model(create_model_for(arch, info), out, dataset=info)
    (out / "results").mkdir(exist_ok=True)
    (out / "results" / "train.json").write_text('{"kind": "train", "status": "finished"}')
    return out


@pytest.fixture()
def counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    seen = {"config.json": 0, "export": 0, "propagate": 0}
    read_json, export, propagate = load.read_json, torch.export.export, bounds.propagate

    def counting_read(path, *a, **k):
        seen["config.json"] += Path(path).name == "config.json"
        return read_json(path, *a, **k)

    def counting_export(*a, **k):
        seen["export"] += 1
        return export(*a, **k)

    def counting_propagate(*a, **k):
        seen["propagate"] += 1
        return propagate(*a, **k)

    monkeypatch.setattr(load, "read_json", counting_read)
    monkeypatch.setattr(torch.export, "export", counting_export)
    monkeypatch.setattr(bounds, "propagate", counting_propagate)
    return seen


@pytest.mark.parametrize("arch", ["mresnet18_tiny", "lipresnet18_tiny"])
def test_certify_run_reads_config_and_exports_once(tmp_path, counts, arch):
    run = _save(tmp_path, arch, "shapes")
    res = runner.invoke(app, ["certify", str(run), "--n", "4", "--steps", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert counts == {"config.json": 1, "export": 1, "propagate": 1}, counts
    (rec,) = [json.loads(p.read_text()) for p in (run / "results").glob("certify-*.json")]
    assert rec["radius_rules"]["classifier"] is not None  # the radii ran, on the one graph


def test_runs_folder_reads_each_config_once(tmp_path, counts):
    run = _save(tmp_path, "mresnet18_tiny", "shapes")
    args = ["certify", "--runs-dir", str(run.parent), "--n", "4", "--steps", "0", "--device", "cpu"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert counts["config.json"] == 1 and counts["export"] == 1, counts
    again = runner.invoke(app, args)  # already recorded: planned from config.json alone, nothing run
    assert again.exit_code == 0 and "nothing to certify" in again.output
    assert counts["config.json"] == 2 and counts["export"] == 1, counts
