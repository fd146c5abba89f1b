"""Seeds in a sweep spec: `seeds = [0, 1, 2]` plans one run per (model, λ, seed), and the reproduce
spec is the demo's shapes grid with three seeds (nothing else changed)."""

from __future__ import annotations

from pathlib import Path

from robustbench_lip.config import SweepSpec
from robustbench_lip.sweep import plan
from tests.helpers.paths import ZOO


def test_spec_seeds_plan_one_run_per_seed(tmp_path: Path) -> None:
    spec = SweepSpec.from_toml(ZOO / "shapes_cpu_seeds.toml")
    runs = plan(spec, tmp_path)
    assert len(runs) == len(spec.models) * len(spec.lams) * 3 == 15
    assert sorted({(r.config.lam, r.config.seed) for r in runs}) == sorted(
        (lam, s) for lam in spec.lams for s in (0, 1, 2)
    )
    assert len({r.run_dir for r in runs}) == 15 and all(r.name.endswith(f"-s{r.config.seed}") for r in runs)


def test_reproduce_spec_is_the_demo_grid_with_three_seeds() -> None:
    """The acceptance sweep trains the demo's model on the demo's data at every λ of the demo (and
    λ = 1e-6 and 1e-4, cut from the demo for time), with the same settings but for one more epoch."""
    demo = SweepSpec.from_toml(ZOO / "shapes_cpu.toml")
    repro = SweepSpec.from_toml(ZOO / "shapes_cpu_seeds.toml")
    assert demo.seeds == (0,) and repro.seeds == (0, 1, 2)
    assert set(demo.lams) <= set(repro.lams) and set(repro.lams) - set(demo.lams) == {1e-6, 1e-4}
    for field in ("data", "models", "root", "data_options", "model_options", "certify", "attack"):
        assert getattr(repro, field) == getattr(demo, field), field
    a, b = demo.config(demo.models[0], 1e-2, 1).to_dict(), repro.config(repro.models[0], 1e-2, 1).to_dict()
    assert (a.pop("epochs"), b.pop("epochs")) == (4, 5)
    assert a == b  # otherwise the same training settings for the same (model, λ, seed)
