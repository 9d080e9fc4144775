"""FP32 LiteRT (``.tflite``) conversion with litert-torch (no TensorFlow needed).

The model is wrapped with ``litert_torch.to_channel_last_io`` so the file takes
and returns NHWC tensors ``(1, H, W, 1)`` (a reshape of the NCHW contract for
one channel) and is converted for ONE fixed shape: with litert-torch 0.10,
dynamic shapes on a model that concatenates its inputs gave silently wrong
output, so every conversion is checked against PyTorch by the caller.
The signature's inputs are ``args_0`` (ir) and ``args_1`` (vis) in forward order,
plus ``args_2`` (stats, (1, 6), not transposed) for models that take frame statistics.
"""

from __future__ import annotations

from pathlib import Path

from edgefusion.errors import UserError
from edgefusion.io.atomic import atomic_path
from edgefusion.optional import require
from edgefusion.quiet import quiet

SIGNATURE = "serving_default"
INPUT_NAMES = ("args_0", "args_1", "args_2")


def export_tflite(model, path: Path, shape: tuple[int, int]) -> Path:
    """Convert ``model(ir, vis[, stats]) -> fused`` at fixed ``shape`` (H, W) to an NHWC ``.tflite`` at ``path``."""
    from edgefusion.convert.onnx import example_inputs

    require("torch", "train")
    with quiet(native=True):  # importing it prints absl/oneDNN notes on stderr
        litert_torch = require("litert_torch", "quantize")
    stride = int(getattr(model, "stride", 1))
    height, width = shape
    if height % stride or width % stride:
        raise UserError(f"LiteRT shape {height}x{width} (HxW) must be a multiple of the model stride {stride}")
    litert_torch.config.show_progress = False
    wrapped = litert_torch.to_channel_last_io(model.eval(), args=[0, 1], outputs=[0]).eval()
    example = example_inputs(model, (height, width), channels_last=True)
    try:
        with quiet(native=True):  # absl/oneDNN/converter notes on stderr
            converted = litert_torch.convert(wrapped, example)
    except Exception as exc:  # the converter raises many types; report it as one line
        raise UserError(f"litert-torch conversion failed: {str(exc).strip().splitlines()[0]}") from None
    with atomic_path(path) as tmp, quiet(native=True):
        converted.export(str(tmp))
    return Path(path)
