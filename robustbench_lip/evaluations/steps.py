"""Progress of a certification, step by step, for an optional callback (the library never prints).

`ProgressFn(what, done, total)`: called when a step starts (`what` names it, `done` steps are
finished out of `total`) and once at the end with what = "done" and done == total. The steps of
`certify`: one per forward batch of the data, the upper bound, the lower bounds of A, those of R
and the FNE test (when R is certified), the certified robustness. `total` may change once, when
the forward pass shows whether R is defined.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]


class Steps:
    """Counts steps and reports them to a ProgressFn (no-op without one)."""

    def __init__(self, fn: ProgressFn | None, total: int) -> None:
        self.fn, self.total, self.done = fn, total, 0

    def start(self, what: str) -> None:
        """Step `what` begins (the previous one, if any, is finished)."""
        if self.fn is not None:
            self.fn(what, self.done, self.total)

    def finish(self) -> None:
        """The current step is finished."""
        self.done += 1

    def drop(self, n: int) -> None:
        """`n` planned steps will not run."""
        self.total -= n

    def end(self) -> None:
        """Everything is finished."""
        self.done = self.total
        if self.fn is not None:
            self.fn("done", self.done, self.total)
