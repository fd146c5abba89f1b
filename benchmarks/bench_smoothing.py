"""Randomized-smoothing benchmark: cost of the Monte Carlo certificate over the model's forwards.

Prints ONE JSON object. For each model (mresnet18_w8 on 3×32×32 `shapes`-sized inputs, classification
CERTIFY; unet_i2i on 1×32×32 `lesions`-sized inputs, SegCertify with Holm):
- ratio: time of one image's certificate (n0 selection + n estimation samples, noise, voting,
  statistics) / time of n plain forwards of the model at the same batch size (no noise), median of
  several interleaved runs (goal ≤ 1.1). The n0 selection samples alone add n0/n to the ideal ratio
  of 1: `ratio_per_forward` divides by (n0 + n)/n, the overhead per forward pass.
- seconds: median seconds of the certificate and of the n forwards.
Weights are random (the cost does not depend on them). torch threads as configured by the environment.

Run: .venv/bin/python benchmarks/bench_smoothing.py [--quick] [--n 2400] [--batch-size 250]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from robustbench_lip.evaluations.smoothing.classification import smoothed_certify
from robustbench_lip.evaluations.smoothing.segmentation import smoothed_segment_certify
from robustbench_lip.models import create_model


def _median_ratio(fa: Callable[[], Any], fb: Callable[[], Any], repeats: int) -> tuple[float, float, float]:
    """(median time of fa / median time of fb, median a, median b); after a warm-up the two run
    interleaved, alternating which goes first."""
    fa(), fb()
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for k in order:
            t0 = time.perf_counter()
            (fa, fb)[k]()
            times[k].append(time.perf_counter() - t0)
    ma, mb = statistics.median(times[0]), statistics.median(times[1])
    return ma / mb, ma, mb


def _forwards(model: torch.nn.Module, shape: tuple[int, ...], n: int, batch: int) -> Callable[[], None]:
    x = torch.rand(batch, *shape)

    def run() -> None:
        with torch.no_grad():
            for s in range(0, n, batch):
                model(x[: min(batch, n - s)])

    return run


def _measure(
    name: str, certify: Callable[..., Any], n0: int, n: int, batch: int, repeats: int
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = create_model(name).eval()
    shape = tuple(model.config.input_size)
    image = torch.rand(*shape)

    def cert() -> None:
        certify(model, image, sigma=0.25, n0=n0, n=n, batch_size=batch, seed=0)

    ratio, a, b = _median_ratio(cert, _forwards(model, shape, n, batch), repeats)
    return {
        "input": list(shape),
        "n0": n0,
        "n": n,
        "batch_size": batch,
        "ratio": round(ratio, 4),
        "ratio_per_forward": round(ratio * n / (n0 + n), 4),
        "seconds": {"certify": round(a, 4), "n_forwards": round(b, 4)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    ap.add_argument("--n", type=int, default=None, help="estimation samples (default 2400, quick 400)")
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=None, help="default 5, quick 3")
    args = ap.parse_args()
    n = args.n or (400 if args.quick else 2400)
    repeats = args.repeats or (3 if args.quick else 5)
    res: dict[str, Any] = {"quick": args.quick, "torch_threads": torch.get_num_threads(), "goal": 1.1}
    res["mresnet18_w8_certify"] = _measure(
        "mresnet18_w8", smoothed_certify, args.n0, n, args.batch_size, repeats
    )
    res["unet_i2i_segcertify"] = _measure(
        "unet_i2i", smoothed_segment_certify, args.n0, n, args.batch_size, repeats
    )
    print(json.dumps(res))


if __name__ == "__main__":
    main()
