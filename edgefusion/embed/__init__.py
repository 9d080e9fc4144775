"""Embedding a bundle in firmware: the bundle as C arrays and a ready firmware folder for the C runtime.

The C runtime itself (C99 sources, public header ``edgefusion.h``, CMake
project, example ``fuse_frames``) ships in the package under
``edgefusion/native/`` (:data:`NATIVE_DIR`); its built-in OpenVINO backend
builds against the OpenVINO C API of the openvino package
(:func:`openvino_c_root`). numpy-free and torch-free.
"""

import importlib.util
from pathlib import Path

from edgefusion.errors import UserError

#: Folder of the C runtime's sources in this installation.
NATIVE_DIR = Path(__file__).resolve().parent.parent / "native"


def openvino_c_root() -> Path:
    """The installed openvino package's folder, which carries the OpenVINO C API (``include/openvino/c/openvino.h``,
    ``libs/libopenvino_c.so*``): the C runtime's ``EF_OPENVINO_ROOT``. UserError (one line) when absent."""
    spec = importlib.util.find_spec("openvino")
    if spec is None or not spec.origin:
        raise UserError("the openvino package is not installed (pip install openvino); the C runtime's OpenVINO backend needs its C API")
    root = Path(spec.origin).resolve().parent
    if not (root / "include" / "openvino" / "c" / "openvino.h").is_file() or not any((root / "libs").glob("libopenvino_c.so*")):
        raise UserError(f"openvino at {root} lacks its C API (include/openvino/c/openvino.h, libs/libopenvino_c.so*)")
    return root
