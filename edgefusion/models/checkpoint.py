"""Model checkpoints: one ``.pt`` file that alone rebuilds a fusion model.

A checkpoint is a plain dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)``:

``format``        ``"edgefusion-checkpoint/1"``
``architecture``  registry name (:mod:`edgefusion.models`), e.g. ``"teacher"``
``config``        the architecture's config dict (plain values)
``state_dict``    model weights (float32, CPU)
``metadata``      plain dict: stage, objective, recipe, flags such as
                  ``language_objective_meaningful``
``training``      optional; optimizer/scheduler/RNG state of a resumable run
                  (written by :mod:`edgefusion.training.state`)

:class:`TorchFuser` runs such a checkpoint as a
:class:`edgefusion.runtime.frame.PlaneFuser`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefusion import preprocess
from edgefusion.errors import UserError, describe_os_error
from edgefusion.io.atomic import write_bytes
from edgefusion.models import build_model
from edgefusion.runtime.native import frame_stats_auto

FORMAT = "edgefusion-checkpoint/1"


def model_payload(model: torch.nn.Module, architecture: str, config: dict, metadata: dict | None = None) -> dict[str, Any]:
    """The checkpoint dict of ``model`` (weights copied to CPU)."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return {"format": FORMAT, "architecture": architecture, "config": dict(config), "state_dict": state, "metadata": dict(metadata or {})}


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically.

    Serialized in memory first: torch reports a failed file write (disk
    full) as an opaque RuntimeError, a plain file write as an ``OSError``.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint dict (``weights_only=True``); UserError when unusable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types (OSError included) for corrupt or foreign files
        reason = _file_problem(path)
        if reason is None and isinstance(exc, OSError):
            raise UserError(describe_os_error(exc, path, "cannot read checkpoint")) from None
        raise UserError(f"cannot read checkpoint {path}: {reason or _load_failure(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an edgefusion checkpoint (expected format {FORMAT})")
    check_fields(payload, str(path))
    return payload


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a ``torch.save`` file at all (empty, not a zip archive, truncated); None when it may be one."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        return "the file is empty"
    if head.startswith(b"\x80"):  # a pickle: torch's legacy format, torch's own reason applies
        return None
    if head != b"PK\x03\x04":
        return "not a checkpoint (not the zip archive that torch.save writes)"
    if not zipfile.is_zipfile(path):
        return "the file is truncated (a zip archive cut short)"
    return None


def _load_failure(exc: Exception) -> str:
    """Why torch could not load a file, without torch's advice to load it unsafely."""
    text = str(exc)
    if "Weights only load failed" in text:
        refused = re.search(r"WeightsUnpickler error:\s*([^\n]*?)(?: was not an allowed global.*)?$", text, re.MULTILINE)
        detail = refused.group(1).strip() if refused else ""
        if detail.startswith("Unsupported operand"):
            return f"not a checkpoint (its data is no valid pickle: {detail})"
        detail = f" ({detail})" if detail else ""
        return f"it holds Python objects that a safe (weights-only) load refuses{detail}; edgefusion checkpoints hold only tensors and plain values"
    return text.splitlines()[0] if text else type(exc).__name__


