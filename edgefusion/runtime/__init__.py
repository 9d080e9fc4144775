"""Device runtime: run a deployment bundle with numpy and one inference backend.

``Fuser.open(bundle)`` loads and verifies a bundle and fuses images;
``open_backend(name, files)`` loads a bare model file on ONNX Runtime,
OpenVINO, LiteRT or TensorRT. Importing this package never imports torch.
"""

from edgefusion.runtime.backends import open_backend
from edgefusion.runtime.fuser import Fuser

__all__ = ["Fuser", "open_backend"]
