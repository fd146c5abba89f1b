"""The shared foundation: atomic I/O, records, run directories, configs, devices, the root CLI."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from robustbench_lip import __version__
from robustbench_lip.cli.app import app
from robustbench_lip.cli.common import handle_errors
from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.device import eval_mode, preserved_modes, preserved_rng, resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_path, atomic_write_json, read_json
from robustbench_lip.records import SCHEMA_VERSION, make_record, record_path, settings_key, write_record
from robustbench_lip.runs import finished_runs, is_finished


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_json_nan_becomes_null(tmp_path: Path) -> None:
    p = atomic_write_json(tmp_path / "a" / "b.json", {"x": math.nan, "y": (1, 2.5), "t": torch.tensor(3.0)})
    assert read_json(p) == {"x": None, "y": [1, 2.5], "t": 3.0}


def test_atomic_write_unwritable_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RlipError, match="cannot"):
        atomic_write_json(blocker / "sub" / "r.json", {})


def test_read_json_errors(tmp_path: Path) -> None:
    with pytest.raises(RlipError, match="not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(RlipError, match="not valid JSON"):
        read_json(bad)


def test_settings_key_is_stable_and_order_free() -> None:
    a = settings_key({"eps": [0.1, 0.2], "attack": "pgd"})
    b = settings_key({"attack": "pgd", "eps": [0.1, 0.2]})
    assert a == b and len(a) == 10
    assert a != settings_key({"attack": "pgd", "eps": [0.1]})


def test_record_envelope_and_runs(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r1"
    rec = make_record(
        "train",
        model={"arch": "m"},
        dataset=None,
        settings={"lam": 0.0},
        payload={"status": "finished", "final": {"accuracy": None}},
        wall_s=1.5,
    )
    assert rec["kind"] == "train" and rec["final"] == {"accuracy": None} and rec["env"]["rlip"] == __version__
    with pytest.raises(ValueError):
        make_record("train", model=None, dataset=None, settings={}, payload={"kind": 1}, wall_s=0)
    assert not is_finished(run)
    write_record(record_path(run, "train"), rec)
    assert not is_finished(run)  # no model files yet
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes(b"")
    assert is_finished(run) and finished_runs(tmp_path / "runs") == [run]
    assert json.loads(record_path(run, "train").read_text())["status"] == "finished"
    assert rec["schema_version"] == SCHEMA_VERSION


def test_config_round_trip_and_missing_key() -> None:
    cfg = ModelConfig(
        arch="x",
        task="classification",
        in_channels=3,
        num_classes=10,
        input_size=(3, 32, 32),
        kwargs={"w": 16},
    )
    d = json.loads(json.dumps(cfg.to_dict()))
    assert ModelConfig.from_dict(d) == cfg
    info = DatasetInfo(
        name="s", in_channels=1, image_size=(8, 8), num_classes=2, class_names=("a", "b"), has_masks=False
    )
    assert DatasetInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    d.pop("task")
    with pytest.raises(RlipError, match="missing key"):
        ModelConfig.from_dict(d)
    with pytest.raises(RlipError, match="task"):
        ModelConfig(arch="x", task="nope", in_channels=1, num_classes=1, input_size=(1, 1, 1))  # type: ignore[arg-type]


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(RlipError, match="invalid device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RlipError, match="CUDA is not available"):
            resolve_device("cuda")


def test_preserved_rng_and_modes_also_on_error() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    net.train()
    net[1].eval()  # a frozen BN inside a training model
    before = torch.get_rng_state().clone()
    py_before = random.getstate()
    with pytest.raises(RuntimeError), preserved_rng(), preserved_modes(net):
        torch.rand(5)
        random.random()
        net.eval()
        raise RuntimeError
    assert torch.equal(torch.get_rng_state(), before) and random.getstate() == py_before
    assert net.training and net[0].training and not net[1].training


def test_eval_mode_sets_eval_and_restores_each_flag() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2), torch.nn.Dropout())
    net.train()
    net[1].eval()
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not any(m.training for m in net.modules())
        raise RuntimeError
    assert net.training and net[0].training and not net[1].training and net[2].training


def test_cli_version_and_help() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and __version__ in res.output
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "Usage" in res.output


def test_handle_errors_one_line_exit_1() -> None:
    sub = typer.Typer()

    @sub.command()
    @handle_errors
    def boom() -> None:
        raise RlipError("something the user can fix")

    res = CliRunner().invoke(sub, [])
    assert res.exit_code == 1
    assert "something the user can fix" in res.output and "Traceback" not in res.output


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "robustbench_lip", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout


def test_public_api_names_resolve() -> None:
    import robustbench_lip

    for name in robustbench_lip.__all__:
        assert getattr(robustbench_lip, name) is not None, name
    with pytest.raises(AttributeError):
        robustbench_lip.no_such_name  # noqa: B018
