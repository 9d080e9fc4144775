"""The one training loop: runs a :class:`Stage` under a ``[train]`` schedule.

See :mod:`edgefusion.training` for the API contract. Files in ``RUN_DIR``
(written by rank 0 only, all atomically except the append-only log):

``last.pt``      rolling resumable checkpoint (every ``checkpoint_every`` steps and at the end)
``<stage>.pt``   final model checkpoint (no optimizer state)
``log.csv``      per-term losses every ``log_every`` steps; ``tensorboard/`` when installed
"""

from __future__ import annotations

import bisect
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from edgefusion.errors import UserError
from edgefusion.models.checkpoint import model_payload, read_checkpoint, save_checkpoint
from edgefusion.training import ddp
from edgefusion.training.dataset import StepBatchSampler
from edgefusion.training.logs import RunLog
from edgefusion.training.recipe import TrainConfig, recipe_to_dict
from edgefusion.training.state import rng_state, seed_all, set_rng_state


LossFn = Callable[[torch.nn.Module, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass
class Stage:
    """What to train: a model, its loss and its data (see :mod:`edgefusion.training`)."""

    name: str
    architecture: str
    model_config: dict
    model: torch.nn.Module
    loss: LossFn
    dataset: Dataset
    metadata: dict = field(default_factory=dict)
    arguments: dict = field(default_factory=dict)


class Interrupted(Exception):
    """Raised by a hook to stop a run (tests use it to simulate a kill)."""


def lr_factor(step: int, train: TrainConfig) -> float:
    """Learning-rate multiplier at 0-based ``step``: linear warm-up, then ×gamma at each milestone."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    return train.gamma ** bisect.bisect_right(sorted(train.milestones), step)


def _amp(train: TrainConfig, device: torch.device):
    """(autocast context factory, GradScaler) for the recipe's precision on ``device``."""
    enabled = device.type == "cuda" and train.amp != "off"
    dtype = torch.float16 if train.amp == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=enabled and train.amp == "fp16")
    return (lambda: torch.autocast(device_type="cuda", dtype=dtype) if enabled else contextlib.nullcontext()), scaler


def _scalars(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach().float()) for k, v in terms.items()}


def _check_resume(payload: dict, stage: Stage, recipe_dict: dict, path: Path) -> None:
    if "training" not in payload:
        raise UserError(f"{path} holds no training state; cannot resume from it")
    if payload["architecture"] != stage.architecture or payload["config"] != stage.model_config:
        raise UserError(f"{path} was written for a different model ({payload['architecture']}, {payload['config']}); start a new run directory")
    _refuse_changes(path, "the recipe differs from the one the run started with", _flatten(payload["metadata"].get("recipe") or {}), _flatten(recipe_dict))
    refuse_changed_arguments(payload, stage.arguments, path)


def refuse_changed_arguments(payload: dict, arguments: dict[str, Any], path: Path) -> None:
    """UserError when ``arguments`` (:attr:`Stage.arguments`) differ from those stored in the checkpoint ``payload`` read from ``path``."""
    _refuse_changes(path, "the arguments differ from those the run started with", payload["metadata"].get("arguments") or {}, arguments)


def _refuse_changes(path: Path, what: str, stored: dict[str, Any], current: dict[str, Any]) -> None:
    """UserError ``cannot resume <path>: <what> (key: old -> new)`` for the first differing key; a key
    the stored run lacks passes while its current value is off (the run predates that option)."""
    differing = sorted(
        k for k in set(stored) | set(current)
        if stored.get(k) != current.get(k) and not (k not in stored and _is_off(current[k]))
    )
    if differing:
        raise UserError(f"cannot resume {path}: {what} ({differing[0]}: {stored.get(differing[0])!r} -> {current.get(differing[0])!r})")


def _is_off(value: Any) -> bool:
    """True for a recipe option's "off" value; a run started before the option existed ran with it off."""
    return value is None or value is False or (isinstance(value, (list, tuple, str, dict)) and not value)


def _flatten(recipe_dict: dict) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, table in recipe_dict.items() for key, value in table.items()}


def refuse_existing_run(run_dir: Path, final_name: str, place: ddp.Dist, *also: Path) -> None:
    """A new run (no ``--resume``) never overwrites one: one line when ``run_dir`` holds ``last.pt``,
    ``<final_name>.pt`` or any of ``also`` (checked on the main rank; callers check before long work)."""
    if place.main and any(p.exists() for p in (run_dir / "last.pt", run_dir / f"{final_name}.pt", *also)):
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")


