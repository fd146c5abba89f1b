"""SEA: the per-image worst case of its members (each equal to the same attack run alone), per-image
statistics against the confusion matrix, the greedy dataset-mIoU worst case against brute force, bad
requests, and isolation of model modes and global RNG."""

from __future__ import annotations

import itertools

import pytest
import torch

from robustbench_lip.attacks.apgd_seg import APGDSegmentation
from robustbench_lip.attacks.rng import stream_seed
from robustbench_lip.attacks.sea import (
    SEA,
    dataset_miou,
    image_stats,
    sea_preset,
    select_per_image,
    worst_case_miou,
)
from robustbench_lip.attacks.segmentation import SegmentationAttack
from robustbench_lip.errors import RlipError
from robustbench_lip.metrics import ConfusionMatrix, per_sample_accuracy
from robustbench_lip.models import mask_logits
from tests.helpers.seg_models import check_isolation, lesions_unet, pixel_accuracy, tiny_segmenter


# ----------------------------------------------------------------------------- SEA
def test_sea_is_the_per_image_worst_case_of_its_members() -> None:
    model, x, m = lesions_unet()
    eps, steps = 16 / 255, 5
    sea = SEA(
        model, eps, "linf", steps, seed=3, losses=("mask-ce", "js", "mask-sph"), extra=("pgd", "cospgd")
    )
    res = sea.run(x, m)
    # each member alone (fresh objects, run in another order) gives the same points as inside SEA
    alone = {
        "pgd": SegmentationAttack(model, "pgd", eps, "linf", steps, seed=stream_seed(3, "pgd")),
        "apgd-mask-sph": APGDSegmentation(model, "mask-sph", eps, "linf", steps, seed=3),
        "cospgd": SegmentationAttack(model, "cospgd", eps, "linf", steps, seed=stream_seed(3, "cospgd")),
        "apgd-js": APGDSegmentation(model, "js", eps, "linf", steps, seed=3),
        "apgd-mask-ce": APGDSegmentation(model, "mask-ce", eps, "linf", steps, seed=3),
    }
    accs = {name: pixel_accuracy(model, atk(x, m), m) for name, atk in alone.items()}
    for i, name in enumerate(res.names):
        assert torch.equal(res.accuracy[i], accs[name]), name
    worst = torch.stack([accs[n] for n in res.names]).amin(0)
    sea_acc = pixel_accuracy(model, res.adv, m)
    assert torch.equal(sea_acc, worst)
    for n in res.names:
        assert bool((sea_acc <= accs[n]).all())
    assert torch.equal(res.accuracy[res.chosen, torch.arange(len(x))], worst)
    again = SEA(
        model, eps, "linf", steps, seed=3, losses=("mask-ce", "js", "mask-sph"), extra=("pgd", "cospgd")
    )
    assert torch.equal(again(x, m), res.adv)  # deterministic, and __call__ returns run().adv
    # the dataset mIoU of the greedy selection is at or below every member's
    choice, miou = worst_case_miou(res.inter, res.union)
    own = [dataset_miou(res.inter[a], res.union[a]) for a in range(len(res.names))]
    assert miou <= min(own) + 1e-12
    pred = res.predictions[choice, torch.arange(len(x))]
    assert miou == pytest.approx(ConfusionMatrix(2, 255).update(pred, m).miou())


def test_image_stats_match_the_confusion_matrix() -> None:
    model, x, m = lesions_unet()
    m = m.clone()
    m[0, :3] = 255
    with torch.no_grad():
        pred = mask_logits(model, x).argmax(1)
    acc, miou, inter, union = image_stats(pred, m, 2, 255)
    assert torch.allclose(acc, per_sample_accuracy(pred, m, 255))
    for i in range(len(x)):
        cm = ConfusionMatrix(2, 255).update(pred[i], m[i])
        assert float(miou[i]) == pytest.approx(cm.miou())
    assert dataset_miou(inter, union) == pytest.approx(ConfusionMatrix(2, 255).update(pred, m).miou())


def test_greedy_worst_miou_against_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        a, n, k = 3, 4, 3
        union = torch.randint(1, 20, (a, n, k), generator=g)
        inter = (torch.rand(a, n, k, generator=g) * union).long()
        choice, value = worst_case_miou(inter, union, ignore_index=None)
        own = [dataset_miou(inter[i], union[i], None) for i in range(a)]
        brute = min(
            dataset_miou(inter[list(c), range(n)], union[list(c), range(n)], None)
            for c in itertools.product(range(a), repeat=n)
        )
        assert brute - 1e-12 <= value <= min(own) + 1e-12
        assert value == pytest.approx(dataset_miou(inter[choice, range(n)], union[choice, range(n)], None))
    with pytest.raises(RlipError, match="members, images, classes"):
        worst_case_miou(torch.zeros(2, 3), torch.zeros(2, 3))


def test_select_per_image_orders_and_ties() -> None:
    acc = torch.tensor([[0.5, 0.2, 0.3], [0.5, 0.1, 0.3], [0.4, 0.1, 0.3]], dtype=torch.float64)
    miou = torch.tensor([[0.3, 0.5, 0.2], [0.2, 0.5, 0.2], [0.9, 0.4, 0.2]], dtype=torch.float64)
    assert select_per_image(acc, miou).tolist() == [2, 2, 0]
    assert select_per_image(acc, miou, "miou").tolist() == [1, 2, 0]
    assert select_per_image(acc, miou, members=[0, 1]).tolist() == [1, 1, 0]
    with pytest.raises(RlipError, match="selection"):
        select_per_image(acc, miou, "loss")


def test_bad_requests() -> None:
    model = tiny_segmenter()[0]
    with pytest.raises(RlipError, match="selection"):
        SEA(model, select="loss")
    for losses, extra in [(("js", "js"), ()), ((), ("fgsm",)), ((), ()), (("nope",), ())]:
        with pytest.raises(RlipError, match="SEA members"):
            SEA(model, losses=losses, extra=extra)
    with pytest.raises(RlipError, match="preset"):
        sea_preset("strong")
    std = SEA(model, **sea_preset("standard"))
    assert std.names == ("apgd-mask-ce-bal", "apgd-mask-ce", "apgd-js") and std.steps == 300
    assert len(SEA(model, **{**sea_preset("extended"), "steps": 5}).names) == 7


@pytest.mark.parametrize("fail", [False, True])
def test_modes_and_rng_restored(fail: bool) -> None:
    check_isolation(lambda model: SEA(model, 8 / 255, steps=3, extra=("segpgd",)), fail)
