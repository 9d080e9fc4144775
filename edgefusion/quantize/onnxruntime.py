"""Static INT8 quantization of an ONNX model with ONNX Runtime's ``quantize_static`` (QDQ format).

Defaults (the ``onnx`` target): uint8 activations (asymmetric), int8 weights
with per-channel symmetric scales (axis 0 of Conv weights), MinMax calibration.
:mod:`edgefusion.quantize.tensorrt` reuses :func:`quantize_qdq` with symmetric
int8 activations and float biases, as TensorRT's explicit quantization wants.

Calibration keeps the quantized ops' tensors of every frame in memory (about
0.1 GB per 1080x1920 frame), so full-HD targets use few calibration frames.

Only the op types in ``ops`` are quantized; Conv nodes whose weights belong to
one of the ``keep_float`` student modules (e.g. ``head``, ``up``; matched by
the weight initializer name ``[...].<module>.<param>``) stay in float.

A graph input that a quantized op reads directly (the IR and visible planes
feed a v2 student's stem convolutions, when a target quantizes them) gets one
Q/DQ pair, which ``quantize_static`` hands to every reader;
:func:`float_inputs_for_float_ops` gives the float readers (the
full-resolution composition) the float input back. With symmetric int8
activations (scale 1/127 for [0, 1]) quantized planes in the composition cost
18.7 % Qabf on an LD-Lite student (jetson, 1080x1920).
"""

from __future__ import annotations

from pathlib import Path

from edgefusion.quantize.calibration import Frame


def keep_float_nodes(model, modules: tuple[str, ...]) -> list[str]:
    """Names of nodes whose weight initializers belong to one of ``modules`` (see :func:`in_modules`)."""
    initializers = {init.name for init in model.graph.initializer}
    return [node.name for node in model.graph.node if any(name in initializers and in_modules(name, modules) for name in node.input)]


def in_modules(parameter: str, modules: tuple[str, ...]) -> bool:
    """Whether a parameter name (``head.weight``, ``student.head.bias``) belongs to one of ``modules``."""
    parts = parameter.split(".")[:-1]
    return any(m in parts for m in modules)


def int8_layers(model, ops: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(quantized, float) node names of the ``ops``-type nodes: quantized ones read a DequantizeLinear output."""
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    quantized, kept = [], []
    for node in model.graph.node:
        if node.op_type in ops:
            (quantized if producers.get(node.input[0]) == "DequantizeLinear" else kept).append(node.name)
    return quantized, kept


def float_inputs_for_float_ops(model, ops: tuple[str, ...]) -> int:
    """Rewire readers of a dequantized GRAPH INPUT that are not of a quantized type (``ops``) to the float input;
    returns how many inputs of nodes were rewired. Unused Q/DQ nodes are left for the engine to drop."""
    producers = {out: node for node in model.graph.node for out in node.output}
    graph_inputs = {i.name for i in model.graph.input}
    source = {}  # DequantizeLinear output -> the graph input it dequantizes
    for node in model.graph.node:
        quantize = producers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if quantize is not None and quantize.op_type == "QuantizeLinear" and quantize.input[0] in graph_inputs:
            source[node.output[0]] = quantize.input[0]
    rewired = 0
    for node in model.graph.node:
        if node.op_type in ops or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for k, name in enumerate(node.input):
            if name in source:
                node.input[k] = source[name]
                rewired += 1
    return rewired


def quantize_qdq(
    fp32_path: Path,
    out_path: Path,
    frames: list[Frame],
    ops: tuple[str, ...] = ("Conv",),
    keep_float: tuple[str, ...] = (),
    symmetric_activations: bool = False,
) -> dict:
    """Write the QDQ INT8 model of ``fp32_path`` to ``out_path``; returns the manifest's ``quantization`` entry."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32_path))
    names = tuple(i.name for i in model.graph.input)  # ir, vis and, for v2 students, stats

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(frames)

        def get_next(self):
            frame = next(self._items, None)
            return None if frame is None else frame.inputs(names)

    excluded = keep_float_nodes(model, keep_float)
    # (not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops the collected batches instead of merging them)
    extra = {"WeightSymmetric": True, "ActivationSymmetric": symmetric_activations}
    if symmetric_activations:
        extra.update({"QuantizeBias": False, "QDQKeepRemovableActivations": True})
    quantize_static(
        str(fp32_path),
        str(out_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(ops),
        per_channel=True,
        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options=extra,
    )
    quantized = onnx.load(str(out_path))
    if float_inputs_for_float_ops(quantized, ops):
        onnx.save(quantized, str(out_path))
    int8, kept = int8_layers(quantized, ops)
    return {
        "method": "onnxruntime.quantization.quantize_static (QDQ, MinMax)",
        "calibration_frames": len(frames),
        "activations": "int8 symmetric" if symmetric_activations else "uint8 asymmetric",
        "weights": "int8 symmetric per-channel",
        "bias": "float" if symmetric_activations else "int32",
        "quantized_ops": list(ops),
        "int8_layers": int8,
        "kept_float": {"modules": list(keep_float), "layers": kept, "ops": "every op type not listed in quantized_ops"},
    }
