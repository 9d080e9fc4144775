"""TensorRT: explicitly quantized (Q/DQ) ONNX checks and engine building.

TensorRT's explicit quantization wants: int8 activations and weights,
symmetric (every zero point 0), per-channel weight scales (axis 0 for Conv),
float biases (not quantized), a Q/DQ pair on every activation input of a
quantized op (both inputs of an Add), opset >= 13 and, for edgefusion's Jetson
bundles, a fixed input shape. :func:`check_explicit_quantization` verifies all
of it on the ONNX graph; :func:`build_engine` turns the graph into a serialized
engine with the TensorRT Python API (Q/DQ layers run INT8, the float rest may
run FP16); :func:`trtexec_command` is the equivalent command line;
:func:`check_engine_file` refuses a prebuilt engine that is certainly something else.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from edgefusion.errors import UserError

#: Op types whose inputs are quantized when fed by DequantizeLinear.
QUANTIZED_OP_TYPES = ("Conv", "Add", "Mul", "Concat", "AveragePool", "MatMul")


def check_explicit_quantization(model, ops: tuple[str, ...] = QUANTIZED_OP_TYPES) -> list[str]:
    """Problems that keep ``model`` (ONNX ModelProto) from being a TensorRT Q/DQ graph; empty when fine.

    Nodes of the types in ``ops`` (the quantization recipe's op types) that read a DequantizeLinear
    output must have a Q/DQ pair on every activation input; nodes of other types may read a
    DequantizeLinear output and run in float (e.g. a v2 student's float Concat of quantized
    stem features with float statistics-normalized ones).
    """
    from onnx import numpy_helper

    problems = []
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < 13:
        problems.append(f"opset {opset} < 13")
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            problems.append(f"input {value.name} has a dynamic shape")
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if len(node.input) < 3 or node.input[2] not in inits:
                problems.append(f"{node.name}: no constant zero point")
                continue
            zero = inits[node.input[2]]
            if zero.dtype != np.int8 or np.any(zero != 0):
                problems.append(f"{node.name}: zero point must be int8 0, got {zero.dtype} {np.unique(zero)[:3]}")
    quantized = 0
    for node in model.graph.node:
        if node.op_type not in ops:
            continue
        sources = [producers.get(name) for name in node.input if name]
        is_dq = [s is not None and s.op_type == "DequantizeLinear" for s in sources]
        if not any(is_dq):
            continue
        quantized += 1
        activations = node.input[:1] if node.op_type == "Conv" else node.input  # Conv: input 1 is the weight
        for name in activations:
            if not name or name in inits:
                continue
            source = producers.get(name)
            pair = source is not None and source.op_type == "DequantizeLinear" and getattr(producers.get(source.input[0]), "op_type", "") == "QuantizeLinear"
            if not pair:
                problems.append(f"{node.name}: activation input {name} has no Q/DQ pair")
        if node.op_type == "Conv":
            problems.extend(_check_conv_weight(node, producers, inits))
    if quantized == 0:
        problems.append("no quantized operator (no DequantizeLinear feeds any op)")
    return problems


def _check_conv_weight(node, producers, inits) -> list[str]:
    weight_dq = producers.get(node.input[1])
    if weight_dq is None or weight_dq.op_type != "DequantizeLinear" or weight_dq.input[0] not in inits:
        return [f"{node.name}: weight is not a DequantizeLinear of an int8 constant"]
    weight = inits[weight_dq.input[0]]
    scale = inits.get(weight_dq.input[1])
    axis = next((a.i for a in weight_dq.attribute if a.name == "axis"), 1)
    problems = []
    if weight.dtype != np.int8:
        problems.append(f"{node.name}: weight stored as {weight.dtype}, not int8")
    if scale is None or scale.ndim != 1 or scale.shape[0] != weight.shape[0] or axis != 0:
        problems.append(f"{node.name}: weight scales are not per output channel (axis 0)")
    if len(node.input) > 2 and node.input[2] and node.input[2] not in inits:
        source = producers.get(node.input[2])
        if source is not None and source.op_type == "DequantizeLinear":
            problems.append(f"{node.name}: bias is quantized")
    return problems


#: Bytes of a text file: printable ASCII, tab, newlines, form feed and every byte of a UTF-8 sequence.
_TEXT_BYTES = bytes([9, 10, 12, 13, *range(32, 127), *range(128, 256)])
#: ONNX files are a protobuf ModelProto: ``ir_version`` (field 1) first, then one of fields 2-7.
_ONNX_SECOND_TAGS = b"\x12\x1a\x22\x28\x32\x3a"


def check_engine_file(path: Path) -> None:
    """UserError unless ``path`` is plausibly a serialized TensorRT engine (a plan, e.g. from ``trtexec --saveEngine``).

    TensorRT documents no file signature (TensorRT 8 and 10 plans start with ``ftrt``; other headers are
    reported for other versions), so this refuses only files that are certainly something else: missing,
    empty, a ZIP archive (a bundle, a PyTorch checkpoint), an ONNX or TFLite model, or text (JSON, XML, a
    trtexec log). Any other binary file passes; whether TensorRT deserializes it (its version, the GPU it
    was built for) shows only when the bundle is opened on the device.
    """
    if not path.is_file():
        raise UserError(f"engine file not found: {path}")
    with path.open("rb") as stream:
        other = _not_an_engine(stream.read(4096))
    if other:
        raise UserError(f"{path} is {other}, not a serialized TensorRT engine (trtexec --saveEngine writes one)")


def _not_an_engine(head: bytes) -> str | None:
    """What a file starting with ``head`` certainly is instead of an engine; None when it may be one."""
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (a bundle or a PyTorch checkpoint)"
    if head[4:8] == b"TFL3":
        return "a TFLite model"
    if len(head) > 2 and head[0] == 0x08 and head[1] < 0x80 and head[2] in _ONNX_SECOND_TAGS:
        return "an ONNX model"
    if not head.translate(None, _TEXT_BYTES):
        return "a text file"
    return None


def trtexec_command(onnx_path: Path, engine_path: Path) -> str:
    """The ``trtexec`` command that builds the same engine as :func:`build_engine`."""
    return shlex.join(["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine_path}", "--fp16", "--int8", "--skipInference"])


def build_engine(onnx_path: Path, engine_path: Path, workspace_mib: int = 1024) -> None:
    """Build and serialize a TensorRT engine from a fixed-shape Q/DQ ONNX file (needs ``tensorrt``)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    for flag in ("FP16", "INT8"):
        if hasattr(trt.BuilderFlag, flag):
            config.set_flag(getattr(trt.BuilderFlag, flag))
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise UserError(f"TensorRT could not build an engine from {onnx_path.name}")
    from edgefusion.io.atomic import write_bytes

    write_bytes(engine_path, bytes(blob))
