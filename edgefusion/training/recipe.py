"""TOML training recipes: typed sections with defaults, validated into one-line UserErrors.

A recipe is a TOML file whose top-level tables are *sections*. Each section
is described by a dataclass; every field has a default, so a recipe names only
what it changes. Field constraints and their checks: :mod:`edgefusion.config`.

Unknown sections, unknown keys, wrong types and out-of-range values raise
:class:`~edgefusion.errors.UserError` naming the file, the key and the rule.
:func:`recipe_to_dict` turns a loaded recipe back into plain dicts (for
checkpoints, which are read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefusion.config import bounded, parse_section
from edgefusion.errors import UserError
from edgefusion.resources import resource_dir


@dataclass
class TrainConfig:
    """The optimization schedule shared by every stage (``[train]``)."""

    steps: int = bounded(1000, min=1)
    batch_size: int = bounded(16, min=1)  # global batch; split evenly over DDP ranks
    lr: float = bounded(1e-4, min=0.0)
    betas: list[float] = bounded([0.9, 0.999], min=0.0, max=1.0)
    weight_decay: float = bounded(0.0, min=0.0)
    warmup_steps: int = bounded(0, min=0)  # linear ramp from lr/warmup to lr
    milestones: list[int] = bounded([], min=1)  # steps where lr is multiplied by gamma
    gamma: float = bounded(0.5, min=0.0, max=1.0)
    grad_clip: float = bounded(0.0, min=0.0)  # max grad norm; 0 disables clipping
    amp: str = bounded("bf16", choices=("off", "bf16", "fp16"))  # CUDA only; CPU runs fp32
    checkpoint_every: int = bounded(500, min=1)
    log_every: int = bounded(10, min=1)
    seed: int = bounded(0, min=0)
    num_workers: int = bounded(0, min=0)


@dataclass
class DataConfig:
    """Training crops and their augmentation (``[data]``); geometry is shared by IR and visible."""

    crop: int = bounded(224, min=8)  # square crop side in pixels
    scale_jitter: float = bounded(0.05, min=0.0, max=0.5)  # zoom factor drawn in 1 ± scale_jitter
    rotate_deg: float = bounded(3.0, min=0.0, max=45.0)
    shear_deg: float = bounded(2.0, min=0.0, max=30.0)
    translate: float = bounded(0.02, min=0.0, max=0.5)  # fraction of the crop side
    hflip: float = bounded(0.5, min=0.0, max=1.0)  # probability
    vflip: float = bounded(0.0, min=0.0, max=1.0)  # probability
    min_std: float = bounded(0.0, min=0.0, max=0.5)  # re-draw a crop where either plane's std is below (paper: 0.05)
    cache: bool = True  # keep decoded, prepared planes in memory


def find_recipe(spec: str | os.PathLike) -> Path:
    """A recipe path: an existing file, else a name in the packaged ``train/`` folder."""
    path = Path(spec)
    if path.is_file():
        return path
    packaged = resource_dir("train") / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if packaged.is_file():
        return packaged
    raise UserError(f"recipe not found: {spec} (also looked for {packaged})")


def load_recipe(spec: str | os.PathLike, sections: dict[str, type]) -> dict[str, Any]:
    """Read a recipe file into ``{section: dataclass instance}``; absent sections take defaults."""
    path = find_recipe(spec)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot parse recipe {path}: {exc}") from None
    return recipe_from_dict(data, sections, where=path.name)


def recipe_from_dict(data: dict, sections: dict[str, type], where: str = "recipe") -> dict[str, Any]:
    """Validate an already-parsed recipe mapping (see :func:`load_recipe`)."""
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise UserError(f"{where}: unknown section [{unknown[0]}] (known: {', '.join(sections)})")
    return {name: parse_section(cls, data.get(name, {}), f"{where}: {name}") for name, cls in sections.items()}


def recipe_to_dict(recipe: dict[str, Any]) -> dict[str, dict]:
    """Plain nested dicts of a loaded recipe (safe for ``weights_only`` checkpoints)."""
    return {name: dataclasses.asdict(section) for name, section in recipe.items()}
