"""`SmoothingSettings`: the randomized-smoothing certificate's settings and defaults, defined once
(torch-free: the CLI makes its options from them before torch is imported).

The batch size is 250 at every layer (the run, the dataset summary, CERTIFY / PREDICT and
SegCertify): it is the value `rlip certify --smoothing` has always used and recorded
(`smoothing.batch_size`), so the records stay identical; the lower layers used to default to 1000
and 256. Results do not depend on it beyond floating-point effects of batch composition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.evaluations.base import Inputs, setting


@dataclass(frozen=True)
class SmoothingSettings:
    """What one smoothed certificate computes, per noise level σ (the data: `base.Inputs`).

    smoothing_n / smoothing_n0: Monte Carlo estimation / selection samples per image (Cohen et al.'s
    n and n0); alpha: each statement fails with probability ≤ alpha; correction: the multiple-testing
    correction of the per-pixel tests; batch_size: noisy inputs per forward."""

    KIND = "certify"
    FLAT_RENAMES: ClassVar[dict[str, str]] = {"alpha": "smoothing_alpha"}  # the CLI flag --smoothing-alpha

    smoothing_n: int = setting(1000, "Monte Carlo samples per image (smoothing).", min=1)
    smoothing_n0: int = setting(100, "Selection samples per image (smoothing).", min=1)
    alpha: float = setting(0.001, "Failure probability α of each smoothed certificate.")
    correction: str = "holm"
    batch_size: int = 250

    def record(
        self, inputs: Inputs, data: str | None, sigma: float, shape: tuple[int, ...]
    ) -> dict[str, Any]:
        """The record settings of one σ (their key names the file; `certificate` first, so the key
        never equals a Lipschitz certificate's); `other_data` only when true."""
        from robustbench_lip.evaluations.smoothing.sampling import check_positive_int, check_sigma
        from robustbench_lip.evaluations.smoothing.statistics import check_alpha
        from robustbench_lip.records.schema import CertificateKind

        s = {
            "certificate": CertificateKind.SMOOTHED.value,
            "data": data,
            "n": int(inputs.n),
            "sigma": float(check_sigma(sigma)),
            "smoothing_n": check_positive_int("--smoothing-n", self.smoothing_n),
            "smoothing_n0": check_positive_int("--smoothing-n0", self.smoothing_n0),
            "alpha": check_alpha(self.alpha),
            "correction": self.correction,
            "seed": int(inputs.seed),
            "input_shape": [int(s) for s in shape],
        }
        return {**s, "other_data": True} if inputs.other_data else s


SMOOTHING = SmoothingSettings()
"""The defaults, for library functions that take one setting as a keyword (alpha, batch_size)."""

__all__ = ["SMOOTHING", "SmoothingSettings"]
