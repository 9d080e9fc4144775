"""Static INT8 quantization of a float ``.tflite`` with ai-edge-quantizer (no TensorFlow).

Recipe: only ``CONV_2D`` ops are quantized (int8 activations, asymmetric per
tensor; int8 weights, symmetric per channel; integer compute). Element-wise and
layout ops stay float, which keeps the model in few delegate partitions (the
default all-op recipe could not quantize some activations and split the graph
into 5 partitions on a prototype). Convolutions of the ``keep_float`` student
modules stay float: litert-torch names tensors after the module path
(``.../Conv2d_head;2``), matched by the regex ``.*_<module>(;|/|$).*``; a
kept-float ``head`` that writes the model output (analyze-only models) is
matched by the output's signature name.
The file keeps float32 NHWC inputs and outputs, unless ``io_dtype`` is ``int8``
or ``uint8``: then the recipe also quantizes the graph's INPUT and OUTPUT
(asymmetric per tensor), with their calibration ranges pinned to the contract's
[0, 1], so the file takes and returns integer tensors (scale 1/255) and every
float op sits between a DEQUANTIZE and a QUANTIZE inside the model. The
``stats`` input of v2 students is quantized the same way with the range [0, 1]
(the recipe's INPUT entry covers all inputs at once, and ranges calibrated on
a few frames clipped other frames' statistics: 31 dB vs FP32 on a test
student), so such a model takes them ENCODED, ``stats * stats_scale`` in [0, 1]
with finer steps for stds and gradients (:mod:`edgefusion.runtime.stats_encoding`;
the graph decodes them): calibration feeds them encoded.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgefusion.convert.litert import INPUT_NAMES, SIGNATURE
from edgefusion.errors import UserError
from edgefusion.optional import require
from edgefusion.quiet import quiet
from edgefusion.quantize.calibration import Frame

#: Model inputs in ``forward`` order (the first two for v1 students).
MODEL_INPUTS = ("ir", "vis", "stats")

_INT8_CONV = {
    "activation_tensor_config": {"num_bits": 8, "symmetric": False, "granularity": "TENSORWISE", "dtype": "INT"},
    "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},
    "compute_precision": "INTEGER",
    "explicit_dequantize": False,
    "skip_checks": False,
    "min_weight_elements": 0,
}


#: ai-edge-quantizer activation type of each integer model I/O type.
_IO_TYPES = {"int8": "INT", "uint8": "UINT"}


def recipe(keep_float: tuple[str, ...], io_dtype: str = "float32") -> list[dict]:
    """The ai-edge-quantizer recipe: int8 CONV_2D everywhere, then float for ``keep_float`` modules (later entries win);
    integer ``io_dtype`` adds INPUT/OUTPUT entries of that type."""
    entries = [{"regex": ".*", "operation": "CONV_2D", "algorithm_key": "min_max_uniform_quantize", "op_config": _INT8_CONV}]
    for module in keep_float:
        entries.append({"regex": f".*_{re.escape(module)}(;|/|$).*", "operation": "CONV_2D", "algorithm_key": "no_quantize"})
    if "head" in keep_float:  # in an analyze-only model the head writes the model output, named after the signature
        entries.append({"regex": f"{SIGNATURE}_output_.*", "operation": "CONV_2D", "algorithm_key": "no_quantize"})
    if io_dtype != "float32":
        activation = {**_INT8_CONV["activation_tensor_config"], "dtype": _IO_TYPES[io_dtype]}
        io_config = {**_INT8_CONV, "activation_tensor_config": activation}
        entries += [{"regex": ".*", "operation": op, "algorithm_key": "min_max_uniform_quantize", "op_config": io_config} for op in ("INPUT", "OUTPUT")]
    return entries


def _io_details(interpreter, inputs: tuple[str, ...] = ("ir", "vis")) -> list[dict]:
    """Tensor details of the model's ``inputs`` (``ir``, ``vis`` [, ``stats``]) and output, in that order."""
    from edgefusion.runtime.backends.base import match_names

    details = interpreter.get_input_details()
    return [details[i] for i in match_names([d["name"] for d in details], "litert", inputs)] + interpreter.get_output_details()[:1]


