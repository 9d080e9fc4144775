"""FP32 OpenVINO IR (``model.xml`` + ``model.bin``) from an exported ONNX graph.

``openvino.convert_model`` reads the ONNX file written by
:func:`edgefusion.convert.onnx.export_onnx` (names ``ir``, ``vis``, ``fused``
and the dynamic or fixed shape carry over); weights are saved in FP32
(``compress_to_fp16=False``) so the IR is the exact FP32 reference.
"""

from __future__ import annotations

from pathlib import Path

from edgefusion.errors import UserError
from edgefusion.optional import require


def onnx_to_openvino(onnx_path: Path):
    """The ``openvino.Model`` of an ONNX file; UserError when OpenVINO cannot convert it."""
    ov = require("openvino", "openvino")
    try:
        return ov.convert_model(str(onnx_path))
    except Exception as exc:  # OpenVINO raises several types for unsupported graphs
        raise UserError(f"OpenVINO cannot convert {onnx_path.name}: {str(exc).strip().splitlines()[0]}") from None


def save_openvino(model, xml_path: Path) -> dict[str, Path]:
    """Save an ``openvino.Model`` as ``xml_path`` + its ``.bin``; returns the bundle roles."""
    ov = require("openvino", "openvino")
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return {"model": xml_path, "weights": xml_path.with_suffix(".bin")}
