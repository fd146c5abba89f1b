"""CLI start-up benchmark: how fast `rlip --help` and an argument error answer.

Prints ONE JSON object: for each command line, the median wall time (s) of `python -m robustbench_lip
ARGS` over --runs runs (fresh interpreter each; subprocess start included), the individual times,
the exit codes, and whether the median meets the goal (≤ 1.0 s). Neither answer should import torch
(tests/cli/test_cli_startup.py checks that); what is left is Python, Typer and rich.

Run: .venv/bin/python benchmarks/bench_cli.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 1.0
CASES = {"help": ["--help"], "bad_eps": ["attack", "X", "--eps", "8"]}


def time_once(args: list[str]) -> tuple[float, int]:
    """Wall time (s) and exit code of one `python -m robustbench_lip ARGS`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "robustbench_lip", *args], env=env, cwd=ROOT, capture_output=True, check=False
    )
    return time.perf_counter() - t0, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    time_once(["--help"])  # warm the file cache (and .pyc files) once, not timed
    out: dict[str, object] = {"goal_s": GOAL_S, "runs": opts.runs}
    for name, args in CASES.items():
        runs = [time_once(args) for _ in range(opts.runs)]
        med = statistics.median(t for t, _ in runs)
        out[name] = {
            "command": "rlip " + " ".join(args),
            "median_s": round(med, 3),
            "times_s": [round(t, 3) for t, _ in runs],
            "exit_codes": sorted({c for _, c in runs}),
            "met": med <= GOAL_S,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
