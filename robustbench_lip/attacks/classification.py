"""Classification attacks through torchattacks, wrapped so that the caller's state is untouched.

torchattacks (3.5) sets the model to eval mode and calls `model.train()` afterwards when it was
training — which un-freezes a frozen BatchNorm inside a training model — does not restore anything
when the attack raises, and draws its random start from the global RNG. `ClassificationAttack`
runs it inside `isolated(model)`: every submodule's `training` flag and the global RNG states are
restored, also on error; the random start is seeded from the attack's own seed (each call draws a
fresh seed from a local generator, so consecutive batches get different, reproducible starts).

Inputs in [0, 1]; our models normalise internally, so torchattacks' normalisation is never used.
"""

from __future__ import annotations

import torch
import torchattacks

from robustbench_lip.attacks.base import (
    check_attack,
    default_alpha,
    isolated,
    make_generator,
)
from robustbench_lip.attacks.registry import DEFAULT_STEPS
from robustbench_lip.errors import RlipError

CLASSIFICATION_ATTACKS: tuple[str, ...] = ("fgsm", "pgd", "apgd", "autoattack")


class ClassificationAttack:
    """`atk(images, labels) -> adversarial images` for a classifier `model(x) -> logits (N, K)`.

    name: `fgsm` (Goodfellow et al. 2015; ℓ∞ → torchattacks.FGSM, ℓ2 → one normalised-gradient step
    of size ε, i.e. torchattacks.PGDL2 with steps=1, alpha=ε, no random start), `pgd` (Madry et al.
    2018; torchattacks.PGD / PGDL2), `apgd` (Croce & Hein 2020; torchattacks.APGD, CE loss, one
    restart), `autoattack` (torchattacks.AutoAttack, standard version).
    eps: budget in pixel units; alpha: step size (default 2.5·ε/steps); steps: iterations;
    random_start: uniform start in the ε-ball (pgd); seed: seeds random starts.
    images (N, C, H, W) in [0, 1], labels (N,) int64 → adversarial images (N, C, H, W) in [0, 1].
    """

    def __init__(
        self,
        model: torch.nn.Module,
        name: str = "pgd",
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = DEFAULT_STEPS,
        alpha: float | None = None,
        random_start: bool = True,
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        self.name, self.norm, self.eps, self.steps = check_attack(
            "classification", name, CLASSIFICATION_ATTACKS, norm, eps, steps
        )
        self.model = model
        self.alpha = float(alpha) if alpha is not None else default_alpha(self.eps, self.steps)
        self.random_start = bool(random_start)
        self.seed = int(seed)
        self.num_classes = num_classes
        self._gen = make_generator(self.seed)

    def _torchattack(self) -> torchattacks.attack.Attack:
        m, eps, tnorm = self.model, self.eps, "Linf" if self.norm == "linf" else "L2"
        if self.name == "fgsm":
            if self.norm == "linf":
                return torchattacks.FGSM(m, eps=eps)
            return torchattacks.PGDL2(m, eps=eps, alpha=eps, steps=1, random_start=False)
        if self.name == "pgd":
            cls = torchattacks.PGD if self.norm == "linf" else torchattacks.PGDL2
            return cls(m, eps=eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start)
        seed = int(torch.randint(0, 2**31 - 1, (), generator=self._gen))
        if self.name == "apgd":
            return torchattacks.APGD(
                m, norm=tnorm, eps=eps, steps=self.steps, n_restarts=1, loss="ce", seed=seed
            )
        if self.num_classes is None:
            raise RlipError("autoattack needs the number of classes")
        return torchattacks.AutoAttack(
            m, norm=tnorm, eps=eps, version="standard", n_classes=self.num_classes, seed=seed
        )

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.eps == 0:
            return images.detach().clone().clamp(0, 1)
        seed = int(torch.randint(0, 2**62, (), generator=self._gen))
        with isolated(self.model):
            torch.manual_seed(seed)  # torchattacks draws its random start from the global RNG
            atk = self._torchattack()
            adv = atk(images, labels)
        return adv.to(images.device, images.dtype)

    def __repr__(self) -> str:
        return (
            f"ClassificationAttack({self.name}, norm={self.norm}, eps={self.eps:g}, steps={self.steps}, "
            f"alpha={self.alpha:g}, random_start={self.random_start}, seed={self.seed})"
        )
