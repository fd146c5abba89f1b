"""Lower any model to one functional graph: `torch.export` (non-strict), then decomposition to core
ATen, keeping whole every op that has a registered rule (so SiLU or bilinear upsampling keep their
exact constants). Views, in-place ops, item assignment, hooks and patched forwards are all
functionalised by export, so the bounder sees exactly the program that runs.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind
from torch.nn.utils import parametrize

from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds.rules.l2pool import fuse_l2_pools
from robustbench_lip.lipschitz.bounds.rules.registry import get_rule
from robustbench_lip.modelio.hints import FREEZE_HINT

log = logging.getLogger(__name__)


@dataclass
class LoweredGraph:
    """A core-ATen graph of x ↦ model(x): the GraphModule, the placeholder of x, the output node
    bounded (the first user output), and the value of every placeholder that is not x."""

    gm: torch.fx.GraphModule
    x_node: torch.fx.Node
    out_node: torch.fx.Node
    constants: dict[torch.fx.Node, Any]
    n_outputs: int


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _decomp_table() -> dict[Any, Any]:
    table = torch.export.default_decompositions()
    for op in list(table.keys()):
        if get_rule(str(op)) is not None:
            del table[op]
    return table


def export_program(model: nn.Module | ExportedProgram, example: torch.Tensor) -> ExportedProgram:
    """torch.export a model on one example batch (non-strict), or take an ExportedProgram as is."""
    if isinstance(model, ExportedProgram):
        return model
    if not isinstance(model, nn.Module):
        raise RlipError(
            f"cannot bound a {type(model).__name__}; expected an nn.Module or an exported program"
        )
    try:
        with torch.no_grad():
            return torch.export.export(model, (example,), strict=False)
    except RlipError:
        raise
    except Exception as e:  # export failures are diverse: data-dependent control flow, unsupported ops
        raise RlipError(
            f"the model cannot be exported to a graph, so it cannot be certified "
            f"(torch.export: {_first_line(e)})"
        ) from None


def _is_parametrized(model: Any) -> bool:
    return isinstance(model, nn.Module) and any(parametrize.is_parametrized(m) for m in model.modules())


def fixed_weights_copy(model: nn.Module) -> nn.Module:
    """A copy of model whose torch.nn.utils.parametrize-d tensors are computed once, in the model's
    current mode, and stored as plain tensors: the weights its next forward call would use (a power
    iteration that updates its vectors in forward runs once, on the copy; the model is untouched)."""
    try:
        net = copy.deepcopy(model)
    except Exception as e:
        raise RlipError(
            f"the model cannot be copied to fix its weights ({_first_line(e)}); {FREEZE_HINT}"
        ) from None
    with torch.no_grad():
        while True:
            mod = next((m for m in net.modules() if parametrize.is_parametrized(m)), None)
            if mod is None:
                return net
            try:
                _fix_module(mod)
            except Exception as e:  # a parametrization that fails, or a name the class also defines
                raise RlipError(
                    f"cannot fix the weights of {type(mod).__name__} ({_first_line(e)}); {FREEZE_HINT}"
                ) from None


def _fix_module(mod: nn.Module) -> None:
    """Replace mod's parametrizations by the plain tensors they compute now. Not
    remove_parametrizations: that edits the parametrized class, which deepcopy shares with the
    original model."""
    values = {name: getattr(mod, name).detach().clone() for name in mod.parametrizations.keys()}
    del mod._modules["parametrizations"]
    mod.__class__ = mod.__class__.__bases__[0]
    for name, v in values.items():
        mod.register_parameter(name, nn.Parameter(v, requires_grad=False))


def _export_core(model: nn.Module | ExportedProgram, example: torch.Tensor) -> ExportedProgram:
    ep = export_program(model, example)
    try:
        return ep.run_decompositions(_decomp_table())
    except Exception as e:
        hint = f"; {FREEZE_HINT}" if "set_" in str(e) or "mutation" in str(e) else ""
        raise RlipError(
            f"the model's graph cannot be decomposed to core ATen ({_first_line(e)}){hint}"
        ) from None


def lower(model: nn.Module | ExportedProgram, example: torch.Tensor) -> LoweredGraph:
    """The core-ATen graph of model at the example's shape (model already in the wanted mode). A
    model with parametrized weights that cannot be exported as it is (e.g. a power iteration that
    updates its buffers in forward) is exported from `fixed_weights_copy(model)`."""
    try:
        ep = _export_core(model, example)
    except RlipError as e:
        if not _is_parametrized(model):
            raise
        log.info("exporting a copy with its parametrized weights fixed (%s)", e)
        try:
            ep = _export_core(fixed_weights_copy(model), example)
        except RlipError as e2:
            raise RlipError(f"{str(e2).split('; fix the weights')[0]}; {FREEZE_HINT}") from None
    gm = ep.graph_module
    fuse_l2_pools(gm)
    sig = ep.graph_signature
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(sig.input_specs):
        raise RlipError("unexpected exported graph: placeholders do not match its signature")
    x_node = None
    constants: dict[torch.fx.Node, Any] = {}
    users = 0
    for node, spec in zip(placeholders, sig.input_specs, strict=True):
        if spec.kind == InputKind.USER_INPUT:
            users += 1
            if x_node is None:
                x_node = node
            continue
        if spec.kind == InputKind.PARAMETER or (spec.kind == InputKind.BUFFER and spec.persistent):
            constants[node] = ep.state_dict[spec.target]
        elif spec.kind in (InputKind.BUFFER, InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ):
            constants[node] = ep.constants[spec.target]
        else:
            raise RlipError(f"unsupported input kind {spec.kind} in the exported graph")
    if x_node is None or users != 1:
        raise RlipError(
            f"the model's graph takes {users} inputs; a certificate needs exactly one image batch"
        )
    out = next(n for n in gm.graph.nodes if n.op == "output")
    flat = list(out.args[0])
    user_outs = [
        o for o, spec in zip(flat, sig.output_specs, strict=True) if spec.kind == OutputKind.USER_OUTPUT
    ]
    if not user_outs or not isinstance(user_outs[0], torch.fx.Node):
        raise RlipError("the model's output does not depend on its input")
    if len(user_outs) > 1:
        log.warning("model returns %d outputs; bounding the first", len(user_outs))
    return LoweredGraph(gm, x_node, user_outs[0], constants, len(user_outs))


class _Recorder(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[torch.fx.Node, Any] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n] = out
        return out


def record_values(g: LoweredGraph, example: torch.Tensor) -> dict[torch.fx.Node, Any]:
    """Run the graph once on the example and keep every node's value."""
    rec = _Recorder(g.gm)
    args = [example if n is g.x_node else g.constants[n] for n in g.gm.graph.nodes if n.op == "placeholder"]
    try:
        with torch.no_grad():
            rec.run(*args)
    except Exception as e:
        raise RlipError(
            f"the model's graph fails on inputs of shape {tuple(example.shape[1:])}: {_first_line(e)}"
        ) from None
    return rec.values


__all__ = ["LoweredGraph", "export_program", "fixed_weights_copy", "lower", "record_values"]
