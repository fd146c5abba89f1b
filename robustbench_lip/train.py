"""Training with the Lipschitz penalty: epochs, validation, checkpoint/resume, run records.

`train(config, run_dir)` trains `config.model` on `config.data` and leaves a run directory:

    RUN/checkpoints/train_config.json   the TrainConfig (marks the folder as an rlip run)
    RUN/checkpoints/last.pt             model + optimizer + scheduler + penalty + RNG state, history
    RUN/model.safetensors, config.json  the final model (checkpoint.save_model)
    RUN/results/train.json              kind "train": status, history (per epoch), final metrics

Losses: classification → cross-entropy on the logits; segmentation and image-to-image models →
pixel cross-entropy on `mask_logits` (for the binary one-channel image-to-image U-Net that is
exactly BCE-with-logits on the mask, since its mask logits are [0, z]), plus soft Dice if asked.
The penalty (lipschitz/penalty.py) is added to every step (or every k-th).

A run restarted after an interruption resumes from the last epoch checkpoint and ends with the
same weights as an uninterrupted one (bit-identical on the CPU): the data order and augmentation
of each epoch come from generators seeded by (seed, epoch), and the penalty's RNG/warm vectors and
the global torch RNG are saved with the checkpoint. The library never prints: progress goes to an
optional callback, messages to `logging`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.config import DatasetInfo, TrainConfig
from robustbench_lip.device import preserved_modes, preserved_rng, resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.io import atomic_path, atomic_write_json, read_json, to_json
from robustbench_lip.lipschitz.penalty import LipschitzPenalty, PenaltyConfig, default_target
from robustbench_lip.lipschitz.spectral import spectral_norm
from robustbench_lip.metrics import ConfusionMatrix
from robustbench_lip.records import make_record, record_path, write_record
from robustbench_lip.runs import is_finished, read_train_record

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
CONFIG_MARKER = "train_config.json"
LAST = "last.pt"
NATURAL_IMAGES = ("cifar10", "coco")
FINAL_KEYS = ("accuracy", "precision", "miou", "sigma_A_mean", "sigma_A_max", "sigma_R_mean", "sigma_R_max")

ProgressFn = Callable[[dict[str, Any]], None]
"""Receives events: {"event": "start", "epochs", "start_epoch", "steps"}, {"event": "step", "epoch",
"step", "steps", "loss", "penalty", "sigma", "images_per_s"}, {"event": "epoch", "epoch",
"metrics"}, {"event": "end", "status"}."""


@dataclass
class TrainResult:
    """What `train` returns: the run folder, its status, per-epoch history and final metrics."""

    run_dir: Path
    status: str
    history: list[dict[str, Any]]
    final: dict[str, Any]
    record: dict[str, Any]
    wall_s: float
    skipped: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


# --- set-up ------------------------------------------------------------------------------------


@dataclass
class Setup:
    """Datasets, model and resolved penalty for a TrainConfig (built by `build`)."""

    model: nn.Module
    train_set: Any
    test_set: Any
    info: DatasetInfo
    reg_target: str


def build(cfg: TrainConfig) -> Setup:
    """Datasets and a freshly initialised model (global RNG seeded by the caller); validates the
    combination (unknown names, reflection on a shape-changing model, masks for segmenters)."""
    from robustbench_lip.data import get_dataset
    from robustbench_lip.models import create_model_for

    train_set = get_dataset(cfg.data, "train", root=cfg.root, **cfg.data_options)
    test_set = get_dataset(cfg.data, "test", root=cfg.root, **cfg.data_options)
    info = train_set.info
    model = create_model_for(cfg.model, info, **cfg.model_options)
    mc = model.config
    target = cfg.reg_target or default_target(bool(mc.reflection_defined))
    if target == "reflection" and not mc.reflection_defined:
        raise RlipError(
            f"--reg-target reflection needs a model whose output shape equals its input shape; "
            f"{cfg.model} ({mc.task}) maps {tuple(mc.input_size)} to another shape; use --reg-target A"
        )
    if mc.task != "classification" and not info.has_masks:
        raise RlipError(f"{cfg.model} is a {mc.task} model and needs masks, but {cfg.data} has none")
    return Setup(model=model, train_set=train_set, test_set=test_set, info=info, reg_target=target)


def penalty_config(cfg: TrainConfig, target: str) -> PenaltyConfig:
    """The PenaltyConfig of a TrainConfig (target already resolved)."""
    return PenaltyConfig(
        lam=float(cfg.lam),
        target=target,
        eps=float(cfg.reg_eps),
        iters=cfg.reg_iters,
        points=cfg.reg_points,
        reduce=cfg.reg_reduce,
        subbatch=cfg.reg_subbatch or None,
        every=cfg.reg_every,
        warm_start=cfg.reg_warm,
        bn=cfg.reg_bn,
        hard=cfg.reg_hard,
    )


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate multiplier per step: linear warm-up then cosine towards 0, or constant.

    Positive at every step < total_steps (the first step included, also for a 1-step run); the
    cosine reaches 0 only at step total_steps, after the last update."""
    warm = int(cfg.warmup * total_steps)
    cosine = cfg.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        t = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return factor