def check_fields(payload: dict[str, Any], source: str) -> None:
    """UserError unless the checkpoint's fields have the types the format promises."""
    expected = {"architecture": str, "config": dict, "state_dict": dict, "metadata": dict}
    for key, kind in expected.items():
        if key == "metadata" and key not in payload:
            continue  # optional
        if key not in payload:
            raise UserError(f"{source}: checkpoint lacks {key!r}")
        if not isinstance(payload[key], kind):
            raise UserError(f"{source}: checkpoint field {key!r} must be a {kind.__name__}, got {type(payload[key]).__name__}")
    bad = [k for k, v in payload["state_dict"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise UserError(f"{source}: state_dict entry {bad[0]!r} is not a named tensor")


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """UserError naming the first floating-point tensor of ``state`` that holds NaN or Inf."""
    for key, tensor in state.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{source}: weight {key} holds NaN or Inf values; the file is damaged or its training diverged")


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> torch.nn.Module:
    """Rebuild the model of a checkpoint dict, weights loaded, in eval mode.

    The model is first built on the ``meta`` device (no memory) and its
    parameter names and shapes compared with the weights, so a config asking
    for absurd sizes is refused before anything is allocated. Weights holding
    NaN or Inf are refused (every model load passes here).
    """
    check_fields(payload, source)
    check_finite(payload["state_dict"], source)
    architecture, state = payload["architecture"], payload["state_dict"]
    with torch.device("meta"):
        skeleton = build_model(architecture, payload["config"])
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if expected != found:
        raise UserError(f"{source}: weights do not match architecture {architecture!r} with its config: {_first_difference(expected, found)}")
    model = build_model(architecture, payload["config"])
    model.load_state_dict(state)
    return model.eval()


def _first_difference(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """The first missing, unexpected or differently shaped weight, in words."""
    for key in expected:
        if key not in found:
            return f"missing {key}"
        if expected[key] != found[key]:
            return f"{key} is {list(found[key])}, the config makes it {list(expected[key])}"
    return f"unexpected {next(k for k in found if k not in expected)}"


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """(model on ``device`` in eval mode, checkpoint dict) of a checkpoint file."""
    payload = read_checkpoint(path)
    return model_from_payload(payload, str(path)).to(device), payload


def input_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The model's ``forward`` inputs in order: its ``inputs`` attribute, default ``("ir", "vis")``;
    v2 students take ``("ir", "vis", "stats")`` (stats: :mod:`edgefusion.runtime.frame_stats`)."""
    return tuple(getattr(model, "inputs", ("ir", "vis")))


def check_min_size(model: torch.nn.Module, height: int, width: int, what: str) -> None:
    """UserError when an H x W frame is smaller than the model's ``min_size`` attribute (default 1) allows."""
    side = int(getattr(model, "min_size", 1))
    if height < side or width < side:
        raise UserError(f"{what} needs frames of at least {side}x{side} pixels, got {height}x{width} (HxW)")


class TorchFuser:
    """A checkpoint as a :class:`~edgefusion.runtime.frame.PlaneFuser` (PyTorch, float32)."""

    def __init__(self, model: torch.nn.Module, name: str, device: str | torch.device = "cpu", metadata: dict | None = None):
        self.model = model.eval().to(device)
        self.name = name
        self.device = torch.device(device)
        self.stride = int(getattr(model, "stride", 1))
        self.metadata = dict(metadata or {})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "TorchFuser":
        """Open a ``.pt`` checkpoint written by ``edgefusion train``."""
        return cls.from_payload(read_checkpoint(path), path, device)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: str | os.PathLike, device: str | torch.device = "cpu", warn: bool = True) -> "TorchFuser":
        """:meth:`load` of a checkpoint dict already read from ``path`` (named after the file); ``warn=False`` leaves the
        not-meaningful-objective warning to the caller (after its other input checks, so an input error is the only line)."""
        from edgefusion.models.provenance import provenance_of, warn_if_not_meaningful

        model = model_from_payload(payload, str(path)).to(device)
        if warn:
            warn_if_not_meaningful(provenance_of(payload), Path(path).name)
        return cls(model, name=Path(path).stem, device=device, metadata=payload.get("metadata"))

    @torch.no_grad()
    def fuse_planes(self, ir: np.ndarray, vis_y: np.ndarray) -> np.ndarray:
        """Fuse (H, W) float32 planes in [0, 1]; pads to the model stride and crops back."""
        if ir.shape != vis_y.shape or ir.ndim != 2:
            raise UserError(f"IR and visible planes must be equal 2-D shapes, got {ir.shape} and {vis_y.shape}")
        h, w = ir.shape
        check_min_size(self.model, h, w, f"model {self.name}")
        tensors = [torch.from_numpy(np.ascontiguousarray(preprocess.pad_to_multiple(p, self.stride), dtype=np.float32))[None, None].to(self.device) for p in (ir, vis_y)]
        if "stats" in getattr(self.model, "inputs", ()):  # v2 student: statistics of the whole unpadded frame (C kernels when built)
            tensors.append(torch.from_numpy(frame_stats_auto(ir, vis_y))[None].to(self.device))
        fused = self.model(*tensors)[0, 0, :h, :w].float()
        inputs = {t.untyped_storage().data_ptr() for t in tensors}  # from_numpy shares the caller's planes: never clamp those
        fused = fused.clamp(0.0, 1.0) if fused.untyped_storage().data_ptr() in inputs else fused.clamp_(0.0, 1.0)
        return np.ascontiguousarray(fused.cpu().numpy())
