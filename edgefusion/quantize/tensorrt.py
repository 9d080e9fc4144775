"""Explicitly quantized ONNX for TensorRT (Jetson) with ONNX Runtime's quantizer.

``quantize_static`` in QDQ format with symmetric int8 activations and weights
(zero points 0), per-channel Conv weight scales, float biases and removable
activations kept (``extra_options``); the result is then verified with
:func:`edgefusion.convert.tensorrt.check_explicit_quantization`.
"""

from __future__ import annotations

from pathlib import Path

from edgefusion.convert.tensorrt import check_explicit_quantization
from edgefusion.errors import UserError
from edgefusion.quantize.calibration import Frame
from edgefusion.quantize.onnxruntime import quantize_qdq


def quantize_for_tensorrt(fp32_path: Path, out_path: Path, frames: list[Frame], ops: tuple[str, ...], keep_float: tuple[str, ...]) -> dict:
    """Write the Q/DQ model of fixed-shape ``fp32_path`` to ``out_path``; returns the ``quantization`` entry."""
    import onnx

    info = quantize_qdq(fp32_path, out_path, frames, ops=ops, keep_float=keep_float, symmetric_activations=True)
    problems = check_explicit_quantization(onnx.load(str(out_path)), ops)
    if problems:
        raise UserError(f"the Q/DQ graph is not TensorRT-ready: {problems[0]} ({len(problems)} problem(s))")
    info["format"] = "explicit quantization (Q/DQ), TensorRT-ready: symmetric int8, zero points 0"
    return info
