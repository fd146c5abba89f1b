"""`rlip train`, `rlip zoo train`, `rlip zoo list` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustbench_lip.cli.app import app

runner = CliRunner()
TINY = ["--n-train", "32", "--n-test", "8", "--image-size", "16", "--device", "cpu", "--batch-size", "16"]
FAST = ["--sigma-points", "4", "--epochs", "1", "--optimizer", "adamw", "--lr", "1e-3", "--reg-subbatch", "4"]


def _one_line_error(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert "Traceback" not in result.output and len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    for w in words:
        assert w in err, err


def test_train_command_writes_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--model", "unet_i2i_tiny", "--data", "lesions", "--lam", "0.1", "--out", str(out)]
    r = runner.invoke(app, args + TINY + FAST)
    assert r.exit_code == 0, r.output
    rec = json.loads((out / "results" / "train.json").read_text())
    assert rec["status"] == "finished" and rec["settings"]["reg_target"] == "reflection"
    assert rec["settings"]["data_options"] == {"n_train": 32, "n_test": 8, "image_size": 16}
    assert rec["settings"]["logit_scale"] == 1.0 and rec["settings"]["reg_bn"] == "batch"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "sigma_R_max" in r.stdout
    again = runner.invoke(app, args + TINY + FAST)
    assert again.exit_code == 0 and "already finished" in again.stdout


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--model", "resnet_nope", "--data", "shapes"], ["unknown model"]),
        (["--model", "mresnet18_tiny", "--data", "nope"], ["nope"]),
        (["--model", "mresnet18_tiny", "--data", "shapes", "--lam", "-1"], ["λ"]),
        (["--model", "mresnet18_tiny", "--data", "shapes", "--reg-target", "reflection"], ["reflection"]),
        (["--model", "mresnet18_tiny", "--data", "shapes", "--model-opt", "width"], ["KEY=VALUE"]),
        (["--model", "unet_i2i_tiny", "--data", "lesions", "--logit-scale", "0"], ["logit_scale"]),
        (["--model", "mresnet18_tiny", "--data", "shapes", "--reg-hard", "-1"], ["hard"]),
    ],
)
def test_train_bad_input(tmp_path: Path, extra: list[str], words: list[str]) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", *extra, "--out", str(out), *TINY, *FAST])
    _one_line_error(r, *words)
    assert not out.exists()


def test_train_refuses_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "stuff"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    r = runner.invoke(
        app, ["train", "--model", "mresnet18_tiny", "--data", "shapes", "--out", str(out), *TINY, *FAST]
    )
    _one_line_error(r, "not an rlip run")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"] and (
        out / "thesis.tex"
    ).read_text() == "precious"


SPEC = """
name = "cli"
[data]
name = "shapes"
n_train = 16
n_test = 4
image_size = 16
[sweep]
models = ["mresnet18_tiny"]
lams = [0.5]
[train]
epochs = 1
batch_size = 16
lr = 1e-3
sigma_points = 2
sigma_iters = 2
sigma_final_iters = 2
device = "cpu"
"""


def test_zoo_train_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robustbench_lip.cli.common import console

    monkeypatch.setattr(console, "width", 250)  # the table is wide; the test terminal is 80 columns
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    runs = tmp_path / "runs"
    r = runner.invoke(app, ["zoo", "train", str(spec), "--runs-dir", str(runs)])
    assert r.exit_code == 0, r.output
    assert "cli-mresnet18_tiny-lam0.5-s0" in r.stdout and "finished" in r.stdout
    r = runner.invoke(app, ["zoo", "list", "--runs-dir", str(runs)])
    assert r.exit_code == 0 and "finished" in r.stdout and "lam0.5" in r.stdout
    r = runner.invoke(app, ["zoo", "train", str(spec), "--runs-dir", str(runs)])
    assert r.exit_code == 0 and "skipped" in r.stdout
    r = runner.invoke(app, ["zoo", "list", "--runs-dir", str(tmp_path / "none")])
    assert r.exit_code == 0 and "no runs" in r.stdout


def test_zoo_bad_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("lams = [0.5]\n", ""))
    _one_line_error(
        runner.invoke(app, ["zoo", "train", str(spec), "--runs-dir", str(tmp_path / "r")]), "sweep.lams"
    )
    spec.write_text(SPEC.replace("[train]", "[train"))
    _one_line_error(
        runner.invoke(app, ["zoo", "train", str(spec), "--runs-dir", str(tmp_path / "r")]), "malformed"
    )
    _one_line_error(runner.invoke(app, ["zoo", "train", str(tmp_path / "missing.toml")]), "not found")
    spec.write_text(SPEC)
    # a machine without Slurm (make test-slurm installs a real one, so hide it here)
    monkeypatch.setattr("robustbench_lip.sweep.shutil.which", lambda _name: None)
    r = runner.invoke(
        app, ["zoo", "train", str(spec), "--executor", "slurm", "--runs-dir", str(tmp_path / "r")]
    )
    _one_line_error(r, "sbatch")
    assert not (tmp_path / "r").exists()


def _built_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]):
    """The TrainConfig `rlip train ARGS` hands to training.train (captured; nothing is trained)."""
    import robustbench_lip.training as training
    from robustbench_lip.errors import RlipError

    seen = []

    def fake_train(cfg, out, progress=None):
        seen.append((cfg, out))
        raise RlipError("captured")

    monkeypatch.setattr(training, "train", fake_train)
    r = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "run")])
    _one_line_error(r, "captured")
    assert len(seen) == 1 and seen[0][1] == tmp_path / "run"
    return seen[0][0]


def test_train_options_default_to_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from robustbench_lip.config import TrainConfig

    cfg = _built_config(monkeypatch, tmp_path, ["--model", "m7", "--data", "d3"])
    assert cfg == TrainConfig(model="m7", data="d3")


def test_train_options_build_the_flat_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every flag lands in the TrainConfig field of its flat name (TrainConfig.from_dict's reading)."""
    from robustbench_lip.config import TrainConfig

    flat = {
        "model": "m7", "data": "d3", "root": "/r", "epochs": 3, "batch_size": 7, "dice": True,
        "logit_scale": 2.5, "augment": False, "noise_sigma": 0.3, "seed": 9, "device": "cpu",
        "sigma_points": 5, "loss": "hkr", "loss_margin": 0.7, "loss_alpha": 0.25, "lam": 0.4,
        "reg_target": "A", "reg_eps": 0.1, "reg_iters": 3, "reg_points": "interp", "reg_reduce": "mean",
        "reg_subbatch": 0, "reg_every": 2, "reg_warm": True, "reg_bn": "running", "reg_hard": 1,
        "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.0, "schedule": "constant", "warmup": 0.2,
    }  # fmt: skip
    args = []
    for k, v in flat.items():
        name = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            args.append(name if v else f"--no-{name[2:]}")
        else:
            args += [name, str(v)]
    args += ["--data-opt", "n_train=11", "--data-opt", "colour=red", "--n-test", "6"]
    cfg = _built_config(monkeypatch, tmp_path, [*args, "--model-opt", "width=8"])
    options = {"data_options": {"n_train": 11, "colour": "red", "n_test": 6}, "model_options": {"width": 8}}
    assert cfg == TrainConfig.from_dict({**flat, **options})
    assert cfg.penalty.subbatch == 0 and cfg.optim.name == "adamw"
    assert cfg.loss_options() == {"margin": 0.7, "alpha": 0.25}


def test_zoo_slurm_options_reach_the_sweep(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--slurm-* flags build SlurmOptions (its defaults for the flags not given)."""
    import robustbench_lip.sweep as sweep
    from robustbench_lip.config import SlurmOptions
    from robustbench_lip.errors import RlipError

    seen = []

    def fake_run_sweep(spec, runs_dir, executor, **kw):
        seen.append((executor, kw))
        raise RlipError("captured")

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    args = ["zoo", "train", str(spec), "--executor", "slurm", "--slurm-time", "17", "--slurm-partition", "p2"]
    _one_line_error(runner.invoke(app, [*args, "--parallel", "3"]), "captured")
    assert seen == [("slurm", {"slurm": SlurmOptions(partition="p2", time_min=17), "parallel": 3})]
    assert SlurmOptions().gpus == 1 and seen[0][1]["slurm"].cpus == SlurmOptions().cpus
