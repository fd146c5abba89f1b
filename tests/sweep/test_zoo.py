"""Sweep specs and executors: TOML validation, submitit-local sweep, skip on rerun, listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_lip.config import SweepSpec
from robustbench_lip.errors import RlipError
from robustbench_lip.runs import is_finished
from robustbench_lip.sweep import list_runs, plan, run_sweep

SPEC = """
name = "tiny"
[data]
name = "shapes"
n_train = 32
n_test = 8
image_size = 16
[sweep]
models = ["mresnet18_tiny"]
lams = [0, 0.1]
seeds = [0]
[train]
epochs = 1
batch_size = 16
optimizer = "adamw"
lr = 1e-3
reg_subbatch = 4
sigma_points = 4
sigma_iters = 2
sigma_final_iters = 2
device = "cpu"
[certify]
n = 8
eps = ["2/255"]
[attack]
attacks = ["fgsm"]
eps = ["2/255", "8/255"]
"""


def _write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_spec_parses_and_plans(tmp_path: Path) -> None:
    spec = SweepSpec.from_toml(_write(tmp_path, SPEC))
    assert spec.name == "tiny" and spec.data == "shapes" and spec.lams == (0.0, 0.1)
    assert spec.data_options == {"n_train": 32, "n_test": 8, "image_size": 16}
    assert spec.certify == {"n": 8, "eps": ["2/255"]} and spec.attack["attacks"] == ["fgsm"]
    runs = plan(spec, tmp_path / "runs")
    assert [r.name for r in runs] == ["tiny-mresnet18_tiny-lam0-s0", "tiny-mresnet18_tiny-lam0.1-s0"]
    assert (
        runs[1].config.lam == 0.1
        and runs[1].config.epochs == 1
        and runs[1].config.data_options["n_train"] == 32
    )


def test_nested_train_tables_equal_flat_keys(tmp_path: Path) -> None:
    """[train.penalty] / [train.optim] tables give the configs of the flat reg_* / optimiser keys."""
    flat = SweepSpec.from_toml(_write(tmp_path, SPEC))
    text = SPEC.replace('optimizer = "adamw"\nlr = 1e-3\nreg_subbatch = 4\n', "").replace(
        "[certify]", '[train.penalty]\nsubbatch = 4\n[train.optim]\nname = "adamw"\nlr = 1e-3\n[certify]'
    )
    nested = SweepSpec.from_toml(_write(tmp_path, text, "nested.toml"))
    assert nested.runs() == flat.runs()
    assert flat.runs()[1][1].penalty.subbatch == 4 and flat.runs()[1][1].optim.name == "adamw"
    with pytest.raises(RlipError, match=r"train\.penalty\.lam"):  # λ comes from sweep.lams only
        SweepSpec.from_toml(_write(tmp_path, text.replace("subbatch = 4", "lam = 1"), "lam.toml"))
    with pytest.raises(RlipError, match="same setting"):
        twice = text.replace("epochs = 1", "epochs = 1\nreg_subbatch = 2")
        SweepSpec.from_toml(_write(tmp_path, twice, "twice.toml"))


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda s: s.replace('name = "shapes"\n', 'name = "shapes"\nbad = [\n'), "malformed TOML"),
        (lambda s: s.replace("lams = [0, 0.1]\n", ""), "sweep.lams"),
        (lambda s: s.replace('models = ["mresnet18_tiny"]\n', ""), "sweep.models"),
        (lambda s: s.replace("lams = [0, 0.1]", "lams = [0, -1]"), "sweep.lams"),
        (lambda s: s.replace("epochs = 1", "epochs = 1\nepoch = 3"), "train.epoch"),
        (lambda s: s.replace("epochs = 1", 'epochs = "one"'), "epochs"),
        (lambda s: s.replace('[data]\nname = "shapes"', "[data]"), "data.name"),
        (lambda s: s.replace("[sweep]", "[swep]"), "swep"),
        (lambda s: s.replace('optimizer = "adamw"', 'optimizer = "adam"'), "optimizer"),
    ],
)
def test_bad_specs_name_the_key(tmp_path: Path, edit, key: str) -> None:
    p = _write(tmp_path, edit(SPEC))
    with pytest.raises(RlipError) as info:
        SweepSpec.from_toml(p)
    msg = str(info.value)
    assert key in msg and "\n" not in msg


def test_bad_names_and_foreign_run_dir_stop_before_training(tmp_path: Path) -> None:
    spec = SweepSpec.from_toml(_write(tmp_path, SPEC.replace("mresnet18_tiny", "resnet_nope")))
    with pytest.raises(RlipError, match="unknown model 'resnet_nope'"):
        run_sweep(spec, tmp_path / "runs")
    spec = SweepSpec.from_toml(
        _write(tmp_path, SPEC.replace("lr = 1e-3", 'lr = 1e-3\nreg_target = "reflection"'))
    )
    with pytest.raises(RlipError, match="reflection"):
        run_sweep(spec, tmp_path / "runs")
    spec = SweepSpec.from_toml(_write(tmp_path, SPEC.replace("n_train = 32", "n_trian = 32")))
    with pytest.raises(RlipError, match="n_trian"):
        run_sweep(spec, tmp_path / "runs")
    spec = SweepSpec.from_toml(_write(tmp_path, SPEC))
    foreign = tmp_path / "runs" / "tiny-mresnet18_tiny-lam0.1-s0"
    foreign.mkdir(parents=True)
    (foreign / "x.txt").write_text("keep")
    with pytest.raises(RlipError, match="not an rlip run"):
        run_sweep(spec, tmp_path / "runs")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["tiny-mresnet18_tiny-lam0.1-s0"]
    assert (foreign / "x.txt").read_text() == "keep"


def test_submitit_local_sweep_then_rerun_skips(tmp_path: Path) -> None:
    spec = SweepSpec.from_toml(_write(tmp_path, SPEC))
    runs = tmp_path / "runs"
    res = run_sweep(spec, runs, "submitit-local", parallel=2)
    assert [r["status"] for r in res.rows] == ["finished", "finished"], [r["error"] for r in res.rows]
    assert not any(r["skipped"] for r in res.rows)
    assert all(is_finished(p.run_dir) for p in plan(spec, runs))
    assert [r["lam"] for r in res.rows] == [0.0, 0.1]
    assert all(r["sigma_A_max"] is not None and r["accuracy"] is not None for r in res.rows)
    mtimes = [(p.run_dir / "model.safetensors").stat().st_mtime_ns for p in plan(spec, runs)]
    again = run_sweep(spec, runs, "submitit-local")
    assert [r["status"] for r in again.rows] == ["finished", "finished"]
    assert all(r["skipped"] for r in again.rows)
    assert mtimes == [(p.run_dir / "model.safetensors").stat().st_mtime_ns for p in plan(spec, runs)]
    listed = list_runs(runs)
    assert [r["name"] for r in listed] == [p.name for p in plan(spec, runs)]
    assert all(r["status"] == "finished" and r["epochs_done"] == 1 for r in listed)


def test_local_executor_resumes_unfinished(tmp_path: Path) -> None:
    from robustbench_lip.training import train

    spec = SweepSpec.from_toml(
        _write(tmp_path, SPEC.replace("lams = [0, 0.1]", "lams = [0]").replace("epochs = 1", "epochs = 2"))
    )
    (run,) = plan(spec, tmp_path / "runs")

    class Stop(Exception):
        pass

    def stop(e: dict) -> None:
        if e["event"] == "epoch":
            raise Stop

    with pytest.raises(Stop):
        train(run.config, run.run_dir, progress=stop)
    assert list_runs(tmp_path / "runs")[0]["status"] == "running"
    events: list[dict] = []
    res = run_sweep(spec, tmp_path / "runs", "local", progress_factory=lambda p: events.append)
    assert res.rows[0]["status"] == "finished" and res.rows[0]["epochs_done"] == 2
    assert events[0]["event"] == "start" and events[0]["start_epoch"] == 1
