"""Reading and writing image files (PNG, JPEG, TIFF, BMP, binary PGM/PPM) with Pillow.

:func:`read_image` returns the file's pixels unchanged in type: uint8 for 8-bit
files, uint16 for 16-bit files (radiometric thermal), shape (H, W) for gray or
(H, W, 3) for color. Normalization to [0, 1] is :mod:`edgefusion.preprocess`'s
job. Every failure becomes a one-line :class:`~edgefusion.errors.UserError`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgefusion.errors import UserError
from edgefusion.io.atomic import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".ppm")

_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
#: Most pixels an image may have: Pillow's decompression-bomb limit, which :func:`read_image` enforces
#: (also the limit of frame shapes given on the command line, :func:`check_frame_size`).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def check_frame_size(height: int, width: int, what: str) -> None:
    """UserError when a ``height`` x ``width`` frame (``what``: e.g. "--shape 480x640") has more than MAX_PIXELS pixels."""
    if height * width > MAX_PIXELS:
        raise UserError(f"{what} is too large: {height * width} pixels, at most {MAX_PIXELS} (the input image limit)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file fully; uint8 or uint16, (H, W) or (H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return _to_array(img, path)
    except UserError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UserError(f"cannot read image {path}: {_one_line(exc)}") from None


def _to_array(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(img).astype(np.uint16)
    if mode in ("I", "F"):
        data = np.asarray(img)
        if mode == "I" and data.size and data.min() >= 0 and data.max() <= 65535:
            return data.astype(np.uint16)
        raise UserError(f"cannot read image {path}: unsupported {mode!r} pixels (expected 8- or 16-bit integers)")
    if mode == "L":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("1", "P", "RGBA", "LA", "CMYK", "YCbCr", "RGB"):
        if mode in ("LA",):
            return np.asarray(img.convert("L"), dtype=np.uint8)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    raise UserError(f"cannot read image {path}: unsupported image mode {mode!r}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array atomically; format from the suffix (``.pgm`` / ``.ppm``: binary
    P5 for gray, P6 for color pixels whichever of the two suffixes, as the C runtime's ``fuse_frames`` writes)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"unsupported output image type {path.suffix!r} for {path}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if path.is_dir():
        raise UserError(f"output path {path} is a folder, expected an image file")
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8 pixels, got {image.dtype}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
