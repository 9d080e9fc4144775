"""frame_stats: the contract's hand values, invariants and edge cases (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion.runtime.frame_stats import N_STATS, frame_stats


def test_hand_values_2x2():
    ir = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    vis = np.array([[0.2, 0.2], [0.6, 0.6]], np.float32)
    # ir: mean 0.5, std 0.5, horizontal |diff| mean 1, vertical 0 -> grad 1
    # vis: mean 0.4, std 0.2, horizontal 0, vertical |diff| mean 0.4 -> grad 0.4
    expected = np.array([0.5, 0.5, 0.4, 0.2, 1.0, 0.4], np.float32)
    got = frame_stats(ir, vis)
    assert got.dtype == np.float32 and got.shape == (N_STATS,)
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_hand_values_3x2_mixed():
    ir = np.array([[0.0, 0.5], [1.0, 0.5], [0.0, 0.0]], np.float32)
    vis = np.full((3, 2), 0.25, np.float32)
    mean = 2.0 / 6
    var = (2 * mean**2 + 2 * (0.5 - mean) ** 2 + (1 - mean) ** 2 + mean**2) / 6
    # horizontal: |0.5|, |-0.5|, 0 -> mean 1/3; vertical: |1|, 0, |-1|, |-0.5| -> mean 2.5/4
    grad = 1.0 / 3 + 2.5 / 4
    expected = np.array([mean, np.sqrt(var), 0.25, 0.0, grad, 0.0], np.float32)
    np.testing.assert_allclose(frame_stats(ir, vis), expected, atol=1e-7)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1)])
def test_axis_of_length_one_contributes_zero(shape):
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    got = frame_stats(x, x)
    if shape == (1, 1):
        assert got[4] == 0.0
    else:
        expected = np.abs(np.diff(x.ravel().astype(np.float64))).mean()
        assert got[4] == pytest.approx(expected, abs=1e-7)
    assert got[4] == got[5]


def test_constant_frame_has_zero_spread_and_gradient():
    x = np.full((7, 9), 0.3, np.float32)
    np.testing.assert_allclose(frame_stats(x, x), [0.3, 0, 0.3, 0, 0, 0], atol=1e-7)


def test_invariants_against_float64_reference():
    rng = np.random.default_rng(1)
    ir, vis = rng.random((33, 47), dtype=np.float32), rng.random((33, 47), dtype=np.float32)
    got = frame_stats(ir, vis)
    assert got[0] == pytest.approx(np.float64(ir).mean(), abs=1e-7)
    assert got[3] == pytest.approx(np.float64(vis).std(), abs=1e-7)  # ddof 0
    # flipping the frame changes no statistic; transposing swaps the gradient terms only (sum unchanged)
    np.testing.assert_allclose(frame_stats(ir[::-1, ::-1], vis[::-1, ::-1]), got, atol=1e-6)
    np.testing.assert_allclose(frame_stats(ir.T, vis.T), got, atol=1e-6)


def test_rejects_mismatched_planes():
    with pytest.raises(ValueError):
        frame_stats(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError):
        frame_stats(np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32))


@pytest.mark.parametrize("shape", [(150, 37), (17, 5), (33, 2), (40, 1)])
def test_row_blocks_match_whole_plane_float64(shape):
    """Frames spanning several row blocks (partial last block, a block of one row) equal the definition
    computed on whole float64 planes, gradients included."""
    rng = np.random.default_rng(2)
    ir, vis = rng.random((2, *shape), dtype=np.float32)

    def reference(x):
        x = x.astype(np.float64)
        return x.mean(), x.std(), sum(np.abs(np.diff(x, axis=a)).mean() for a in (0, 1) if x.shape[a] > 1)

    (m_ir, s_ir, g_ir), (m_vis, s_vis, g_vis) = reference(ir), reference(vis)
    np.testing.assert_allclose(frame_stats(ir, vis), [m_ir, s_ir, m_vis, s_vis, g_ir, g_vis], rtol=0, atol=1e-7)
