"""The evaluation protocol shared by every kind (Lipschitz certificate, smoothing, attacks).

- **Settings.** A frozen dataclass per kind holds its defaults once; each field is declared with
  `setting(default, help, ...)`. Field names are the record's settings keys; the CLI flag is
  `--<flat name>` with `config.flat`'s rule (FLAT_PREFIX / FLAT_RENAMES, as for TrainConfig), so a
  historical flag (`--smoothing-alpha` for `alpha`) is one rename. `@with_settings` makes a
  Typer command's options from the dataclasses: the command takes one parameter per class (named as
  in its signature, annotated with the class) and receives the instances; the options stand where
  that parameter stands, and `Before(name)` on one of the command's own options lists it before a
  generated one (a historical --help order).
- **Context.** `Context.open(path)` reads the model's config.json once (`meta`); the model and the
  data are loaded from it (`load_model`, `test_set`), never re-read.
- **One path.** `evaluate(model_path, compute, write)`: the Context → `compute(ctx)` (each kind's
  `run` module: load through the Context, compute, build the record with the settings its Settings
  class derives — `record(inputs, ...)`, the one derivation, used for the plan and for the record)
  → `record(ctx, rec, write)`, the one writer (`RUN/results/<kind>-<key>.json` for a run folder;
  with `beside_file`, attacks, also beside a model file). `pending(runs_dir, kind, plan)` is the
  one "already recorded" rule (records.is_recorded on the
  settings planned from config.json alone). `split_options` turns keyword options into the
  Settings instances (library callers).

Torch-free at import (the CLI builds its options before torch is imported). May import: config,
records (lazily), modelio (lazily), data (lazily), errors, choices.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from robustbench_lip.config.fields import described
from robustbench_lip.config.flat import flat_names
from robustbench_lip.errors import RlipError

T = TypeVar("T")


def setting(
    default: Any,
    help: str,
    *,
    cli: Any = None,
    parse: Callable[[Any], Any] | None = None,
    show: Any = None,
    **limits: Any,
) -> Any:
    """A Settings field: its default, its help text and, when the CLI type differs from the field's
    (a text list `--eps 8/255,16/255` for a tuple of floats), `cli` (the option's type), `parse`
    (text → value) and `show` (the default as the option shows it). limits: Typer's (min, max)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default (tuple) for a setting")
    return described(default, help, cli=cli, parse=parse, show=show, **limits)


def flag(cls: type, name: str) -> str:
    """The CLI flag of field `name` of a Settings class (`--` + its flat name, dashes)."""
    return "--" + flat_names(cls)[name].replace("_", "-")


def _option(cls: type, f: dataclasses.Field) -> inspect.Parameter:
    import typer

    m = f.metadata
    typ = m["cli"] if m["cli"] is not None else typing.get_type_hints(cls)[f.name]
    default = m["show"] if m["show"] is not None else f.default
    if default is dataclasses.MISSING:
        default = inspect.Parameter.empty  # a required field (config.fields.described): a required option
    decls = m.get("decls") or (flag(cls, f.name),)  # config.fields.described may declare its own
    opt = typer.Option(*decls, help=m["help"], **m["limits"])
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[typ, opt]
    )


def _build(cls: type[T], values: dict[str, Any]) -> T:
    kw = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            v = values[f.name]
            parse = f.metadata.get("parse")
            kw[f.name] = parse(v) if parse is not None and isinstance(v, str) else v
    return cls(**kw)


