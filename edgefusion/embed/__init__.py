"""Embedding a bundle in firmware: the bundle as C arrays and a ready firmware folder for the C runtime.

The C runtime itself (C99 sources, public header ``edgefusion.h``, CMake
project, example ``fuse_frames``) ships in the package under
``edgefusion/native/`` (:data:`NATIVE_DIR`). numpy-free and torch-free.
"""

from pathlib import Path

#: Folder of the C runtime's sources in this installation.
NATIVE_DIR = Path(__file__).resolve().parent.parent / "native"
