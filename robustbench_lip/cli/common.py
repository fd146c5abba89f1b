"""Shared CLI plumbing: consoles, the error wrapper, shared option parsers."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.logging import RichHandler

from robustbench_lip.errors import RlipError

#: Width of the stdout console when it is not a terminal (a pipe, a log file) and COLUMNS is not
#: set: wide enough that no table is ever squeezed or cut (rich would otherwise use 80).
PIPED_WIDTH = 10_000


class _Console(Console):
    """A rich Console that is PIPED_WIDTH wide when it does not write to a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        dims = super().size
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS"):
            return ConsoleDimensions(PIPED_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console()
err_console = Console(stderr=True)  # logs and progress: rich's own width (80 when piped)

F = TypeVar("F", bound=Callable[..., Any])

#: `--arch` of certify, attack and models export: the architecture of a bare state_dict.
Arch = Annotated[
    str | None,
    typer.Option(
        "--arch",
        help="Architecture of a bare state_dict (.pt/.pth/.safetensors): a registered name or "
        "torchvision:NAME (e.g. torchvision:resnet18; classes read from the file).",
    ),
]


def fail(message: str) -> typer.Exit:
    """Print a one-line red error to stderr and return the exit to raise (code 1)."""
    err_console.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def handle_errors(fn: F) -> F:
    """Turn RlipError (and an interrupted run) into a one-line message and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RlipError as e:
            raise fail(str(e)) from None
        except KeyboardInterrupt as e:
            raise fail(interrupted_text(e)) from None

    return wrapper  # type: ignore[return-value]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (SIGINT) so that the same clean-up runs."""


def interrupted_text(e: BaseException) -> str:
    """The message of an interruption: interrupted, or interrupted (SIGTERM)."""
    return "interrupted (SIGTERM)" if isinstance(e, Terminated) else "interrupted"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread; the
    previous handler is restored afterwards. Outside the main thread: no change."""

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        old = signal.signal(signal.SIGTERM, _raise)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def setup_logging(verbose: bool = False) -> None:
    """Route the library's `logging` output through rich on stderr."""
    logger = logging.getLogger("robustbench_lip")
    logger.handlers.clear()
    handler = RichHandler(console=err_console, show_time=False, show_path=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def live_help(option: str, text: Callable[[], str]) -> type:
    """A Typer command class whose `option`'s help is `text()` at the moment the help is shown, so it
    names what a registry holds then (also entries registered after the CLI module was imported)."""
    from typer.core import TyperCommand

    class LiveHelpCommand(TyperCommand):
        def get_params(self, ctx: Any) -> list[Any]:
            params = super().get_params(ctx)
            for p in params:
                if p.name == option:
                    p.help = text()
            return params

    return LiveHelpCommand
