"""robustbench_lip.registry.Registry, the table behind every extension point, and tasks.task_of."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustbench_lip.errors import RlipError
from robustbench_lip.registry import DuplicateName, Registry
from robustbench_lip.tasks import TASKS, Task, parse_task, scored_task, task_of


def test_register_get_names_items_keep_order() -> None:
    reg: Registry[int] = Registry("widget")
    for i, name in enumerate(("zeta", "alpha", "mid")):
        assert reg.register(name, i) == i
    assert reg.names() == ["zeta", "alpha", "mid"] and reg.items() == [("zeta", 0), ("alpha", 1), ("mid", 2)]
    assert reg.get("alpha") == 1 and reg.find("nope") is None and "mid" in reg and len(reg) == 3


def test_duplicates_need_replace_and_unknown_names_list_the_known() -> None:
    reg: Registry[str] = Registry("widget")
    reg.register("a", "first")
    with pytest.raises(DuplicateName, match="widget 'a' is already registered; pass replace=True"):
        reg.register("a", "second")
    assert issubclass(DuplicateName, RlipError) and issubclass(DuplicateName, ValueError)
    reg.register("a", "second", replace=True)
    assert reg.get("a") == "second"
    with pytest.raises(RlipError, match=r"unknown widget 'b'; known: a$"):
        reg.get("b")
    with pytest.raises(ValueError):
        reg.register("", "empty")


def test_registered_restores_the_registry_also_on_error() -> None:
    reg: Registry[str] = Registry("widget")
    reg.register("kept", "old")
    with pytest.raises(KeyError), reg.registered("temp", "t"):
        assert reg.get("temp") == "t"
        raise KeyError("boom")
    assert "temp" not in reg
    with reg.registered("kept", "new", replace=True):
        assert reg.get("kept") == "new"
    assert reg.get("kept") == "old" and reg.names() == ["kept"]


class _Bare(nn.Module):
    def __init__(self, out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.out_shape = out_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], *self.out_shape)


@pytest.mark.parametrize(
    ("out_shape", "task"),
    [((7,), Task.CLASSIFICATION), ((3, 9, 11), Task.IMAGE2IMAGE), ((5, 9, 11), Task.SEGMENTATION),
     ((4, 3, 3), Task.FEATURES)],
)  # fmt: skip
def test_task_of_guesses_from_the_output_without_a_config(out_shape: tuple[int, ...], task: Task) -> None:
    model, x = _Bare(out_shape), torch.zeros(2, 3, 9, 11)
    assert task_of(model, model(x), x) is task
    with pytest.raises(RlipError, match=r"no \.config\.task"):
        task_of(model)


def test_the_config_task_wins_and_scoring_maps_tasks() -> None:
    model = _Bare((7,))
    model.config = type("Cfg", (), {"task": "segmentation"})()  # type: ignore[assignment]
    x = torch.zeros(1, 3, 4, 4)
    assert task_of(model, model(x), x) is Task.SEGMENTATION
    assert TASKS == ("classification", "segmentation", "image2image", "features")
    assert [scored_task(Task(t)) for t in TASKS] == [
        Task.CLASSIFICATION,
        Task.SEGMENTATION,
        Task.SEGMENTATION,
        None,
    ]
    with pytest.raises(RlipError, match="task must be one of classification"):
        parse_task("regression")
