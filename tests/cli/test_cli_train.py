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
