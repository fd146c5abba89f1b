"""Witnessed lower bounds of a map's Lipschitz constant, and the firm non-expansiveness (FNE) test.

Every reported lower value is a quotient ‖g(x) − g(y)‖ / ‖x − y‖ of two evaluations of the map
g (g = f for target "A", g(z) = 2 f(z) − z for "reflection") at a recorded pair x, y in [0, 1]^d;
it is therefore ≤ the true constant of g on [0, 1]^d. Autograd search only PROPOSES pairs:

- power_iteration: σ_max(J(x_i)) with right singular vector v_i (double backward, or
  finite-difference JVPs when an op has no double backward) proposes (x_c − δv/2, x_c + δv/2),
  x_c = x_i moved inward just enough that the pair lies in [0, 1]^d, δ = h·s_i, s_i =
  max(‖x_i‖, 0.01·√d), for h in STEP_SIZES (all points at h = 1e-2, the top_k points at every h);
- jacobian_ascent: hill climbing on σ_max(J(x)) from the top_k points, same pairs;
- pairwise: Adam on the quotient from the top_k points, its best pair per start;
- random_directions, data_pairs: gradient-free fallbacks (random unit directions; pairs of points).

Candidates are re-evaluated in float64 (a float64 deep copy of the model) when the model allows,
otherwise in the model's own dtype, minus a rounding allowance scaled by the largest value the
evaluation computes (see `ALLOWANCE_ULPS`): a pair whose outputs differ by less than their own
rounding error witnesses nothing. `budget_s` bounds the wall time of a search: once spent, the
proposers stop and the best witness so far is returned (the pairs of data points always run). The
caller's model (parameters, buffers, train flags), inputs and global RNG state are not changed:
the search and the evaluation run on deep copies, inside `preserved_rng`.

Modules: results (the records), maps (the protected search / float64 maps, allowance), witness
(quotients of pairs), proposers (autograd pair proposals), search (`lower_bounds`), fne (the FNE test).

May import: lipschitz.jvp, lipschitz.spectral, device, errors; never bounds, training, evaluations,
report or cli.
"""

from robustbench_lip.lipschitz.lower.fne import fne_search, fne_test
from robustbench_lip.lipschitz.lower.maps import ALLOWANCE_ULPS
from robustbench_lip.lipschitz.lower.results import FNEResult, FNEWitness, LowerBound, Witness
from robustbench_lip.lipschitz.lower.search import PROPOSERS, STEP_SIZES, lower_bounds

__all__ = [
    "ALLOWANCE_ULPS",
    "PROPOSERS",
    "STEP_SIZES",
    "FNEResult",
    "FNEWitness",
    "LowerBound",
    "Witness",
    "fne_search",
    "fne_test",
    "lower_bounds",
]