def _settings(cfg: TrainConfig, target: str) -> dict[str, Any]:
    d = cfg.to_dict()
    d.pop("device", None)
    d["reg_target"] = target
    return d


# --- losses and augmentation -------------------------------------------------------------------


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean over classes of the soft Dice of softmax(logits) (N, M, H, W) against target (N, H, W)."""
    p = logits.float().softmax(1)
    g = F.one_hot(target.long(), p.shape[1]).permute(0, 3, 1, 2).to(p)
    inter = (p * g).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + g.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def task_loss(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor | None,
    dice: bool,
    logit_scale: float = 1.0,
) -> torch.Tensor:
    """The supervised loss of one batch for the model's task (see the module docstring); segmenters'
    mask logits are multiplied by `logit_scale` first."""
    if model.config.task == "classification":
        return F.cross_entropy(model(x), labels)
    from robustbench_lip.models import mask_logits

    if masks is None:
        raise RlipError(f"{model.config.arch} needs masks to train")
    z = mask_logits(model, x) * logit_scale
    loss = F.cross_entropy(z.float(), masks)
    return loss + soft_dice_loss(z, masks) if dice else loss


def augment(
    x: torch.Tensor, masks: torch.Tensor | None, gen: torch.Generator, pad: int = 4
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal flip and random crop with `pad` zero padding, applied alike to the masks
    (padding there is background 0). Randomness from `gen` (CPU)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    fl = flip.to(x.device).view(-1, 1, 1, 1)
    x = torch.where(fl, x.flip(3), x)
    xp = F.pad(x, (pad, pad, pad, pad))
    x = torch.stack([xp[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if masks is not None:
        masks = torch.where(fl.view(-1, 1, 1), masks.flip(2), masks)
        mp = F.pad(masks, (pad, pad, pad, pad))
        masks = torch.stack([mp[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    return x, masks


# --- validation --------------------------------------------------------------------------------


def _batches(ds: Any, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    from robustbench_lip.data import make_loader

    yield from make_loader(ds, batch_size, shuffle=False)


def measure_sigma(
    model: nn.Module, x: torch.Tensor, target: str, iters: int, seed: int = 0, batch_size: int = 64
) -> torch.Tensor:
    """(N,) power-iteration σ of J (target A) or 2J − I at each point of x, in eval mode (a measured
    lower estimate of the local Lipschitz constant; fixed seed for the start vectors)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with preserved_modes(model):
        model.eval()
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            u0 = torch.randn(xb.shape, generator=gen).to(xb)
            out.append(spectral_norm(model, xb, target=target, iters=iters, tol=1e-4, u0=u0).sigma)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def _predict(model: nn.Module, ds: Any, info: DatasetInfo, device: torch.device) -> dict[str, Any]:
    from robustbench_lip.models import can_segment, predict_labels, predict_mask

    cm = ConfusionMatrix(info.num_classes)
    seg = info.has_masks and can_segment(model) and info.num_mask_classes is not None
    mcm = ConfusionMatrix(info.num_mask_classes) if seg else None
    for x, y, m in _batches(ds, 256):
        x = x.to(device)
        cm.update(predict_labels(model, x).cpu(), y)
        if mcm is not None and m is not None:
            mcm.update(predict_mask(model, x).cpu(), m)
    return {
        "accuracy": cm.accuracy(),
        "precision": cm.macro_precision(),
        "miou": mcm.miou() if mcm is not None else None,
    }


