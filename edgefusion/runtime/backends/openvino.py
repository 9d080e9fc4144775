"""OpenVINO backend: ``files = {"model": "model.xml", "weights": "model.bin"}`` (or an ONNX ``model``).

``device`` is an OpenVINO device name (``CPU`` default, ``GPU``, ``NPU``,
``AUTO``); ``threads`` sets ``INFERENCE_NUM_THREADS``. The model runs in the
precision stored in the IR (OpenVINO's CPU plugin would otherwise pick bf16
on capable CPUs, so ``INFERENCE_PRECISION_HINT`` is pinned to f32 on CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgefusion.errors import UserError
from edgefusion.optional import require
from edgefusion.runtime.backends.base import Backend, IOSpec, log, match_names, model_file


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
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version()
        try:
            devices = ",".join(self.compiled.get_property("EXECUTION_DEVICES"))
        except RuntimeError:
            devices = device
        self.provider = devices
        log.info("openvino %s: %s on %s", self.version, path.name, self.provider)

    def _infer(self, inputs: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        # zero-copy in and out: the output view is consumed before the next call
        self.request.infer(dict(zip(self._inputs, inputs)), share_inputs=True, share_outputs=True)
        return self.request.get_output_tensor(0).data
