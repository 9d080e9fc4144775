"""TensorRT backend (NVIDIA Jetson / GPUs): ``files = {"model": "model.engine"}`` or an ONNX ``model``.

Uses the TensorRT Python API (``import tensorrt``, shipped with JetPack as
``python3-libnvinfer``) and CUDA runtime bindings from ``cuda-python``
(``cuda.bindings.runtime``, older ``cuda.cudart``). A serialized engine
(``.engine``/``.plan``) is deserialized; an ONNX model with a fixed input
shape is built into an engine at open time (FP16 allowed, INT8 from its
Q/DQ nodes), which takes minutes on a Jetson; ``edgefusion build-engine``
stores it once. ``device`` is a CUDA device index (default 0); ``threads``
does not apply. Engines are tied to the GPU and TensorRT version that built them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

import numpy as np

from edgefusion.errors import UserError
from edgefusion.runtime.backends.base import Backend, IOSpec, log, match_names, model_file


def _import(names: tuple[str, ...], hint: str):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UserError(hint)


class TensorRtBackend(Backend):
    name = "tensorrt"

    def __init__(self, model_files: Mapping[str, Path], io: IOSpec, threads: int | None = None, device: str | None = None) -> None:
        super().__init__(io)
        trt = _import(("tensorrt",), "the TensorRT Python API is not importable (on Jetson install JetPack's python3-libnvinfer; elsewhere pip install tensorrt)")
        self._cuda = _import(("cuda.bindings.runtime", "cuda.cudart"), "CUDA runtime bindings are missing; install them with: pip install cuda-python")
        path = model_file(model_files, "model", self.name, (".engine", ".plan", ".onnx"))
        index = int(device or 0) if str(device or "0").isdigit() else None
        if index is None:
            raise UserError(f"the tensorrt backend takes a CUDA device index as device, got {device!r}")
        self._call("cudaSetDevice", index)
        self._trt_logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._trt_logger)
        blob = path.read_bytes() if path.suffix.lower() != ".onnx" else self._build(trt, path)
        self.engine = runtime.deserialize_cuda_engine(blob)
        if self.engine is None:
            raise UserError(f"TensorRT cannot deserialize {path} (built for another GPU or TensorRT version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        self._inputs = [inputs[i] for i in match_names(inputs, self.name, io.inputs)]
        self._output = outputs[0]
        self._out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self._output)))
        (self._stream,) = self._call("cudaStreamCreate")
        self._device_buffers: dict[str, tuple[int, int]] = {}
        self.version = trt.__version__
        (props,) = self._call("cudaGetDeviceProperties", index)
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        self.provider = f"CUDA:{index} ({gpu.strip(chr(0))})"
        log.info("tensorrt %s: %s on %s", self.version, path.name, self.provider)

    def _call(self, function: str, *args):
        result = getattr(self._cuda, function)(*args)
        err, rest = result[0], result[1:]
        if int(err) != 0:
            raise UserError(f"CUDA {function} failed: {err}")
        return rest

    def _build(self, trt, onnx_path: Path) -> bytes:
        builder = trt.Builder(self._trt_logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._trt_logger)
        if not parser.parse(onnx_path.read_bytes()):
            raise UserError(f"TensorRT cannot parse {onnx_path}: {parser.get_error(0).desc() if parser.num_errors else 'unknown error'}")
        for i in range(network.num_inputs):
            if any(d < 0 for d in network.get_input(i).shape):
                raise UserError(f"{onnx_path.name} has a dynamic input shape; build a fixed-shape engine with `edgefusion build-engine`")
        config = builder.create_builder_config()
        if builder.platform_has_fast_fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        log.info("building a TensorRT engine from %s (this takes a while)", onnx_path.name)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise UserError(f"TensorRT failed to build an engine from {onnx_path}")
        return bytes(blob)

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._device_buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self._call("cudaFree", ptr)
            (ptr,) = self._call("cudaMalloc", nbytes)
            self._device_buffers[name] = (int(ptr), nbytes)
            self.context.set_tensor_address(name, int(ptr))
        return self._device_buffers[name][0]

    def _infer(self, inputs: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        h2d, d2h = self._cuda.cudaMemcpyKind.cudaMemcpyHostToDevice, self._cuda.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, host in zip(self._inputs, inputs):
            host = np.ascontiguousarray(host)
            self.context.set_input_shape(name, host.shape)
            self._call("cudaMemcpyAsync", self._device(name, host.nbytes), host.ctypes.data, host.nbytes, h2d, self._stream)
        out = np.empty(tuple(self.context.get_tensor_shape(self._output)), dtype=self._out_dtype)
        ptr = self._device(self._output, out.nbytes)
        if not self.context.execute_async_v3(self._stream):
            raise UserError("TensorRT inference failed")
        self._call("cudaMemcpyAsync", out.ctypes.data, ptr, out.nbytes, d2h, self._stream)
        self._call("cudaStreamSynchronize", self._stream)
        return out.astype(np.float32, copy=False) if out.dtype == np.float16 else out

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "_device_buffers", {}).values():
            self._cuda.cudaFree(ptr)
