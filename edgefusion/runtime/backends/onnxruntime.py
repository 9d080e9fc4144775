"""ONNX Runtime backend: ``files = {"model": "model.onnx"}``.

``device`` picks the execution provider: ``None``/``cpu`` -> CPU, ``cuda``,
``tensorrt``, ``openvino``, ``coreml``, ``dml`` or a full provider name
(``CUDAExecutionProvider``); CPU stays as the fallback for unsupported nodes.
``reference`` runs on the CPU with graph optimizations off, so a Q/DQ model
computes exactly what its QuantizeLinear/DequantizeLinear nodes specify
(float convolutions of dequantized values, as TensorRT's exact int32
accumulation does) instead of ONNX Runtime's fused int8 kernels, whose results
depend on the CPU: without VNNI, x86 converts int8 activations to uint8 and
its u8s8 kernels can saturate (measured: 39.6 dB instead of 53.2 dB).
``threads`` sets the intra-op thread count (default: ONNX Runtime's choice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgefusion.errors import UserError
from edgefusion.optional import require
from edgefusion.runtime.backends.base import Backend, IOSpec, check_planes, log, match_names, model_file

_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}

#: ONNX element types of the contract's planes -> numpy dtype names.
_PLANE_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}


def _plane(arg) -> tuple[tuple, str]:
    """(shape with None for dynamic dimensions, numpy dtype name) of an onnxruntime input (for check_planes)."""
    return tuple(d if isinstance(d, int) else None for d in arg.shape), _PLANE_TYPES.get(arg.type, arg.type)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model_files: Mapping[str, Path], io: IOSpec, threads: int | None = None, device: str | None = None) -> None:
        super().__init__(io)
        ort = require("onnxruntime", "onnx")
        path = model_file(model_files, "model", self.name, (".onnx", ".ort"))
        reference = (device or "").lower() == "reference"
        provider = _PROVIDERS.get("cpu" if reference else (device or "cpu").lower(), device)
        available = ort.get_available_providers()
        if provider not in available:
            raise UserError(f"onnxruntime provider {provider} is not available here (available: {', '.join(available)})")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if reference:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad models
            raise UserError(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        inputs = [i.name for i in self.session.get_inputs()]
        order = match_names(inputs, self.name, io.inputs)
        self._inputs = [inputs[i] for i in order]
        check_planes(self.name, io, [_plane(self.session.get_inputs()[i]) for i in order[:2]])
        self._output = self.session.get_outputs()[0].name
        self._output_shape = list(self.session.get_outputs()[0].shape)
        self._output_float = self.session.get_outputs()[0].type == "tensor(float)"
        self.version = ort.__version__
        self.provider = self.session.get_providers()[0] + (" (reference Q/DQ arithmetic, graph optimizations off)" if reference else "")
        log.info("onnxruntime %s: %s on %s", self.version, path.name, self.provider)

    def _infer(self, inputs: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        try:
            if out is None or not self._output_float or not self._fits(out.shape):
                return self.session.run([self._output], dict(zip(self._inputs, inputs)))[0]
            binding = self.session.io_binding()  # the output goes straight into ``out``: no allocation per frame
            for name, value in zip(self._inputs, inputs):
                binding.bind_cpu_input(name, value)
            binding.bind_output(self._output, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
            self.session.run_with_iobinding(binding)
            return out
        except Exception as exc:  # onnxruntime's own exception types (wrong shape for a fixed-shape model, ...)
            raise UserError(f"onnxruntime failed on a {inputs[0].shape} input: {str(exc).strip().splitlines()[0]}") from None

    def _fits(self, shape: tuple[int, ...]) -> bool:
        """Whether the model's declared output shape (symbolic dimensions match anything) allows ``shape``."""
        declared = self._output_shape
        return len(declared) == len(shape) and all(not isinstance(d, int) or d == n for d, n in zip(declared, shape))
