"""Rich progress bars on stderr for the library's step callbacks (evaluations.steps.ProgressFn)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from robustbench_lip.cli.common import err_console


@contextlib.contextmanager
def step_progress(label: str, console: Console | None = None) -> Iterator[Callable[[str, int, int], None]]:
    """A transient bar `label [███  ] done/total elapsed what`; yields the callback
    `(what, done, total)` that moves it."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[what]}"),
        console=console or err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None, what="")

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, what=what)

        yield update
