"""certify reports its progress step by step through a callback; the CLI shows it as a rich bar."""

from __future__ import annotations

import io

import torch
from rich.console import Console
from torch import nn

from robustbench_lip.cli.progress import step_progress
from robustbench_lip.evaluations.lipschitz.certificate import FORWARD_BATCH, certify


def _calls(**kw) -> list[tuple[str, int, int]]:
    calls: list[tuple[str, int, int]] = []
    certify(progress=lambda what, done, total: calls.append((what, done, total)), steps=1, iters=3, **kw)
    return calls


def _check_counts(calls: list[tuple[str, int, int]]) -> None:
    """done never decreases, counts each step once, and ends at the total."""
    dones = [d for _, d, _ in calls]
    assert dones == sorted(dones) and dones == list(range(len(calls)))
    assert calls[-1][0] == "done" and calls[-1][1] == calls[-1][2] == len(calls) - 1


def test_classifier_one_step_per_forward_batch_then_each_stage() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).eval()
    n = 2 * FORWARD_BATCH + 5
    calls = _calls(model=net, images=torch.rand(n, 1, 5, 5), labels=torch.randint(0, 3, (n,)))
    whats = [w for w, _, _ in calls]
    assert whats[:3] == [f"forward pass, images {a}–{b}" for a, b in ((1, 64), (65, 128), (129, 133))]
    assert [w.split(" (")[0] for w in whats[3:]] == [
        "certified upper bound", "lower bounds of A", "certified robustness", "done"
    ]  # fmt: skip
    _check_counts(calls)  # target "both" on a classifier: R's two steps dropped from the total


def test_image_to_image_includes_reflection_and_fne_steps() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 3, padding=1)).eval()
    calls = _calls(model=net, input_shape=(1, 6, 6), n_random=4)
    whats = [w.split(" (")[0] for w, _, _ in calls]
    assert whats == [
        "forward pass, images 1–4", "certified upper bound", "lower bounds of A",
        "lower bounds of R = 2A − I", "firm non-expansiveness test", "certified robustness", "done",
    ]  # fmt: skip
    _check_counts(calls)


def test_cli_bar_shows_the_step_and_the_count() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with step_progress("certifying run", console=console) as update:
        update("lower bounds of A", 3, 7)
    out = buf.getvalue()
    assert "certifying run" in out and "lower bounds of A" in out and "3/7" in out
