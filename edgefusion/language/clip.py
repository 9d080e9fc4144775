"""Loading a frozen CLIP model (open_clip) without ever touching the network.

Weights are one of:

* an open_clip pretrained *tag* (``openai``, ``laion2b_s34b_b79k``, ...) used
  only when its file is already in the local cache (Hugging Face hub cache or
  open_clip's ``~/.cache/clip``); ``HF_HUB_OFFLINE=1`` is set so nothing
  downloads;
* a local ``.pt`` / ``.bin`` / ``.safetensors`` file;
* ``random``: random init. Any language loss computed with it is meaningless
  (useful for tests, smoke runs and throughput benchmarks only).

:func:`resolve_weights` checks this in milliseconds, before any run directory
exists; a missing file is a :class:`~edgefusion.errors.UserError` (exit 2)
saying what was looked for and how to provide it.

``edgefusion-tiny-clip`` (registered from ``model_configs/``) is a 2-layer,
width-64, 32-px CLIP for tests and smoke runs; its language loss is always
flagged meaningless.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgefusion.errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

log = logging.getLogger(__name__)

TINY_CLIP = "edgefusion-tiny-clip"
RANDOM = "random"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


@dataclass
class ClipConfig:
    """The recipe's ``[clip]`` section (``--clip-model`` / ``--clip-weights`` override it)."""

    model: str = "ViT-B-32"
    weights: str = "openai"  # open_clip tag (cached), local weights file, or "random"


@dataclass(frozen=True)
class ClipWeights:
    """Where a CLIP model's weights come from (validated, local)."""

    model: str
    path: Path | None  # None: random init
    tag: str | None
    quick_gelu: bool
    mean: tuple[float, float, float] | None  # the tag's normalization, when it has one
    std: tuple[float, float, float] | None

    @property
    def meaningful(self) -> bool:
        """False for random weights and for the tiny test CLIP: the language objective then has no meaning."""
        return self.path is not None and self.model != TINY_CLIP

    def describe(self) -> str:
        if not self.meaningful:
            return f"{self.model} with RANDOM weights" if self.path is None else f"{self.model} (test model) weights from {self.path}"
        return f"{self.model} weights {self.tag or ''} from {self.path}".replace("  ", " ")


def _open_clip():
    from edgefusion.optional import require

    open_clip = require("open_clip", "train")
    if TINY_CLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)
    return open_clip


def _cached_tag_files(cfg: dict) -> tuple[Path | None, list[str]]:
    """(the cached weights file of a pretrained-tag config or None, the places looked at)."""
    looked: list[str] = []
    if cfg.get("file"):
        looked.append(str(cfg["file"]))
        if Path(cfg["file"]).is_file():
            return Path(cfg["file"]), looked
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE

        repo, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            looked.append(f"hf-hub {repo}/{name} in {HF_HUB_CACHE}")
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit), looked
    if cfg.get("url"):
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        looked.append(str(local))
        if local.is_file():
            return local, looked
    return None, looked


def resolve_weights(model: str, weights: str | None) -> ClipWeights:
    """Validate a CLIP model name + weights spec against local files only (fast, no network)."""
    open_clip = _open_clip()
    if model not in open_clip.list_models():
        raise UserError(f"unknown CLIP model {model!r} (open_clip models include ViT-B-32, ViT-B-16, ViT-L-14, {TINY_CLIP})")
    weights = (weights or "").strip()
    if weights.lower() == RANDOM:
        return ClipWeights(model, None, None, False, None, None)
    if not weights:
        raise UserError(f"no CLIP weights given for {model}; pass --clip-weights TAG|FILE (or set [clip] weights in the recipe)")
    path = Path(os.path.expanduser(weights))
    if path.suffix.lower() in WEIGHT_SUFFIXES or os.sep in weights or path.exists():
        if not path.is_file():
            raise UserError(f"CLIP weights file not found: {path} (--clip-weights takes an open_clip tag or a .pt/.bin/.safetensors file)")
        return ClipWeights(model, path, None, False, None, None)
    if model == TINY_CLIP:
        raise UserError(f"{TINY_CLIP} is a test model without pretrained tags; use --clip-weights random or a weights file")
    cfg = open_clip.get_pretrained_cfg(model, weights)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise UserError(f"unknown CLIP weights {weights!r} for {model}: not a file, and not an open_clip tag (tags: {', '.join(tags) or 'none'})")
    found, looked = _cached_tag_files(cfg)
    if found is None:
        raise UserError(
            f"CLIP weights {model}/{weights} are not in the local cache (looked for: {'; '.join(looked)}); downloads are disabled. "
            f"Copy the file there from a connected machine, pass --clip-weights /path/to/weights.safetensors, "
            f"or train with objective.kind = \"pixel\" (not the paper's objective)"
        )
    mean, std = cfg.get("mean"), cfg.get("std")
    return ClipWeights(model, found, weights, bool(cfg.get("quick_gelu", False)), tuple(mean) if mean else None, tuple(std) if std else None)


@dataclass
class Clip:
    """A frozen CLIP: ``model`` (eval, no grad), ``tokenizer``, input ``image_size`` and normalization."""

    model: object
    tokenizer: object
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: ClipWeights


def load_clip(weights: ClipWeights) -> Clip:
    """Build the CLIP model described by validated ``weights`` on the CPU, frozen."""
    open_clip = _open_clip()
    try:
        model = open_clip.create_model(
            weights.model,
            pretrained=str(weights.path) if weights.path else None,
            force_quick_gelu=weights.quick_gelu,
            weights_only=True,
        )
        tokenizer = open_clip.get_tokenizer(weights.model)
    except Exception as exc:  # open_clip raises RuntimeError/KeyError/OSError for bad files
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot load CLIP {weights.describe()}: {message}") from None
    model.eval().requires_grad_(False)
    pre = getattr(model.visual, "preprocess_cfg", {})
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    if not weights.meaningful:
        log.warning("CLIP %s: THE LANGUAGE LOSS HAS NO MEANING in this run (checkpoints record language_objective_meaningful = false)", weights.describe())
    return Clip(
        model=model,
        tokenizer=tokenizer,
        image_size=int(size),
        mean=tuple(weights.mean or pre.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(weights.std or pre.get("std", open_clip.OPENAI_DATASET_STD)),
        weights=weights,
    )
