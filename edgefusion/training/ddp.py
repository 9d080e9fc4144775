"""Distributed data parallel setup for runs started with ``torchrun``.

``torchrun --nproc_per_node=N -m edgefusion train ...`` sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; :func:`setup` then joins the process group (NCCL
on CUDA, gloo on CPU) and picks this rank's device. Without those variables
the run is a single process. Only rank 0 writes files or shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgefusion.errors import UserError


@dataclass(frozen=True)
class Dist:
    """This process's place in the run."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def resolve_device(spec: str | None) -> torch.device:
    """``auto`` / None -> CUDA when available else CPU; otherwise the named device, checked."""
    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise UserError(f"invalid --device {spec!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {spec} requested but CUDA is not available")
    return device


def setup(device: str | None = None) -> Dist:
    """Join the torchrun process group when launched by torchrun; return this rank's placement."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    base = resolve_device(device)
    if world <= 1:
        return Dist(0, 1, base)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if base.type == "cuda":
        base = torch.device("cuda", local)
        torch.cuda.set_device(base)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo")
    return Dist(rank, world, base)


def cleanup(place: Dist) -> None:
    """Leave the process group (no-op for single-process runs)."""
    if place.enabled and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: dict[str, float], place: Dist) -> dict[str, float]:
    """Average scalar logs over ranks (identity when single-process)."""
    if not place.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=place.device)
    dist.all_reduce(tensor)
    return {k: float(v) / place.world for k, v in zip(keys, tensor.tolist())}


def barrier(place: Dist) -> None:
    if place.enabled:
        dist.barrier()
