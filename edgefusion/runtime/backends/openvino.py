"""OpenVINO backend: ``files = {"model": "model.xml", "weights": "model.bin"}`` (or an ONNX ``model``).

``device`` is an OpenVINO device name (``CPU`` default, ``GPU``, ``NPU``,
``AUTO``); ``threads`` sets ``INFERENCE_NUM_THREADS``. The model runs in the
precision stored in the IR (OpenVINO's CPU plugin would otherwise pick bf16
on capable CPUs, so ``INFERENCE_PRECISION_HINT`` is pinned to f32 on CPU).

Static shapes: on CPU, a model with dynamic height/width runs every input
shape on a copy of the model reshaped to that static shape, compiled on the
shape's first call (about 50 ms once; measured 20-30 % faster per call than
the dynamic model at 640x480 and 1920x1088). The dynamic model differs from
it by float rounding (1e-7 in the maps), so every call takes the static path
and the same input always gives the same output. At most
:data:`STATIC_SHAPES` shapes are kept (least recently used dropped; about 70
MB each at 1080p); the dynamic model is the fallback for a shape whose static
compilation fails.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Mapping

import numpy as np

from edgefusion.errors import UserError
from edgefusion.optional import require
from edgefusion.runtime.backends.base import Backend, IOSpec, check_planes, log, match_names, model_file

#: Compiled static-shape models kept per backend (each holds its own intermediate buffers).
STATIC_SHAPES = 2


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, model_files: Mapping[str, Path], io: IOSpec, threads: int | None = None, device: str | None = None) -> None:
        super().__init__(io)
        ov = require("openvino", "openvino")
        path = model_file(model_files, "model", self.name, (".xml", ".onnx"))
        weights = model_file(model_files, "weights", self.name, (".bin",)) if path.suffix.lower() == ".xml" else None
        device = (device or "CPU").upper()
        core = ov.Core()
        if device.split(":")[0] not in ("AUTO", "MULTI", "HETERO") and device not in core.available_devices:
            raise UserError(f"OpenVINO device {device} is not available here (available: {', '.join(core.available_devices)})")
        config: dict[str, object] = {}
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            model = core.read_model(str(path), str(weights) if weights else None)
            self.compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise UserError(f"OpenVINO cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        inputs = [i.get_any_name() for i in self.compiled.inputs]
        order = match_names(inputs, self.name, io.inputs)
        self._inputs = [self.compiled.inputs[i] for i in order]
        self._names = [inputs[i] for i in order]
        check_planes(self.name, io, [(tuple(d.get_length() if d.is_static else None for d in p.get_partial_shape()), p.get_element_type().to_dtype().name) for p in self._inputs[:2]])
        self.request = self.compiled.create_infer_request()
        dynamic = any(i.get_partial_shape().is_dynamic for i in self.compiled.inputs)
        self._static = _StaticShapes(core, model, device, config) if dynamic and device == "CPU" else None
        self.version = ov.get_version()
        try:
            devices = ",".join(self.compiled.get_property("EXECUTION_DEVICES"))
        except RuntimeError:
            devices = device
        self.provider = devices
        log.info("openvino %s: %s on %s", self.version, path.name, self.provider)

    @property
    def static_shapes(self) -> list[tuple[tuple[int, ...], ...]]:
        """Input shapes (ir, vis[, stats]) that now run on a static-shape model, least recently used first."""
        return [key for key, request in self._static.requests.items() if request is not None] if self._static else []

    def _infer(self, inputs: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        request = self._static.request(self._names, inputs) if self._static else None
        if request is None:
            request, ports = self.request, self._inputs
        else:
            ports = self._names
        # zero-copy in and out: the output view is consumed before the next call
        request.infer(dict(zip(ports, inputs)), share_inputs=True, share_outputs=True)
        return request.get_output_tensor(0).data


class _StaticShapes:
    """Infer requests of the model compiled for static input shapes (LRU)."""

    def __init__(self, core, model, device: str, config: dict) -> None:
        self.core, self.model, self.device, self.config = core, model, device, config
        self.requests: OrderedDict[tuple, object] = OrderedDict()  # shapes -> infer request (None: compiling failed)

    def request(self, names: list[str], inputs: list[np.ndarray]):
        """The static request for these inputs' shapes, or None (run the dynamic model)."""
        key = tuple(x.shape for x in inputs)
        if key in self.requests:
            self.requests.move_to_end(key)
        else:
            self.requests[key] = self._compile(dict(zip(names, key)))
            while len(self.requests) > STATIC_SHAPES:
                self.requests.popitem(last=False)
        return self.requests[key]

    def _compile(self, shapes: dict[str, tuple[int, ...]]):
        model = self.model.clone()
        try:
            model.reshape({name: list(shape) for name, shape in shapes.items()})
            return self.core.compile_model(model, self.device, self.config).create_infer_request()
        except RuntimeError as exc:  # a shape the model cannot take statically: keep the dynamic model for it
            log.debug("openvino: no static model for %s (%s)", shapes, str(exc).strip().splitlines()[0] if str(exc) else exc)
            return None
