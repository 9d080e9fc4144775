"""Classical fusion baselines: hand-computed cases, pyramid invariants, the PlaneFuser contract."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion import baselines
from edgefusion.errors import UserError
from edgefusion.fusers import open_fuser
from edgefusion.runtime.frame import fuse_arrays

RNG = np.random.default_rng(7)

SHAPES = [(1, 1), (2, 3), (7, 9), (33, 17), (64, 64), (101, 77)]


def test_max_and_mean_hand_computed():
    ir = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)
    vis = np.array([[0.5, 0.25], [0.0, 0.75]], dtype=np.float32)
    np.testing.assert_array_equal(baselines.fuse_max(ir, vis), [[0.5, 0.5], [1.0, 0.75]])
    np.testing.assert_array_equal(baselines.fuse_mean(ir, vis), [[0.25, 0.375], [0.5, 0.5]])
    assert baselines.fuse_max(ir, vis).dtype == np.float32
    assert baselines.fuse_mean(ir, vis).dtype == np.float32


@pytest.mark.parametrize("shape", SHAPES)
def test_laplacian_of_identical_inputs_is_the_input(shape):
    plane = RNG.random(shape).astype(np.float32)
    fused = baselines.fuse_laplacian(plane, plane)
    assert fused.shape == shape and fused.dtype == np.float32
    np.testing.assert_allclose(fused, plane, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_pyramid_reconstructs_exactly(shape):
    plane = RNG.random(shape)
    pyramid = baselines.laplacian_pyramid(plane, 4)
    assert len(pyramid) == 5
    np.testing.assert_allclose(baselines.reconstruct(pyramid), plane, atol=1e-12)


def test_pyramid_level_sizes_halve_with_ceiling():
    pyramid = baselines.laplacian_pyramid(np.zeros((33, 17)), 3)
    assert [p.shape for p in pyramid] == [(33, 17), (17, 9), (9, 5), (5, 3)]


def test_pyramid_levels_stop_at_four_pixels():
    assert baselines.pyramid_levels((64, 64)) == 4  # 32, 16, 8, 4
    assert baselines.pyramid_levels((33, 40)) == 3  # 17, 9, 5 (then 3 < 4)
    assert baselines.pyramid_levels((7, 9)) == 1  # 4
    assert baselines.pyramid_levels((3, 5)) == 0


def test_laplacian_of_constant_planes_averages_them():
    a = np.full((20, 24), 0.2, dtype=np.float32)
    b = np.full((20, 24), 0.8, dtype=np.float32)
    np.testing.assert_allclose(baselines.fuse_laplacian(a, b), 0.5, atol=1e-6)


def test_laplacian_keeps_the_stronger_detail():
    ir = np.zeros((32, 32), dtype=np.float32)
    ir[8:24, 8:24] = 1.0  # a bright target on a dark background
    vis = np.full((32, 32), 0.5, dtype=np.float32)  # flat visible image: no detail
    fused = baselines.fuse_laplacian(ir, vis)
    mean = baselines.fuse_mean(ir, vis)
    contrast = lambda img: img[12:20, 12:20].mean() - img[:4, :4].mean()  # noqa: E731
    assert contrast(fused) > 1.5 * contrast(mean)


def test_laplacian_is_symmetric_without_ties():
    a, b = RNG.random((40, 30)).astype(np.float32), RNG.random((40, 30)).astype(np.float32)
    np.testing.assert_allclose(baselines.fuse_laplacian(a, b), baselines.fuse_laplacian(b, a), atol=1e-6)


@pytest.mark.parametrize("method", baselines.METHODS)
def test_output_range_and_shape(method):
    checker = (np.indices((45, 31)).sum(axis=0) % 2).astype(np.float32)  # extreme detail: 0/1 checkerboard
    fused = baselines.MethodFuser(method).fuse_planes(checker, 1.0 - checker)
    assert fused.shape == (45, 31) and fused.dtype == np.float32
    assert fused.min() >= 0.0 and fused.max() <= 1.0


def test_method_fuser_contract():
    fuser = open_fuser("max")
    assert isinstance(fuser, baselines.MethodFuser) and fuser.name == "max"
    with pytest.raises(UserError, match="unknown fusion method"):
        baselines.MethodFuser("median")
    with pytest.raises(ValueError, match="equal shape"):
        fuser.fuse_planes(np.zeros((4, 4)), np.zeros((4, 5)))


def test_method_through_fuse_arrays_on_uint8():
    ir = RNG.integers(0, 256, (16, 12), dtype=np.uint8)
    vis = RNG.integers(0, 256, (16, 12), dtype=np.uint8)
    np.testing.assert_array_equal(fuse_arrays(open_fuser("max"), ir, vis), np.maximum(ir, vis))
