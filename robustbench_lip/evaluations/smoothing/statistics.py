"""Statistics of randomized-smoothing certificates (exact binomial tests, no normal approximations).

- `cp_lower(k, n, alpha)`: one-sided Clopper–Pearson lower confidence bound at level 1 − alpha on a
  binomial proportion from k successes in n trials: beta.ppf(alpha, k, n − k + 1), 0 for k = 0
  (Cohen et al. 2019 compute the same bound as the lower end of a two-sided 1 − 2·alpha interval).
- `pvalue_above(k, n, tau)`: exact one-sided p-value of H0: p ≤ tau against H1: p > tau,
  P(Bin(n, tau) ≥ k). Dual to `cp_lower`: cp_lower(k, n, a) > tau ⇔ pvalue_above(k, n, tau) < a.
- `pvalue_two_sided(k, n)`: two-sided exact binomial test of p = 1/2 (Cohen's PREDICT).
- `holm(p, alpha)`, `bonferroni(p, alpha)`: which hypotheses to reject with family-wise error ≤ alpha;
  Holm rejects every hypothesis Bonferroni rejects (and sometimes more).
- `radius(p_lower, sigma)`: σ·Φ⁻¹(p_lower), the ℓ2 radius certified by a lower bound p_lower > 1/2 on
  the top class's probability (with p_B ≤ 1 − p_A).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from robustbench_lip.errors import RlipError

CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni")


def check_alpha(alpha: float) -> float:
    """alpha must lie in (0, 1)."""
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise RlipError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    return a


def check_correction(correction: str) -> str:
    """One of CORRECTIONS."""
    if correction not in CORRECTIONS:
        raise RlipError(
            f"unknown multiple-testing correction {correction!r}; expected {' or '.join(CORRECTIONS)}"
        )
    return correction


def cp_lower(k: np.ndarray | int, n: int, alpha: float) -> np.ndarray:
    """Clopper–Pearson lower bound at level 1 − alpha: k successes (array or int) of n trials → float64."""
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        low = stats.beta.ppf(alpha, np.maximum(k, 1.0), n - k + 1.0)
    return np.where(k > 0, low, 0.0)


def pvalue_above(k: np.ndarray | int, n: int, tau: float) -> np.ndarray:
    """P(Bin(n, tau) ≥ k) (float64): p-value of H0 p ≤ tau; 1 for k = 0."""
    k = np.asarray(k, dtype=np.float64)
    return np.asarray(stats.binom.sf(k - 1.0, n, tau), dtype=np.float64)


def pvalue_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial test of p = 1/2 for k successes of n (1 when n = 0)."""
    if n <= 0:
        return 1.0
    return float(stats.binomtest(int(k), int(n), 0.5, alternative="two-sided").pvalue)


def bonferroni(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Reject where p ≤ alpha / m (m = number of hypotheses): bool array of p's shape."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    return p <= alpha / max(m, 1)


def holm(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's step-down procedure: sort p ascending, reject p_(j) while p_(j) ≤ alpha / (m − j)
    (j = 0, 1, ... ), stop at the first failure. Bool array of p's shape."""
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.reshape(-1)
    m = flat.size
    order = np.argsort(flat, kind="stable")
    ok = flat[order] <= alpha / (m - np.arange(m))
    n_reject = m if bool(ok.all()) else int(np.argmin(ok))
    reject = np.zeros(m, dtype=bool)
    reject[order[:n_reject]] = True
    return reject.reshape(p.shape)


def fwer_reject(pvalues: np.ndarray, alpha: float, correction: str) -> np.ndarray:
    """Rejections under `correction` ("holm" or "bonferroni")."""
    if check_correction(correction) == "holm":
        return holm(pvalues, alpha)
    return bonferroni(pvalues, alpha)


def radius(p_lower: np.ndarray | float, sigma: float) -> np.ndarray:
    """σ·Φ⁻¹(p_lower) (float64); meaningful only where p_lower > 1/2."""
    return sigma * stats.norm.ppf(np.asarray(p_lower, dtype=np.float64))


def tau_for_radius(r: float, sigma: float) -> float:
    """The probability threshold Φ(r/σ) whose exceedance certifies radius r."""
    return float(stats.norm.cdf(float(r) / float(sigma)))
