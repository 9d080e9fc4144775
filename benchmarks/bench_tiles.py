"""Tiled vs whole-frame fusion of one large frame (a measurement, not a test).

A student checkpoint is exported to a FP32 ONNX bundle of fixed shape
``--tile`` (as fixed-shape LiteRT/TensorRT bundles are) and a large frame is
fused by the runtime in overlapping tiles (:mod:`edgefusion.runtime.tiling`);
the reference is the PyTorch model on the whole frame
(:class:`edgefusion.models.checkpoint.TorchFuser`). v2 students
(``student-ctx``) get the whole frame's statistics in every tile; v1
students (``student``) compute their context per tile. Reported: mean and
max absolute difference of the fused 8-bit luma in gray levels.

The frame is a real pair (default: the package sample ``tno_19``, or
``--pair IR VIS``) resized bilinearly to ``--size`` (W x H), or with
``--mosaic DIR`` a mosaic of the pairs of DIR (``ir/`` + ``vi/``) at their own
resolution, row by row, cut to ``--size`` (real detail everywhere).

    python benchmarks/bench_tiles.py --model CKPT [--size 4000x3000] [--tile 480x640] [--pair IR VIS | --mosaic DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _frame(pair: tuple[Path, Path], size: tuple[int, int]):
    """The model planes of ``pair`` resized to ``size`` (W, H)."""
    from PIL import Image

    from edgefusion import preprocess
    from edgefusion.io.images import read_image

    planes = preprocess.prepare_pair(read_image(pair[0]), read_image(pair[1]))
    resize = lambda p: np.asarray(Image.fromarray(p).resize(size, Image.BILINEAR), dtype=np.float32)  # noqa: E731
    return resize(planes.ir), resize(planes.vis_y)


def _mosaic(root: Path, size: tuple[int, int]):
    """Model planes (H, W) = ``size[::-1]`` filled row by row with the pairs of ``root`` at their own size."""
    from edgefusion import preprocess
    from edgefusion.io.images import read_image
    from edgefusion.io.pairs import find_pairs

    width, height = size
    planes = [np.zeros((height, width), np.float32) for _ in range(2)]
    pairs, k, y = find_pairs(root), 0, 0
    while y < height:
        x, row_height = 0, 0
        while x < width:
            pair = pairs[k % len(pairs)]
            k += 1
            prepared = preprocess.prepare_pair(read_image(pair.ir), read_image(pair.vis))
            for plane, source in zip(planes, (prepared.ir, prepared.vis_y)):
                part = source[: height - y, : width - x]
                plane[y : y + part.shape[0], x : x + part.shape[1]] = part
            x += prepared.ir.shape[1]
            row_height = max(row_height, prepared.ir.shape[0])
        y += row_height
    return planes[0], planes[1]


def measure(model_path: Path, size: tuple[int, int], tile: tuple[int, int], pair: tuple[Path, Path], mosaic: Path | None = None) -> dict:
    from edgefusion import preprocess
    from edgefusion.convert.onnx import export_onnx
    from edgefusion.models.checkpoint import TorchFuser, input_names
    from edgefusion.runtime import Fuser
    from edgefusion.runtime.bundle import write_bundle

    torch_fuser = TorchFuser.load(model_path)
    names = input_names(torch_fuser.model)
    ir, vis = _mosaic(mosaic, size) if mosaic else _frame(pair, size)
    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as tmp:
        onnx_path = export_onnx(torch_fuser.model, Path(tmp) / "model.onnx", shape=tile, dynamic=False)
        specs = [{"name": n, "shape": [1, 6] if n == "stats" else [1, 1, *tile], "dtype": "float32"} for n in names]
        manifest = {
            "schema": 1, "edgefusion_version": "bench", "backend": "onnxruntime", "target": "bench", "precision": "fp32",
            "inputs": specs, "outputs": [{"name": "fused", "shape": [1, 1, *tile], "dtype": "float32"}],
            "layout": "NCHW", "io_dtype": "float32", "value_range": [0, 1], "stride": torch_fuser.stride, "fixed_shape": list(tile),
        }
        bundle = write_bundle(Path(tmp) / "bundle", {"model": onnx_path}, manifest)
        fuser = Fuser.open(bundle, threads=2)
        start = time.perf_counter()
        tiled = preprocess.to_uint8(fuser.fuse_planes(ir, vis))
        tiled_s = time.perf_counter() - start
    start = time.perf_counter()
    whole = preprocess.to_uint8(torch_fuser.fuse_planes(ir, vis))
    whole_s = time.perf_counter() - start
    diff = np.abs(tiled.astype(np.int16) - whole.astype(np.int16))
    return {
        "model": model_path.name, "inputs": list(names), "source": f"mosaic of {mosaic.name}" if mosaic else f"{pair[0].name} resized", "frame": f"{size[0]}x{size[1]}", "tile": f"{tile[1]}x{tile[0]}",
        "overlap": fuser.overlap, "tiles": n_tiles(ir.shape, tile, fuser.overlap, fuser.stride),
        "mean_gray_levels": round(float(diff.mean()), 4), "max_gray_levels": int(diff.max()),
        "share_over_1_level": round(float(np.mean(diff > 1)), 6), "tiled_s": round(tiled_s, 2), "whole_torch_s": round(whole_s, 2),
    }


def n_tiles(shape: tuple[int, int], tile: tuple[int, int], overlap: int, stride: int) -> int:
    """How many tiles the runtime runs on a frame of ``shape`` (padded to the stride first)."""
    from edgefusion.runtime.tiling import axis_starts

    padded = [-(-n // stride) * stride for n in shape]
    return int(np.prod([len(axis_starts(n, t, overlap, stride)) for n, t in zip(padded, tile)]))


def main(argv: list[str] | None = None) -> int:
    from edgefusion.resources import SAMPLES
    from edgefusion.targets import parse_shape

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="student checkpoint (.pt)")
    parser.add_argument("--size", default="4000x3000", help="frame W x H (default 4000x3000)")
    parser.add_argument("--tile", default="480x640", help="bundle shape H x W (default 480x640)")
    parser.add_argument("--pair", nargs=2, type=Path, metavar=("IR", "VIS"), help="source pair (default: package sample tno_19)")
    parser.add_argument("--mosaic", type=Path, help="a pairs folder (ir/ + vi/) tiled at native resolution instead of one resized pair")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    pair = tuple(args.pair) if args.pair else (SAMPLES / "ir" / "tno_19.png", SAMPLES / "vi" / "tno_19.png")
    result = measure(args.model, (width, height), parse_shape(args.tile), pair, args.mosaic)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
