"""Overlapping tiles: coverage, alignment, blend weights, and tiled == untiled on a 2000x1500 frame."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefusion.runtime.tiling import Tiler, axis_starts, axis_weights, ramp


@settings(max_examples=50)
@given(
    tile_blocks=st.integers(4, 40), overlap_blocks=st.integers(0, 2), extra_blocks=st.integers(0, 120), align=st.sampled_from([1, 4, 8])
)
def test_starts_cover_the_axis_aligned_with_bounded_gaps(tile_blocks, overlap_blocks, extra_blocks, align):
    tile, overlap = tile_blocks * align, min(overlap_blocks * align, tile_blocks // 2 * align)
    length = tile + extra_blocks * align
    starts = axis_starts(length, tile, overlap, align)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(s % align == 0 for s in starts)
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


@settings(max_examples=50)
@given(length=st.integers(1, 200))
def test_ramp_rises_from_zero_to_one_with_quarter_margins(length):
    r = ramp(length)
    assert np.all(np.diff(r) >= 0) and r.min() >= 0 and r.max() <= 1
    margin = length // 4
    assert np.all(r[:margin] == 0) and np.all(r[length - margin :] == 1)


def test_weights_of_neighbours_sum_to_one_on_the_axis():
    starts = axis_starts(296, 96, 32, 8)
    total = np.zeros(296)
    for start, w in zip(starts, axis_weights(starts, 96)):
        total[start : start + 96] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-12)


def test_identity_model_is_reproduced_exactly():
    rng = np.random.default_rng(0)
    ir = rng.random((200, 264), dtype=np.float32)
    tiler = Tiler(200, 264, tile=(64, 96), overlap=32, align=8)

    def identity(a, b, out):
        np.copyto(out, a)
        return out

    out = tiler(identity, ir, ir, np.empty_like(ir))
    np.testing.assert_allclose(out, ir, atol=2e-7)
    assert len(tiler.tiles) == len(axis_starts(200, 64, 32, 8)) * len(axis_starts(264, 96, 32, 8))


def _box_blur(radius: int):
    """A local model: mean of ir and vis over a (2r+1)^2 window with edge replication (receptive radius r)."""

    def run(ir, vis, out):
        x = np.pad((ir[0, 0] + vis[0, 0]) / 2, radius, mode="edge").astype(np.float64)
        c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), 0), 1)
        k = 2 * radius + 1
        h, w = out.shape[2:]
        out[0, 0] = (c[k : k + h, k : k + w] - c[:h, k : k + w] - c[k : k + h, :w] + c[:h, :w]) / k**2
        return out

    return run


def test_local_model_is_reproduced_and_wide_model_blends_smoothly():
    rng = np.random.default_rng(1)
    ir = rng.random((64, 640), dtype=np.float32)
    vis = rng.random((64, 640), dtype=np.float32)
    tiler = Tiler(64, 640, tile=(64, 128), overlap=32, align=8)
    for radius, tolerance in [(3, 1e-6), (12, 0.02)]:  # margin 8 > 3: exact; 12 > 8: small, smooth error
        whole = np.empty((1, 1, 64, 640), np.float32)
        _box_blur(radius)(ir[None, None], vis[None, None], whole)
        tiled = tiler(_box_blur(radius), ir, vis, np.empty_like(ir))
        error = np.abs(tiled - whole[0, 0])
        assert error[radius:-radius].max() <= tolerance  # rows next to the frame edge see the same padding


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("torch") is None, reason="needs onnxruntime and torch")
def test_tiled_bundle_matches_untiled_on_2000x1500(tmp_path):
    import torch

    from edgefusion.runtime import Fuser
    from runtime_models import export_onnx, make_bundle, tiny_fuser

    torch.set_num_threads(1)
    model = tiny_fuser(seed=7)
    whole = Fuser.open(make_bundle(tmp_path / "dyn", export_onnx(model, tmp_path / "dyn.onnx"), stride=8), threads=1)
    fixed_onnx = export_onnx(model, tmp_path / "fixed.onnx", height=256, width=320, dynamic=False)
    tiled = Fuser.open(make_bundle(tmp_path / "fixed", fixed_onnx, stride=8, fixed_shape=[256, 320]), threads=1)
    rng = np.random.default_rng(3)
    ir = rng.integers(0, 256, (1500, 2000), dtype=np.uint8)
    vis = rng.integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    a, b = whole.fuse(ir, vis), tiled.fuse(ir, vis)
    assert a.shape == b.shape == (1500, 2000, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("torch") is None, reason="needs onnxruntime and torch")
def test_v2_student_tiles_match_the_whole_frame(tmp_path):
    """A fixed-shape v2 bundle fuses a frame larger than its tile with the whole frame's statistics in every tile:
    within 1 gray level (mean) of the PyTorch model run on the whole frame. (A v1 student's whole-frame context
    vector sees only its tile, which is why v1 tiles differ from the whole frame.)"""
    import torch

    from edgefusion import preprocess
    from edgefusion.convert.onnx import export_onnx
    from edgefusion.io.images import read_image
    from edgefusion.models.checkpoint import TorchFuser
    from edgefusion.resources import SAMPLES
    from edgefusion.runtime import Fuser
    from runtime_models import make_bundle, perturbed_student

    torch.set_num_threads(1)
    model = perturbed_student(tmp_path / "ctx.pt", seed=4, architecture="student-ctx")
    fixed = export_onnx(model, tmp_path / "fixed.onnx", shape=(64, 96), dynamic=False)
    specs = [{"name": n, "shape": [1, 1, 64, 96], "dtype": "float32"} for n in ("ir", "vis")] + [{"name": "stats", "shape": [1, 6], "dtype": "float32"}]
    tiled = Fuser.open(make_bundle(tmp_path / "b", fixed, stride=8, fixed_shape=[64, 96], inputs=specs), threads=1)
    pair = preprocess.prepare_pair(read_image(SAMPLES / "ir" / "tno_19.png"), read_image(SAMPLES / "vi" / "tno_19.png"))
    assert pair.ir.shape[0] > 2 * 64 and pair.ir.shape[1] > 2 * 96  # several tiles each way
    whole = TorchFuser(model, "ctx").fuse_planes(pair.ir, pair.vis_y)
    diff = np.abs(tiled.fuse_planes(pair.ir, pair.vis_y) - whole) * 255.0
    # the contract asks <= 1 gray level mean; measured 0.09 here, and 1.08 when each tile got its own stats
    assert diff.mean() <= 0.5