def io_quantization(path: Path, io_dtype: str, output: str = "fused", inputs: tuple[str, ...] = ("ir", "vis")) -> dict[str, dict]:
    """Manifest ``io_quantization`` of an integer-I/O ``.tflite``: ``{ir|vis[|stats]|output: {scale, zero_point}}``
    as the interpreter reports them; UserError when a tensor is not of type ``io_dtype``."""
    interpreter = require("ai_edge_litert.interpreter", "litert").Interpreter(str(path))
    table = {}
    for name, detail in zip((*inputs, output), _io_details(interpreter, inputs)):
        if detail["dtype"].__name__ != io_dtype:
            raise UserError(f"the quantized LiteRT model's {name} tensor is {detail['dtype'].__name__}, expected {io_dtype}")
        scale, zero_point = detail["quantization"]
        table[name] = {"scale": float(scale), "zero_point": int(zero_point)}
    return table


def int8_layers(path: Path) -> tuple[list[str], list[str]]:
    """(quantized, float) CONV_2D ops of a ``.tflite``, named by output tensor; quantized ones take int8 input."""
    interpreter = require("ai_edge_litert.interpreter", "litert").Interpreter(str(path))
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    quantized, kept = [], []
    for op in interpreter._get_ops_details():  # the public API has no op list
        if op["op_name"] == "CONV_2D":
            name = _layer_name(tensors[op["outputs"][0]]["name"])
            (quantized if tensors[op["inputs"][0]]["dtype"] == np.int8 else kept).append(name)
    return quantized, kept


def _layer_name(tensor: str) -> str:
    """``a.b.Wrapper/pkg.Student_wrapped/torch...Conv2d_head;2`` -> ``Student_wrapped/Conv2d_head``."""
    path = re.sub(r";\d*$", "", tensor.split(";;")[-1])
    return "/".join(part.rsplit(".", 1)[-1] for part in path.split("/")[1:]) or path


def quantize_tflite(
    float_path: Path, out_path: Path, frames: list[Frame], keep_float: tuple[str, ...] = (), io_dtype: str = "float32",
    stats_scale: tuple[float, ...] | None = None,
) -> dict:
    """Write the INT8 model of ``float_path`` (NHWC, fixed shape) to ``out_path``; returns the ``quantization`` entry.

    ``io_dtype`` (``float32``, ``int8`` or ``uint8``) is the type of the written model's inputs and output;
    ``stats_scale``: the model takes ``stats * stats_scale`` (None: raw stats).
    """
    with quiet(native=True):  # the calibrator keeps every tensor on purpose and warns about it; XNNPACK notes
        aeq = require("ai_edge_quantizer", "quantize")
        steps = recipe(keep_float, io_dtype)
        quantizer = aeq.Quantizer(str(float_path), steps)
        float_interpreter = require("ai_edge_litert.interpreter", "litert").Interpreter(str(float_path))
        inputs = MODEL_INPUTS[: len(float_interpreter.get_input_details())]  # v2 students also take stats
        scale = np.asarray(stats_scale or 1.0, dtype=np.float32)
        samples = [dict(zip(INPUT_NAMES, (f.ir.transpose(0, 2, 3, 1), f.vis.transpose(0, 2, 3, 1), f.stats * scale)[: len(inputs)])) for f in frames]
        calibration = quantizer.calibrate({SIGNATURE: samples})
        if io_dtype != "float32":  # the contract's range, not the calibration frames' (which would clip brighter frames)
            for detail in _io_details(float_interpreter, inputs):
                qsv = calibration[detail["name"]]
                calibration[detail["name"]] = {"min": np.zeros_like(qsv["min"]), "max": np.ones_like(qsv["max"])}
        result = quantizer.quantize(calibration, enable_progress_report=False)
    out_path.write_bytes(bytes(result.quantized_model))
    int8, kept = int8_layers(out_path)
    return {
        "method": "ai-edge-quantizer static (min/max calibration)",
        "calibration_frames": len(frames),
        "activations": "int8 asymmetric per tensor (CONV_2D inputs)",
        "weights": "int8 symmetric per-channel",
        "quantized_ops": ["CONV_2D"] + (["INPUT", "OUTPUT"] if io_dtype != "float32" else []),
        "io": "float32" if io_dtype == "float32" else f"{io_dtype} asymmetric per tensor, range [0, 1]",
        "int8_layers": int8,
        "kept_float": {"modules": list(keep_float), "layers": kept, "ops": "every op other than CONV_2D"},
        "recipe": steps,
    }