def run_stage(
    stage: Stage,
    recipe: dict[str, Any],
    run_dir: str | Path,
    *,
    resume: bool = False,
    place: ddp.Dist | None = None,
    hooks: tuple[Callable[[int, dict[str, float] | None], None], ...] = (),
    progress: bool = True,
) -> Path:
    """Train ``stage`` with ``recipe["train"]``; returns ``RUN_DIR/<stage.name>.pt``.

    ``hooks`` are called on every rank after each optimizer step with
    ``(step, scalars)`` (``scalars`` is None on steps that are not logged).
    """
    place = place or ddp.Dist()
    train: TrainConfig = recipe["train"]
    run_dir = Path(run_dir)
    last_path, final_path = run_dir / "last.pt", run_dir / f"{stage.name}.pt"
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a folder")
    if train.batch_size % place.world:
        raise UserError(f"train.batch_size {train.batch_size} must be divisible by the number of processes ({place.world})")
    recipe_dict = recipe_to_dict(recipe)
    metadata = {**stage.metadata, "stage": stage.name, "recipe": recipe_dict, "arguments": dict(stage.arguments)}

    model = stage.model.to(place.device)
    if isinstance(stage.loss, torch.nn.Module):
        stage.loss.to(place.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, betas=tuple(train.betas), weight_decay=train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, train))
    autocast, scaler = _amp(train, place.device)

    start, elapsed_before = 0, 0.0
    if resume:
        if not last_path.is_file():
            raise UserError(f"--resume: no {last_path} to resume from")
        payload = read_checkpoint(last_path, map_location=place.device)
        _check_resume(payload, stage, recipe_dict, last_path)
        state = payload["training"]
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][place.rank])
        start, elapsed_before = int(state["step"]), float(state["elapsed_s"])
    else:
        refuse_existing_run(run_dir, stage.name, place)
        seed_all(train.seed * 1000 + place.rank)

    if place.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    runlog = RunLog(run_dir, start) if place.main else None
    net = DistributedDataParallel(model) if place.enabled else model
    sampler = StepBatchSampler(stage.dataset, train.batch_size // place.world, train.steps, train.seed, start, place.rank, place.world)
    loader = DataLoader(stage.dataset, batch_sampler=sampler, num_workers=train.num_workers, generator=torch.Generator(), pin_memory=place.device.type == "cuda")

    def checkpoint(step: int) -> None:
        rngs = [rng_state()]
        if place.enabled:
            rngs = [None] * place.world
            torch.distributed.all_gather_object(rngs, rng_state())
        if place.main:
            payload = model_payload(model, stage.architecture, stage.model_config, metadata)
            payload["training"] = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
                                   "elapsed_s": elapsed_before + time.monotonic() - began}
            save_checkpoint(last_path, payload)

    bar = tqdm(total=train.steps, initial=start, desc=stage.name, disable=not (progress and place.main), dynamic_ncols=True)
    began = time.monotonic()
    step = start
    model.train()
    try:
        for batch in loader:
            batch = {k: v.to(place.device, non_blocking=True) for k, v in batch.items()}
            with autocast():
                terms = stage.loss(net, batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["total"]).backward()
            if train.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            step += 1
            scalars = None
            if step % train.log_every == 0 or step in (1, train.steps):
                scalars = ddp.mean_over_ranks(_scalars(terms), place)
                if not torch.isfinite(torch.tensor(scalars["total"])):
                    raise UserError(f"the loss became non-finite at step {step} ({scalars}); lower train.lr or set train.amp = \"off\"")
                if runlog is not None:
                    runlog.write(step, lr, elapsed_before + time.monotonic() - began, scalars)
                bar.set_postfix({k: f"{v:.3g}" for k, v in scalars.items()}, refresh=False)
            bar.update(1)
            if step % train.checkpoint_every == 0 and step < train.steps:
                checkpoint(step)
            for hook in hooks:
                hook(step, scalars)
        checkpoint(step)
        if place.main:
            save_checkpoint(final_path, model_payload(model, stage.architecture, stage.model_config, metadata))
        ddp.barrier(place)
    finally:
        bar.close()
        if runlog is not None:
            runlog.close()
    return final_path

