"""`make test-slurm`, part 2: `rlip zoo train --executor slurm` against the running cluster.

Run by tests/engines/slurm.sh after slurm_cluster.sh has started a single-node cluster. Checks:
1. a 2-run sweep submitted with --executor slurm finishes (both runs "finished", with a model);
2. resubmitting the same sweep submits nothing (finished runs are skipped);
3. a run cancelled mid-way with scancel (after its first epoch checkpoint) is not "finished"; the
   resubmitted job resumes it, and its final weights equal, tensor for tensor, those of the same
   run trained without interruption by the local executor.
Exit 0 on success, 1 with "FAIL: ..." otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SLURM_OPTS = ["--executor", "slurm", "--slurm-gpus", "0", "--slurm-cpus", "1", "--slurm-time", "20"]


class CheckFailed(Exception):
    pass


def spec(name: str, lams: str, epochs: int, n_train: int) -> str:
    return textwrap.dedent(
        f"""
        name = "{name}"
        [data]
        name = "shapes"
        n_train = {n_train}
        n_test = 64
        image_size = 16
        seed = 0
        [sweep]
        models = ["mresnet18_tiny"]
        lams = [{lams}]
        seeds = [0]
        [train]
        epochs = {epochs}
        batch_size = 64
        optimizer = "adamw"
        lr = 3e-3
        reg_target = "A"
        """
    )


def rlip(*args: str, cwd: Path) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "robustbench_lip", *args], cwd=cwd, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise CheckFailed(f"rlip {' '.join(args[:2])} failed: {(res.stderr or res.stdout).strip()[-400:]}")
    return res.stdout + res.stderr


def job_ids(output: str) -> list[str]:
    for line in output.splitlines():
        if "submitted slurm jobs:" in line:
            part = line.split("submitted slurm jobs:", 1)[1].split(";")[0]
            return [j.strip() for j in part.split(",") if j.strip()]
    return []


def submit(work: Path, toml: str, runs: Path, expect: int, what: str) -> list[str]:
    """`rlip zoo train TOML --executor slurm` into `runs`; the submitted job ids, which must be `expect`."""
    out = rlip("zoo", "train", toml, "--runs-dir", str(runs), *SLURM_OPTS, cwd=work)
    ids = job_ids(out)
    if len(ids) != expect:
        tail = out.strip()[-300:]
        raise CheckFailed(f"{what}: expected {expect} submitted job(s), got {ids!r} from: {tail}")
    return ids


def queued(ids: list[str]) -> list[str]:
    if not ids:
        return []
    res = subprocess.run(
        ["squeue", "-h", "-o", "%i %T", "-j", ",".join(ids)], capture_output=True, text=True
    )
    return [ln for ln in res.stdout.splitlines() if ln.strip()]


def wait_done(ids: list[str], timeout_s: float = 600) -> None:
    t0 = time.monotonic()
    while queued(ids):
        if time.monotonic() - t0 > timeout_s:
            raise CheckFailed(f"slurm jobs {ids} still queued/running after {timeout_s:.0f} s")
        time.sleep(2)


def train_record(run: Path) -> dict:
    try:
        return json.loads((run / "results" / "train.json").read_text())
    except (OSError, ValueError):
        return {}


def tensors(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def check_sweep(work: Path) -> None:
    (work / "two.toml").write_text(spec("slurm2", "0, 1e-2", epochs=1, n_train=256))
    runs = work / "runs"
    ids = submit(work, "two.toml", runs, 2, "a 2-run sweep")
    wait_done(ids)
    done = sorted(p.name for p in runs.iterdir() if train_record(p).get("status") == "finished")
    if len(done) != 2 or not all((runs / d / "model.safetensors").is_file() for d in done):
        raise CheckFailed(f"after the jobs ended, finished runs: {done}; see {runs}/.submitit")
    print(f"sweep of 2 runs finished on slurm (jobs {', '.join(ids)})")
    submit(work, "two.toml", runs, 0, "resubmitting a finished sweep")
    print("resubmission skipped the finished runs")


def check_cancel_resume(work: Path) -> None:
    (work / "long.toml").write_text(spec("slurmlong", "1e-2", epochs=6, n_train=2048))
    runs = work / "runs_long"
    ids = submit(work, "long.toml", runs, 1, "the long run")
    run = runs / "slurmlong-mresnet18_tiny-lam0.01-s0"
    t0 = time.monotonic()
    while len(train_record(run).get("history") or []) < 1:
        if not queued(ids) or time.monotonic() - t0 > 300:
            raise CheckFailed("the long run ended or stalled before its first epoch checkpoint")
        time.sleep(0.5)
    subprocess.run(["scancel", *ids], check=True)
    wait_done(ids, 120)
    rec = train_record(run)
    epochs_done = len(rec.get("history") or [])
    if rec.get("status") == "finished" or epochs_done >= 6:
        raise CheckFailed(f"scancel came too late (status {rec.get('status')}, {epochs_done} epochs)")
    print(f"scancel'd after {epochs_done} epoch(s): status {rec.get('status')!r}")
    ids = submit(work, "long.toml", runs, 1, "resubmitting the cancelled run")
    wait_done(ids)
    if train_record(run).get("status") != "finished":
        raise CheckFailed(f"the resubmitted run did not finish: {train_record(run).get('status')}")
    ref = work / "runs_ref"
    rlip("zoo", "train", "long.toml", "--runs-dir", str(ref), "--executor", "local", cwd=work)
    a, b = tensors(run), tensors(ref / run.name)
    if a.keys() != b.keys() or any(not a[k].equal(b[k]) for k in a):
        raise CheckFailed("the resumed run's weights differ from an uninterrupted local run's")
    print(f"resumed run finished; its {len(a)} tensors equal an uninterrupted local run's")


def main() -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="rlip-slurm-") as tmp:
            work = Path(tmp)
            check_sweep(work)
            check_cancel_resume(work)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("slurm checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