def evaluate(
    model: nn.Module,
    test_set: Any,
    info: DatasetInfo,
    device: torch.device,
    sigma_points: int,
    sigma_iters: int,
) -> dict[str, Any]:
    """Held-out metrics: accuracy, macro precision, mIoU (None without masks), and mean/max σ of
    A and R (R None where undefined) on the first `sigma_points` test images (measured, eval mode)."""
    with preserved_modes(model):
        model.eval()
        out = _predict(model, test_set, info, device)
        out.update({k: None for k in FINAL_KEYS[3:]})
        n = min(sigma_points, len(test_set))
        if n > 0:
            x = test_set.take(n).tensors()[0].to(device)
            targets = ["A"] + (["reflection"] if model.config.reflection_defined else [])
            for t in targets:
                s = measure_sigma(model, x, t, sigma_iters)
                key = "A" if t == "A" else "R"
                out[f"sigma_{key}_mean"] = float(s.mean())
                out[f"sigma_{key}_max"] = float(s.max())
    return out


# --- run directory -----------------------------------------------------------------------------


def _marker(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS / CONFIG_MARKER


def is_rlip_run(run_dir: Path) -> bool:
    """Whether the folder was made by `train` (has the config marker or a train record)."""
    return _marker(run_dir).is_file() or read_train_record(run_dir) is not None


def prepare_run_dir(run_dir: Path, cfg: TrainConfig) -> bool:
    """Check `run_dir` may hold this run; True when it already holds this run (resume/skip).

    A non-empty folder that is not an rlip run, or an rlip run with other settings, is an RlipError
    and nothing in it is touched.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RlipError(f"{run_dir} is a file, not a run folder; choose another --out")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return False
    if not is_rlip_run(run_dir):
        raise RlipError(f"{run_dir} already holds files that are not an rlip run; choose another --out")
    if not _marker(run_dir).is_file():
        raise RlipError(f"{run_dir} holds an rlip run without its training config; choose another --out")
    old = read_json(_marker(run_dir))
    new = json_roundtrip(cfg.to_dict())
    diff = sorted(k for k in set(old) | set(new) if k != "device" and old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise RlipError(
            f"{run_dir} holds a run with other settings ({k}: {old.get(k)!r} there, {new.get(k)!r} now); "
            "choose another --out"
        )
    return True


def json_roundtrip(d: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(to_json(d))


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint is the user's to remove
        raise RlipError(f"cannot read the training checkpoint {path}: {e}; delete it to restart") from None


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


# --- training ----------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train (or resume, or skip when finished) the run `cfg` in `run_dir`; see the module docstring.

    Raises RlipError for bad input (before anything is written) and when the loss or the weights
    become non-finite (the last good checkpoint is kept, train.json says "failed").
    """
    from robustbench_lip.modelio import save_model

    run_dir = Path(run_dir)
    existing = prepare_run_dir(run_dir, cfg)
    if existing and is_finished(run_dir):
        rec = read_train_record(run_dir) or {}
        log.info("%s: already finished, skipped", run_dir)
        return TrainResult(
            run_dir=run_dir,
            status="finished",
            history=rec.get("history", []),
            final=rec.get("final", {}),
            record=rec,
            wall_s=float(rec.get("wall_s") or 0.0),
            skipped=True,
            settings=rec.get("settings", {}),
        )
    device = resolve_device(cfg.device)
    amp = bool(cfg.amp) if cfg.amp is not None else device.type == "cuda"
    with preserved_rng():
        torch.manual_seed(cfg.seed)
        setup = build(cfg)  # validates before anything is written
        return _train(cfg, run_dir, setup, device, amp, progress, save_model)


def _train(
    cfg: TrainConfig,
    run_dir: Path,
    setup: Setup,
    device: torch.device,
    amp: bool,
    progress: ProgressFn | None,
    save_model: Callable[..., Any],
) -> TrainResult:
    model = setup.model.to(device)
    info = setup.info
    settings = _settings(cfg, setup.reg_target)
    pen = LipschitzPenalty(penalty_config(cfg, setup.reg_target), seed=cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_train = len(setup.train_set)
    drop_last = n_train > cfg.batch_size
    steps = n_train // cfg.batch_size if drop_last else 1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg, steps * cfg.epochs))
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    do_augment = cfg.augment if cfg.augment is not None else cfg.data in NATURAL_IMAGES

    ckpt_path = run_dir / CHECKPOINTS / LAST
    history: list[dict[str, Any]] = []
    start_epoch, wall_before = 0, 0.0
    if ckpt_path.is_file():
        state = _load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        pen.load_state_dict(state["penalty"])
        _set_rng_state(state["rng"])
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        wall_before = float(state.get("wall_s", 0.0))
        log.info("%s: resuming after epoch %d", run_dir, start_epoch)
    else:
        atomic_write_json(_marker(run_dir), cfg.to_dict())

    t0 = time.perf_counter()

    def record(status: str, final: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = {"status": status, "history": history, "final": final, "penalty": pen.config.to_dict()}
        payload.update(extra or {})
        rec = make_record(
            "train",
            model=model.config.to_dict(),
            dataset=info.to_dict(),
            settings=settings,
            payload=payload,
            wall_s=wall_before + time.perf_counter() - t0,
            device=device,
        )
        write_record(record_path(run_dir, "train"), rec)
        return rec

    emit = progress or (lambda _e: None)
    emit(
        {
            "event": "start",
            "epochs": cfg.epochs,
            "start_epoch": start_epoch,
            "steps": steps,
            "run": str(run_dir),
        }
    )
    from robustbench_lip.data import make_loader

    last_metrics: dict[str, Any] = history[-1] if history else {}
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        aug_gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        loader = make_loader(
            setup.train_set,
            cfg.batch_size,
            shuffle=True,
            seed=cfg.seed * 100_003 + epoch,
            drop_last=drop_last,
        )
        tot_loss = tot_pen = 0.0
        step_lr = 0.0
        sig_sum, sig_n, sig_max, n_seen = 0.0, 0, 0.0, 0
        te = time.perf_counter()
        for step, (x, y, m) in enumerate(loader):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            m = m.to(device, non_blocking=True) if m is not None else None
            if do_augment:
                x, m = augment(x, m, aug_gen)
            with torch.autocast(device_type=device.type, enabled=amp):
                loss = task_loss(model, x, y, m, cfg.dice, cfg.logit_scale)
            p = pen(model, x)
            total = loss.float() + p.value
            if not bool(torch.isfinite(total)):
                msg = (
                    f"training diverged: non-finite loss at epoch {epoch + 1}, step {step + 1} "
                    f"(loss {float(loss.detach()):.4g}, penalty {float(p.value.detach()):.4g}); "
                    f"the last good checkpoint ({start_or_last(history)}) is kept in "
                    f"{run_dir / CHECKPOINTS}; lower --lr or --lam"
                )
                record("failed", {k: last_metrics.get(k) for k in FINAL_KEYS}, {"error": msg})
                emit({"event": "end", "status": "failed"})
                raise RlipError(msg)
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(opt)
            scaler.update()
            step_lr = float(opt.param_groups[0]["lr"])  # the lr this step used (> 0 from step 0)
            sched.step()
            tot_loss += float(loss.detach())
            tot_pen += float(p.value.detach())
            n_seen += x.shape[0]
            if p.applied and p.sigma.numel():
                sig_sum += float(p.sigma.sum())
                sig_n += p.sigma.numel()
                sig_max = max(sig_max, float(p.sigma.max()))
            emit(
                {
                    "event": "step",
                    "epoch": epoch + 1,
                    "step": step + 1,
                    "steps": steps,
                    "loss": float(loss.detach()),
                    "penalty": float(p.value.detach()),
                    "sigma": float(p.sigma.max()) if p.applied and p.sigma.numel() else None,
                    "images_per_s": n_seen / max(time.perf_counter() - te, 1e-9),
                }
            )
        n_steps = step + 1 if n_seen else 0
        train_time = time.perf_counter() - te
        if not _all_finite(model):
            msg = (
                f"training diverged: non-finite weights after epoch {epoch + 1}; the last good checkpoint "
                f"({start_or_last(history)}) is kept in {run_dir / CHECKPOINTS}; lower --lr or --lam"
            )
            record("failed", {k: last_metrics.get(k) for k in FINAL_KEYS}, {"error": msg})
            raise RlipError(msg)
        last = epoch + 1 == cfg.epochs
        iters = max(cfg.sigma_iters, cfg.sigma_final_iters) if last else cfg.sigma_iters
        metrics = evaluate(model, setup.test_set, info, device, cfg.sigma_points, iters)
        last_metrics = {
            "epoch": epoch + 1,
            "lr": step_lr if n_seen else float(opt.param_groups[0]["lr"]),  # of the epoch's last step
            "train_loss": tot_loss / max(n_steps, 1),
            "train_penalty": tot_pen / max(n_steps, 1),
            "train_sigma_mean": sig_sum / sig_n if sig_n else None,
            "train_sigma_max": sig_max if sig_n else None,
            "train_time_s": train_time,
            "images_per_s": n_seen / max(train_time, 1e-9),
            **metrics,
        }
        history.append(last_metrics)
        log.info(
            "%s epoch %d/%d: loss %.4f penalty %.4g acc %s σA max %s",
            run_dir.name,
            epoch + 1,
            cfg.epochs,
            last_metrics["train_loss"],
            last_metrics["train_penalty"],
            _fmt(metrics["accuracy"]),
            _fmt(metrics["sigma_A_max"]),
        )
        _save_checkpoint(
            ckpt_path,
            {
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "penalty": pen.state_dict(),
                "rng": _rng_state(),
                "history": json_roundtrip({"h": history})["h"],
                "wall_s": wall_before + time.perf_counter() - t0,
            },
        )
        record("running", {k: last_metrics.get(k) for k in FINAL_KEYS})
        emit({"event": "epoch", "epoch": epoch + 1, "epochs": cfg.epochs, "metrics": last_metrics})

    final = {k: last_metrics.get(k) for k in FINAL_KEYS}
    summary = {"settings": settings, "final": final, "epochs": cfg.epochs}
    model.eval()
    save_model(model, run_dir, dataset=info, training=json_roundtrip(summary))
    rec = record("finished", final)
    emit({"event": "end", "status": "finished"})
    return TrainResult(
        run_dir=run_dir,
        status="finished",
        history=history,
        final=final,
        record=rec,
        wall_s=float(rec["wall_s"]),
        settings=settings,
    )


def start_or_last(history: list[dict[str, Any]]) -> str:
    """Text naming the last saved epoch."""
    return f"epoch {history[-1]['epoch']}" if history else "none yet"


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
