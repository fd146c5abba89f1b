"""SIGTERM during `rlip train` is handled like Ctrl-C: one line, non-zero exit, train.json says
"interrupted"; the rerun resumes to the weights (and fingerprint) of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from tests.helpers.paths import REPO as ROOT

TRAIN = ["train", "--model", "mresnet18_tiny", "--data", "shapes", "--epochs", "3", "--batch-size", "16",
         "--n-train", "32", "--n-test", "8", "--image-size", "16", "--device", "cpu", "--sigma-points", "2",
         "--reg-subbatch", "2", "--lam", "0.05", "--optimizer", "adamw"]  # fmt: skip


def _train_in_process(out: Path) -> None:
    r = CliRunner().invoke(app, [*TRAIN, "--out", str(out)])
    assert r.exit_code == 0, r.output


def test_sigterm_interrupts_and_the_rerun_resumes_bit_identically(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # the subprocess trains epoch 1 with the thread count of the in-process runs it is compared with
    # (CPU kernels are bit-reproducible only at a fixed thread count)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "robustbench_lip", *TRAIN, "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    ckpt = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its first checkpoint could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "interrupted (SIGTERM)" in errors[0], err
    rec = json.loads((run / "results" / "train.json").read_text())
    assert rec["status"] == "interrupted" and 1 <= len(rec["history"]) < 3
    assert not (run / "model.safetensors").exists()

    _train_in_process(run)  # resumes
    rec = json.loads((run / "results" / "train.json").read_text())
    assert rec["status"] == "finished" and [h["epoch"] for h in rec["history"]] == [1, 2, 3]
    full = tmp_path / "full"
    _train_in_process(full)
    a, b = load_file(run / "model.safetensors"), load_file(full / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sha = [json.loads((d / "config.json").read_text())["weights_sha256"] for d in (run, full)]
    assert sha[0] == sha[1]


def test_zoo_train_turns_sigterm_into_an_interruption(tmp_path: Path, monkeypatch) -> None:
    """Local `rlip zoo train`: SIGTERM inside the sweep → one line, exit 1; the handler is restored."""
    import robustbench_lip.sweep as sweep_mod

    def fake_sweep(*args, **kwargs):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN):  # would kill pytest
            raise AssertionError("rlip zoo train installs no SIGTERM handler")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM was not turned into an interruption")

    monkeypatch.setattr(sweep_mod, "run_sweep", fake_sweep)
    before = signal.getsignal(signal.SIGTERM)
    r = CliRunner().invoke(
        app, ["zoo", "train", str(ROOT / "zoo" / "shapes_cpu.toml"), "--runs-dir", str(tmp_path)]
    )
    assert r.exit_code == 1 and "interrupted (SIGTERM)" in r.output, r.output
    assert signal.getsignal(signal.SIGTERM) == before
