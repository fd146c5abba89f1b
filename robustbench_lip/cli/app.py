"""The Typer application behind `rlip` and `python -m robustbench_lip`."""

from __future__ import annotations

from typing import Annotated

import typer

from robustbench_lip import __version__
from robustbench_lip.cli import attack, certify, data, leaderboard, models, train, zoo
from robustbench_lip.cli.common import console, fail, setup_logging
from robustbench_lip.errors import RlipError

app = typer.Typer(
    name="rlip",
    help="robustbench-lip: train, certify and attack Lipschitz-regularised image models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"rlip {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    setup_logging(verbose)


for _module in (data, models, train, zoo, certify, attack, leaderboard):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except RlipError as e:  # errors raised outside a command body (e.g. in a parser)
        raise SystemExit(fail(str(e)).exit_code) from None
