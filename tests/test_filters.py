"""numpy-only filters (edgefusion._filters) against hand values and, where installed, scipy/scikit-image."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion import _filters, baselines, metrics

RNG = np.random.default_rng(2024)

# odd and tiny sizes: pads wider than the axis exercise repeated reflection
SHAPES = [(1, 1), (1, 5), (2, 3), (3, 2), (5, 9), (13, 7), (31, 17)]
PADDED_MODES = ("reflect", "mirror", "constant")


def _close(got: np.ndarray, expected: np.ndarray, rtol: float = 1e-10) -> None:
    assert got.shape == expected.shape and got.dtype == expected.dtype
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=rtol * scale)


# --- hand-computed -----------------------------------------------------------------------------

X = np.array([1.0, 2.0, 3.0, 4.0])
PREVIOUS = [1.0, 0.0, 0.0]  # correlation picks x[i - 1]: shows what lies left of the border


@pytest.mark.parametrize(
    "mode, expected",
    [("reflect", [1, 1, 2, 3]), ("mirror", [2, 1, 2, 3]), ("constant", [0, 1, 2, 3])],
)
def test_border_modes_hand_values(mode, expected):
    np.testing.assert_array_equal(_filters.correlate1d(X, PREVIOUS, 0, mode), expected)


def test_correlation_is_not_convolution_and_valid_shrinks():
    np.testing.assert_array_equal(_filters.correlate1d(X, [1.0, 2.0, 3.0], 0, "valid"), [1 + 4 + 9, 2 + 6 + 12])
    assert _filters.correlate1d(X, np.ones(5), 0, "valid").shape == (0,)
    assert _filters.correlate1d(np.ones((3, 6)), np.ones(5), 1, "valid").shape == (3, 2)


def test_uniform_filter_hand_values():
    # 'reflect' extends [1, 2, 3, 4] to 1 | 1 2 3 4 | 4: window means of three
    np.testing.assert_allclose(_filters.uniform_filter1d(X, 3, 0), [4 / 3, 2, 3, 11 / 3], rtol=1e-15)
    np.testing.assert_allclose(_filters.uniform_filter1d(X, 3, 0, "constant"), [1, 2, 3, 7 / 3], rtol=1e-15)


def test_uniform_and_gaussian_preserve_constants_and_dtype():
    flat = np.full((9, 6), 3.0, dtype=np.float32)
    out = _filters.uniform_filter(flat, 7)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)
    assert _filters.gaussian_filter(np.full((4, 5), 2), 1.5, 3.5).dtype == np.float64
    kernel = _filters.gaussian_kernel1d(1.5, 3.5)
    assert kernel.size == 11 and kernel.sum() == pytest.approx(1.0) and np.argmax(kernel) == 5


def test_rejects_even_weights_and_unknown_modes():
    with pytest.raises(ValueError, match="odd length"):
        _filters.correlate1d(X, [0.5, 0.5], 0, "reflect")
    with pytest.raises(ValueError, match="odd and positive"):
        _filters.uniform_filter(X, 4)
    with pytest.raises(ValueError, match="border mode"):
        _filters.correlate1d(X, PREVIOUS, 0, "wrap")


def test_sobel_hand_values():
    step = np.zeros((5, 6))
    step[:, 3:] = 1.0  # vertical edge between columns 2 and 3
    strength, angle = metrics._sobel_edges(step)
    # inside rows: |Sx| = 4 on both columns next to the edge and on the last column, whose
    # right neighbour is the zero padding; Sy = 0
    np.testing.assert_array_equal(strength[2], [0, 0, 4, 4, 0, 4])
    assert angle[2, 2] == 0.0 and angle[2, 0] == pytest.approx(np.pi / 2)


# --- against scipy.ndimage / scikit-image ---------------------------------------------------------


@pytest.fixture(scope="module")
def ndimage():
    return pytest.importorskip("scipy.ndimage")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", PADDED_MODES)
@pytest.mark.parametrize("taps", [3, 5, 7, 11])
def test_correlate1d_matches_scipy(ndimage, shape, mode, taps):
    x = RNG.normal(100.0, 50.0, shape)
    general = RNG.normal(size=taps)
    symmetric = np.convolve(np.ones(taps // 2 + 1), np.ones(taps // 2 + 1))
    for weights in (general, symmetric, general - general[::-1]):  # the last one antisymmetric
        for axis in (0, 1):
            expected = ndimage.correlate1d(x, weights, axis=axis, mode=mode)
            _close(_filters.correlate1d(x, weights, axis, mode), expected)


@pytest.mark.parametrize("shape", [(9, 9), (13, 7), (40, 35)])
@pytest.mark.parametrize("taps", [3, 5, 9])
def test_valid_matches_scipy_interior(ndimage, shape, taps):
    x = RNG.normal(size=shape)
    w = RNG.normal(size=taps)
    r = taps // 2
    expected = ndimage.correlate1d(ndimage.correlate1d(x, w, axis=0, mode="constant"), w, axis=1, mode="constant")
    _close(_filters.correlate_separable(x, (w, w), "valid"), expected[r : shape[0] - r, r : shape[1] - r])


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_and_gaussian_filters_match_scipy(ndimage, shape):
    x = RNG.uniform(0, 255, shape)
    for size in (1, 3, 7):
        for mode in PADDED_MODES:
            _close(_filters.uniform_filter(x, size, mode), ndimage.uniform_filter(x, size, mode=mode))
    _close(_filters.gaussian_filter(x, 1.5, 3.5), ndimage.gaussian_filter(x, 1.5, mode="reflect", truncate=3.5))
    x32 = x.astype(np.float32)  # float32 rounds after every axis, like scipy: equal to float32 precision
    _close(_filters.uniform_filter(x32, 7), ndimage.uniform_filter(x32, 7, mode="reflect"), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_sobel_matches_scipy_convolve(ndimage, shape):
    x = RNG.integers(0, 256, shape).astype(np.float64)
    sx = ndimage.convolve(x, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], mode="constant")
    sy = ndimage.convolve(x, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]], mode="constant")
    strength, angle = metrics._sobel_edges(x)
    np.testing.assert_array_equal(strength, np.sqrt(sx * sx + sy * sy))  # integer sums: exact
    expected_angle = np.full(shape, np.pi / 2)
    np.divide(sy, sx, out=expected_angle, where=sx != 0)
    expected_angle[sx != 0] = np.arctan(expected_angle[sx != 0])
    np.testing.assert_array_equal(angle, expected_angle)


@pytest.mark.parametrize("shape", SHAPES)
def test_laplacian_blur_matches_scipy_mirror(ndimage, shape):
    x = RNG.random(shape)
    kernel = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0 * 2.0  # gain 4 of the expand step
    expected = ndimage.correlate1d(ndimage.correlate1d(x, kernel, axis=0, mode="mirror"), kernel, axis=1, mode="mirror")
    _close(baselines._blur(x, gain=4.0), expected)


@pytest.mark.parametrize("shape", [(7, 7), (11, 13), (29, 23), (48, 41)])
def test_ssim_matches_scikit_image(shape):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    x = RNG.integers(0, 256, shape).astype(np.float64)
    y = np.clip(x + RNG.normal(0, 30, shape), 0, 255).round()
    expected = skimage_metrics.structural_similarity(x.astype(np.float32), y.astype(np.float32), data_range=2.0)
    # float32 arithmetic in both: equal up to float32 rounding of the filter outputs
    assert metrics.ssim(x, y) == pytest.approx(expected, rel=1e-6)
    if min(shape) >= 11:
        textbook = skimage_metrics.structural_similarity(x, y, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert metrics.ssim(x, y, textbook=True) == pytest.approx(textbook, rel=1e-10)


def test_ssim_rejects_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(np.zeros((6, 9)), np.zeros((6, 9)))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((10, 12)), np.zeros((10, 12)), textbook=True)