def with_settings(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Typer command whose parameters annotated with a Settings class (a dataclass built
    with `setting` fields) are filled from generated options, one per field, listed where the
    parameter stands in the signature (the parameters after it become keyword-only)."""
    sig = inspect.signature(command, eval_str=True)
    groups = {p.name: p.annotation for p in sig.parameters.values() if _is_settings(p.annotation)}
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        if p.name in groups:
            cls = groups[p.name]
            params += [_option(cls, f) for f in _optioned(cls)]
        elif groups and len(params) > 0 and params[-1].kind is inspect.Parameter.KEYWORD_ONLY:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        else:
            params.append(p)
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise TypeError(f"{command.__name__}: a setting's name is also another option's")
    for p in [p for p in params if _before(p) is not None]:
        params.remove(p)
        at = [q.name for q in params].index(_before(p))  # type: ignore[arg-type]
        params.insert(at, p if at == 0 else p.replace(kind=params[at].kind))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        built = {  # the fields that have an option only: another may share an own option's name
            name: _build(cls, {f.name: kwargs.pop(f.name) for f in _optioned(cls) if f.name in kwargs})
            for name, cls in groups.items()
        }
        return command(**kwargs, **built)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {}
    return wrapper


@dataclass(frozen=True)
class Before:
    """`Annotated` marker of a command's own option: listed just before the generated option `name`
    in the help (a historical order kept)."""

    name: str


def _before(p: inspect.Parameter) -> str | None:
    marks = [m for m in getattr(p.annotation, "__metadata__", ()) if isinstance(m, Before)]
    return marks[0].name if marks else None


def _optioned(cls: type) -> list[dataclasses.Field]:
    """The fields of a Settings class that have an option (declared with `setting` or `described`)."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]  # type: ignore[arg-type]


def _is_settings(annotation: Any) -> bool:
    """A Settings class: a dataclass with at least one field declared by `setting`."""
    if not (isinstance(annotation, type) and dataclasses.is_dataclass(annotation)):
        return False
    return bool(_optioned(annotation))


def split_options(options: dict[str, Any], *classes: type) -> list[Any]:
    """One instance per Settings class from keyword options, each option given to the class that has
    the field (an option no class has is an error: one name per fact)."""
    rest = dict(options)
    out = [
        _build(cls, {f.name: rest.pop(f.name) for f in dataclasses.fields(cls) if f.name in rest})
        for cls in classes
    ]
    if rest:
        raise TypeError(f"unknown option(s): {', '.join(sorted(rest))}")
    return out


def parse_shape(text: str) -> tuple[int, int, int]:
    """'C,H,W' → (C, H, W) of positive ints."""
    parts = [p.strip() for p in text.replace("x", ",").replace("×", ",").split(",")]
    try:
        vals = tuple(int(p) for p in parts)
    except ValueError:
        raise RlipError(f"bad --input-shape {text!r}: expected C,H,W like 3,32,32") from None
    if len(vals) != 3 or any(v <= 0 for v in vals):
        raise RlipError(f"bad --input-shape {text!r}: expected three positive integers C,H,W like 3,32,32")
    return vals  # type: ignore[return-value]


@dataclass(frozen=True)
class Inputs:
    """What an evaluation runs on, shared by every kind: the data (`data`: a dataset name, "none"
    for random inputs where the kind allows it, None for the model's own; `root` its folder), the
    number of test points `n`, the input shape (C, H, W) of a foreign model, the seed, the device
    and whether data other than the run's own is allowed (evaluations.data_check)."""

    data: str | None = setting(None, "Dataset name, or 'none' for random inputs; default: the model's own.")
    root: Path | None = setting(None, "Dataset root folder.")  # noqa: RUF009 — a field(), as every setting
    n: int = setting(256, "Number of test points.", min=1)
    input_shape: tuple[int, ...] | None = setting(
        None,
        "C,H,W: the input size of a foreign model (needed without data).",
        cli=str | None,
        parse=parse_shape,
    )
    seed: int = setting(0, "Seed of the random points and searches.")
    device: str = setting("auto", "auto, cpu, cuda, cuda:N.")
    other_data: bool = setting(
        False,
        "Evaluate a run on data other than its own (another dataset or folder): recorded as other "
        "data and kept out of the run's leaderboard row. Without it such data is refused.",
    )


# ----------------------------------------------------------------------------------------------
# what an evaluation runs on: the model file, its config.json (read once), its data
# ----------------------------------------------------------------------------------------------


@dataclass
class Context:
    """One model to evaluate: its path and its config.json content (`meta`, read once; None for a
    foreign file); the model and the test data are loaded from them."""

    path: Path
    meta: dict[str, Any] | None = None
    read: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Context:
        """The context of a model path; RlipError when it does not exist."""
        p = Path(path)
        if not p.exists():
            raise RlipError(f"no such model file or folder: {p}")
        return cls(p)

    def read_meta(self, need: str | None = None) -> dict[str, Any] | None:
        """config.json, read on first use only (evaluations.inputs.model_meta: None for a file
        without rlip metadata; with `need`, RlipError "<why>; <need>" instead)."""
        if not self.read:
            from robustbench_lip.evaluations.inputs import model_meta

            try:
                self.meta = model_meta(self.path, need=need)
            finally:
                self.read = True
        if self.meta is None and need is not None:
            raise RlipError(f"{self.path} carries no rlip metadata (config.json); {need}")
        return self.meta

    def planned_inputs(
        self, data: str | None, input_shape: Sequence[int] | None, need: str
    ) -> tuple[str | None, tuple[int, ...]]:
        """(dataset name, per-sample input shape) from config.json alone (no model or data loaded);
        `input_shape` overrides the saved size. RlipError when neither gives one."""
        from robustbench_lip.evaluations.inputs import dataset_name

        meta = self.read_meta(need) or {}
        saved = (meta.get("model") or {}).get("input_size")
        if input_shape is None and not saved:
            raise RlipError(f"{self.path}: config.json names no input size; pass --input-shape C,H,W")
        shape = tuple(input_shape) if input_shape is not None else tuple(saved)
        return dataset_name(data, meta), shape

    def load_model(
        self, device: Any, arch: str | None = None, input_shape: Sequence[int] | None = None
    ) -> Any:
        """The model, built from the config.json already read (modelio.load_model)."""
        from robustbench_lip.modelio import load_model

        size = tuple(input_shape) if input_shape else None
        return load_model(self.path, arch=arch, device=device, input_size=size, meta=self.read_meta())

    def test_set(self, name: str, root: str | os.PathLike[str] | None) -> Any:
        """The test split of dataset `name` with the model's saved options (evaluations.inputs)."""
        from robustbench_lip.evaluations.inputs import load_test_set

        return load_test_set(name, root, self.read_meta())


# ----------------------------------------------------------------------------------------------
# one load → compute → record → write path, one "already recorded" rule
# ----------------------------------------------------------------------------------------------


def record(ctx: Context, rec: Any, write: bool, beside_file: bool = False) -> Any:
    """Write `rec` to FOLDER/results/<kind>-<settings key>.json when asked, FOLDER being the run
    folder `ctx.path` — or, with `beside_file`, the folder holding a model file (the attack records
    of a file name it in their settings); a model file gets no record otherwise. Returns `rec`."""
    folder = ctx.path if ctx.path.is_dir() else ctx.path.parent if beside_file else None
    if write and folder is not None:
        from robustbench_lip.records import record_path, write_record

        kind = getattr(rec.kind, "value", rec.kind)
        write_record(record_path(folder, kind, rec.settings), rec)
    return rec


def evaluate(
    model_path: str | os.PathLike[str] | Context,
    compute: Callable[[Context], Any],
    write: bool,
    beside_file: bool = False,
) -> Any:
    """The one path of every kind: the model's Context (opened here unless given) → `compute(ctx)`,
    which loads through it and returns the record → `record` (written for a run folder, and with
    `beside_file` beside a model file)."""
    ctx = model_path if isinstance(model_path, Context) else Context.open(model_path)
    return record(ctx, compute(ctx), write, beside_file)


def pending(
    runs_dir: str | os.PathLike[str],
    kind: str,
    plan: Callable[[Context], Iterable[tuple[Any, dict[str, Any]]]],
) -> list[tuple[Context, Any]]:
    """(context, item) of the finished runs under `runs_dir` for which `plan(ctx)` yields
    (item, planned record settings) not yet recorded — the one "already recorded" rule."""
    from robustbench_lip.records import is_recorded
    from robustbench_lip.runs import finished_runs

    out = []
    for run in finished_runs(runs_dir):
        ctx = Context(run)
        out += [(ctx, item) for item, settings in plan(ctx) if not is_recorded(run, kind, settings)]
    return out


__all__ = [
    "Before",
    "Context",
    "Inputs",
    "evaluate",
    "flag",
    "parse_shape",
    "pending",
    "record",
    "setting",
    "split_options",
    "with_settings",
]
