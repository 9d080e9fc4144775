"""INT8 quantization of an OpenVINO model with NNCF (OpenVINO backend of NNCF, not its torch backend).

Only op types listed in the target's ``ops`` (ONNX names, mapped to OpenVINO
types) are quantized; every other op type is in NNCF's ignored scope, and so
are the convolutions of the ``keep_float`` student modules (found through
their weight constants, named ``<module>.<param>`` by the ONNX export).
Quantizing the full-resolution adds/multiplies of the composition cost
quality (37 dB instead of 57-59 dB vs FP32) and speed on a prototype.

When the plain result misses the target's PSNR gate, :func:`quantize_openvino`
reruns with ``nncf.quantize_with_accuracy_control``: the metric is the negated
mean squared error against the FP32 outputs, and the allowed absolute drop is
the MSE at the gate's PSNR.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from edgefusion.optional import require
from edgefusion.quantize.calibration import Frame
from edgefusion.quantize.onnxruntime import in_modules

#: ONNX op type -> OpenVINO op type, for the target's ``quantization.ops``.
ONNX_TO_OPENVINO = {
    "Conv": "Convolution",
    "Add": "Add",
    "Mul": "Multiply",
    "Sub": "Subtract",
    "AveragePool": "AvgPool",
    "Concat": "Concat",
    "Resize": "Interpolate",
    "MatMul": "MatMul",
}
_NEVER_IGNORED = {"Parameter", "Result", "Constant"}


def ignored_scope(model, ops: tuple[str, ...], keep_float: tuple[str, ...]):
    """NNCF ``IgnoredScope``: every op type not in ``ops`` plus the ops whose weights belong to ``keep_float`` modules."""
    nncf = require("nncf", "quantize")
    quantized = {ONNX_TO_OPENVINO.get(op, op) for op in ops}
    present = {op.get_type_name() for op in model.get_ops()}
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in quantized:
            sources = [op.input_value(i).get_node() for i in range(op.get_input_size())]
            if any(s.get_type_name() == "Constant" and in_modules(s.get_friendly_name(), keep_float) for s in sources):
                names.append(op.get_friendly_name())
    return nncf.IgnoredScope(names=names, types=sorted(present - quantized - _NEVER_IGNORED), validate=False)


def int8_layers(model, ops: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(quantized, float) names of the ``ops``-type layers: quantized ones read a FakeQuantize output."""
    types = {ONNX_TO_OPENVINO.get(op, op) for op in ops}
    quantized, kept = [], []
    for op in model.get_ordered_ops():
        if op.get_type_name() in types:
            fed = op.input_value(0).get_node().get_type_name() == "FakeQuantize"
            (quantized if fed else kept).append(op.get_friendly_name())
    return quantized, kept


def _feeds(model) -> Callable[[Frame], dict[str, np.ndarray]]:
    """Frame -> the inputs ``model`` takes, by name (``ir``, ``vis`` and, for v2 students, ``stats``)."""
    names = tuple(i.get_any_name() for i in model.inputs)
    return lambda frame: frame.inputs(names)


def quantize_openvino(
    model,
    frames: list[Frame],
    ops: tuple[str, ...],
    keep_float: tuple[str, ...],
    passes: Callable[[object], bool],
    accuracy_control: bool,
    validation: list[tuple[Frame, np.ndarray]],
    min_psnr_db: float,
    to_fused: Callable[[np.ndarray, Frame], np.ndarray] | None = None,
) -> tuple[object, dict]:
    """(INT8 ``openvino.Model``, ``quantization`` manifest entry).

    ``passes(model)`` says whether a quantized model meets the gate; when it
    does not and ``accuracy_control`` is set, accuracy-aware quantization runs,
    calibrated on ``frames`` and validated on ``validation`` (frame, FP32 output
    (1, 1, H, W)) pairs;
    ``to_fused(output, frame)`` turns the model's output into the fused luma
    (default: the output itself, for models that output ``fused``).
    """
    nncf = require("nncf", "quantize")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    nncf.set_log_level(logging.WARNING)
    scope = ignored_scope(model, ops, keep_float)
    _inputs = _feeds(model)
    dataset = nncf.Dataset(frames, _inputs)
    # activation ranges from the min/max over all frames (NNCF's default averages per-frame extremes,
    # which clipped an outlier frame to 24.6 dB on a trained student; MINMAX gave 55.6 dB)
    advanced = nncf.AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    common = {"subset_size": len(frames), "ignored_scope": scope, "preset": nncf.QuantizationPreset.PERFORMANCE}
    quantized = nncf.quantize(model, dataset, advanced_parameters=advanced, **common)
    info = {
        "method": "nncf.quantize (OpenVINO backend, performance preset: symmetric int8, MINMAX activation ranges)",
        "calibration_frames": len(frames),
        "activations": "int8 symmetric per tensor",
        "weights": "int8 symmetric per-channel",
        "quantized_ops": [ONNX_TO_OPENVINO.get(op, op) for op in ops],
        "kept_float": {"modules": list(keep_float), "op_types": list(scope.types)},
        "accuracy_control": False,
    }
    if passes(quantized) or not accuracy_control:
        return quantized, _layers(info, quantized, ops)
    validation_set = nncf.Dataset(validation, lambda item: _inputs(item[0]))

    def validate(compiled, data) -> tuple[float, list[float]]:
        errors = []
        for frame, reference in data:
            out = compiled(_inputs(frame))[compiled.output(0)]
            fused = to_fused(out, frame) if to_fused else out
            errors.append(-float(np.mean((np.clip(fused, 0.0, 1.0) - reference) ** 2)))
        return float(np.mean(errors)), errors

    quantized = nncf.quantize_with_accuracy_control(
        model,
        dataset,
        validation_set,
        validate,
        max_drop=10.0 ** (-min_psnr_db / 10.0),
        drop_type=nncf.DropType.ABSOLUTE,
        advanced_quantization_parameters=advanced,
        **common,
    )
    info["method"] = "nncf.quantize_with_accuracy_control (OpenVINO backend; metric: -MSE vs FP32)"
    info["accuracy_control"] = True
    return quantized, _layers(info, quantized, ops)


def _layers(info: dict, model, ops: tuple[str, ...]) -> dict:
    info["int8_layers"], info["kept_float"]["layers"] = int8_layers(model, ops)
    return info
