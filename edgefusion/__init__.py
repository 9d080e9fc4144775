"""edgefusion: infrared + visible image fusion from a GPU training host to edge devices.

Importing this package loads only numpy-level code; torch, open_clip and the
device backends are imported lazily by the modules that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
