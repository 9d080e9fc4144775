"""LiteRT (TensorFlow Lite) backend: ``files = {"model": "model.tflite"}``.

Uses ``ai_edge_litert.interpreter`` (pip ``ai-edge-litert``) and falls back to
the older ``tflite_runtime.interpreter``. Models from litert-torch usually
take NHWC tensors; inputs are resized when the model allows it (a model whose
output shape does not follow must be run at its fixed shape; the Fuser tiles).
``threads`` is the interpreter's ``num_threads``; ``device`` is not
supported (XNNPACK on CPU; delegates are loaded by the platform's own builds).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Mapping

import numpy as np

from edgefusion.errors import UserError
from edgefusion.quiet import quiet
from edgefusion.runtime.backends.base import Backend, IOSpec, check_planes, log, match_names, model_file


def _interpreter_module():
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise UserError("no LiteRT interpreter is installed; install it with: pip install 'edgefusion[litert]' (or tflite-runtime)")


class LiteRtBackend(Backend):
    name = "litert"

    def __init__(self, model_files: Mapping[str, Path], io: IOSpec, threads: int | None = None, device: str | None = None) -> None:
        super().__init__(io)
        module = _interpreter_module()
        if device not in (None, "cpu", "CPU"):
            raise UserError(f"the litert backend runs on the CPU only (got device {device!r})")
        path = model_file(model_files, "model", self.name, (".tflite",))
        try:
            with quiet(native=True):  # TFLite's "Created ... XNNPACK delegate" note
                self.interpreter = module.Interpreter(model_path=str(path), num_threads=int(threads) if threads else None)
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"LiteRT cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
        details = self.interpreter.get_input_details()
        order = match_names([d["name"] for d in details], self.name, io.inputs)
        self._inputs = [details[i]["index"] for i in order]
        check_planes(self.name, io, [(tuple(None if d < 0 else int(d) for d in details[i].get("shape_signature", details[i]["shape"])), np.dtype(details[i]["dtype"]).name) for i in order[:2]])
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._shape = tuple(details[0]["shape"])
        self.version = getattr(module, "__version__", None) or _package_version(module.__name__.split(".")[0])
        self.provider = f"CPU ({module.__name__.split('.')[0]}, XNNPACK)"
        log.info("litert %s: %s on %s", self.version, path.name, self.provider)

    def _infer(self, inputs: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        it = self.interpreter
        planes = inputs[0].shape
        if planes != self._shape:
            try:
                for index in self._inputs[:2]:  # the image planes; frame statistics keep their (1, 6) shape
                    it.resize_tensor_input(index, list(planes))
                it.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise UserError(f"LiteRT model cannot take shape {planes}: {str(exc).strip().splitlines()[0]}") from None
            self._shape = planes
        for index, value in zip(self._inputs, inputs):
            it.set_tensor(index, value)
        it.invoke()
        return it.tensor(self._output)()  # a view of the interpreter's output: consumed before the next invoke


def _package_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return "unknown"
