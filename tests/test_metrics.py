"""Fusion metrics: the shared reference values, hand-computed cases and invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgefusion import metrics
from edgefusion.io.color import luma_u8
from edgefusion.io.images import read_image

RNG = np.random.default_rng(1234)


def _random_image(shape=(48, 40)) -> np.ndarray:
    """A smooth-ish random image on integer levels 0..255."""
    noise = RNG.integers(0, 256, size=shape).astype(np.float64)
    ramp = np.linspace(0, 120, shape[1])[None, :]
    return np.clip(np.rint(0.5 * noise + ramp), 0, 255)


# --- reference values shared with the independent implementation ----------------------------


def test_reference_values_every_image(shared_data):
    """Both fixed fusions of TNO and RoadScene match every reference value within 0.1%."""
    reference = json.loads((shared_data / "reference-metrics.json").read_text())
    failures = []
    checked = 0
    for dataset, fusions in reference["datasets"].items():
        ir_files = {p.stem: p for p in (shared_data / dataset / "ir").iterdir()}
        vis_files = {p.stem: p for p in (shared_data / dataset / "vi").iterdir()}
        for name in sorted(fusions["max"]["images"]):
            a = luma_u8(read_image(ir_files[name]))
            b = luma_u8(read_image(vis_files[name]))
            ai, bi = a.astype(np.int64), b.astype(np.int64)
            fused = {"max": np.maximum(ai, bi), "mean": (ai + bi + 1) // 2}
            for fusion, f in fused.items():
                got = metrics.compute_all(a, b, f.astype(np.float64))
                for metric, expected in fusions[fusion]["images"][name].items():
                    checked += 1
                    if not math.isclose(got[metric], expected, rel_tol=1e-3, abs_tol=1e-9):
                        failures.append(f"{dataset}/{fusion}/{name} {metric}: got {got[metric]:.6f}, reference {expected:.6f}")
    assert checked == 2 * 9 * (25 + 50)
    assert not failures, "\n".join(failures[:20])


# --- hand-computed values ----------------------------------------------------------------------


def test_entropy_two_levels_half_half_is_one_bit():
    image = np.zeros((8, 8))
    image[:, 4:] = 200
    assert metrics.entropy(image) == pytest.approx(1.0, abs=1e-12)
    assert metrics.entropy(image, base=math.e) == pytest.approx(math.log(2), abs=1e-12)


def test_entropy_constant_and_uniform():
    assert metrics.entropy(np.full((5, 7), 42.0)) == 0.0
    all_levels = np.arange(256, dtype=np.float64).reshape(16, 16)
    assert metrics.entropy(all_levels) == pytest.approx(8.0, abs=1e-12)


def test_standard_deviation_is_population():
    assert metrics.standard_deviation(np.array([[0.0, 2.0]])) == pytest.approx(1.0)
    assert metrics.standard_deviation(np.array([[1.0, 2.0, 3.0, 4.0]])) == pytest.approx(math.sqrt(1.25))


def test_spatial_frequency_means_over_actual_differences():
    image = np.array([[0.0, 3.0, 3.0], [0.0, 3.0, 3.0]])
    # horizontal differences 3, 0, 3, 0 -> mean square 4.5; vertical differences all 0
    assert metrics.spatial_frequency(image) == pytest.approx(math.sqrt(4.5))
    image = np.array([[0.0, 0.0], [4.0, 4.0], [4.0, 4.0]])
    # vertical differences 4, 4, 0, 0 -> mean square 8; horizontal all 0
    assert metrics.spatial_frequency(image) == pytest.approx(math.sqrt(8.0))


def test_average_gradient_of_ramp_and_borders():
    ramp = np.tile(np.arange(10, dtype=np.float64) * 3.0, (6, 1))
    # np.gradient is exact on a linear ramp, borders included: gx = 3, gy = 0
    assert metrics.average_gradient(ramp) == pytest.approx(3.0 / math.sqrt(2.0))
    step = np.array([[0.0, 0.0, 6.0]])
    step = np.repeat(step, 2, axis=0)
    # gx per row: [0, 3, 6] (one-sided, central, one-sided); gy = 0
    assert metrics.average_gradient(step) == pytest.approx(np.mean([0, 3, 6]) / math.sqrt(2.0))


def test_constant_image_has_no_detail():
    flat = np.full((20, 30), 77.0)
    assert metrics.spatial_frequency(flat) == 0.0
    assert metrics.average_gradient(flat) == 0.0
    assert metrics.standard_deviation(flat) == 0.0


def test_mutual_information_hand_values():
    x = np.array([[0.0, 0.0, 255.0, 255.0]])
    independent = np.array([[0.0, 255.0, 0.0, 255.0]])
    assert metrics.mutual_information(x, independent) == pytest.approx(0.0, abs=1e-12)
    assert metrics.mutual_information(x, x) == pytest.approx(math.log(2))
    assert metrics.mutual_information(x, x, base=2) == pytest.approx(1.0)


def test_scd_of_sum_is_two():
    a, b = _random_image(), _random_image()
    # F - B = A and F - A = B, so both correlations are exactly 1
    assert metrics.scd(a, b, a + b) == pytest.approx(2.0)


def test_scd_correlation_with_a_constant_counts_zero():
    a, b = np.zeros((16, 16)), _random_image((16, 16))
    # F = max(A, B) = B: F - B is constant (term 0), F - A = B (term 1)
    assert metrics.scd(a, b, np.maximum(a, b)) == pytest.approx(1.0)


def test_qabf_identical_inputs_with_strong_edges():
    image = np.zeros((16, 16))
    image[:, 8:] = 100.0
    c = {"Tg": 0.9994, "kg": -15, "Dg": 0.5, "Ta": 0.9879, "ka": -22, "Da": 0.8}
    # equal strengths (>= 100) keep g_F as ratio -> Qg = Tg; equal angles -> orientation 1
    expected = c["Tg"] / (1 + math.exp(c["kg"] * (100 - c["Dg"]))) * c["Ta"] / (1 + math.exp(c["ka"] * (1 - c["Da"])))
    assert metrics.qabf(image, image, image) == pytest.approx(expected, rel=1e-9)


def test_qabf_no_source_edges_is_zero():
    flat = np.zeros((10, 10))  # Sobel pads with zeros: only a black source has no edges at all
    assert metrics.qabf(flat, flat, _random_image((10, 10))) == 0.0


def test_psnr():
    x = np.zeros((4, 4))
    assert metrics.psnr(x, x) == math.inf
    assert metrics.psnr(x, x + 1.0) == pytest.approx(20 * math.log10(255.0))
    assert metrics.psnr(x, x + 0.1, data_range=1.0) == pytest.approx(20.0)
    assert metrics.psnr_of_mse(0.0) == math.inf
    assert metrics.psnr_of_mse(100.0) == pytest.approx(28.1308, abs=1e-4)  # 10 log10(65025 / 100)
    assert metrics.psnr_of_mse(1e-4, data_range=1.0) == pytest.approx(40.0)


# --- invariants --------------------------------------------------------------------------------


def test_ssim_of_identical_images_is_one_per_term():
    x = _random_image()
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.ssim(x, x, textbook=True) == pytest.approx(1.0)
    assert metrics.compute_all(x, x, x, names=("SSIM",))["SSIM"] == pytest.approx(2.0)
    y = _random_image()
    assert metrics.ssim(x, y) < 0.9


def test_ssim_default_uses_data_range_two():
    x, y = _random_image(), _random_image()
    skimage_metrics = pytest.importorskip("skimage.metrics")

    expected = skimage_metrics.structural_similarity(x.astype(np.float32), y.astype(np.float32), data_range=2.0, win_size=7)
    assert metrics.ssim(x, y) == pytest.approx(expected)
    assert metrics.ssim(x, y) != pytest.approx(metrics.ssim(x, y, textbook=True))


def test_mutual_information_self_is_entropy_and_symmetric():
    x, y = _random_image(), _random_image()
    assert metrics.mutual_information(x, x, base=2) == pytest.approx(metrics.entropy(x))
    assert metrics.mutual_information(x, x) == pytest.approx(metrics.entropy(x, base=math.e))
    assert metrics.mutual_information(x, y) == pytest.approx(metrics.mutual_information(y, x))


def test_histogram_metrics_ignore_a_relabeling_of_levels():
    x, y = _random_image(), _random_image()
    relabel = RNG.permutation(256).astype(np.float64)
    rx = relabel[x.astype(int)]
    assert metrics.entropy(rx) == pytest.approx(metrics.entropy(x))
    assert metrics.mutual_information(rx, y) == pytest.approx(metrics.mutual_information(x, y))


def test_terms_are_symmetric_in_the_sources():
    a, b = _random_image(), _random_image()
    f = np.rint((a + b) / 2)
    one = metrics.compute_all(a, b, f)
    swapped = metrics.compute_all(b, a, f)
    for name in ("MI", "SCD", "VIF", "Qabf", "SSIM"):
        assert one[name] == pytest.approx(swapped[name]), name


def test_scale_properties():
    x = _random_image()
    assert metrics.standard_deviation(2 * x) == pytest.approx(2 * metrics.standard_deviation(x))
    assert metrics.spatial_frequency(2 * x) == pytest.approx(2 * metrics.spatial_frequency(x))
    assert metrics.average_gradient(2 * x) == pytest.approx(2 * metrics.average_gradient(x))
    a, b = _random_image(), _random_image()
    # correlations ignore gain and offset of the sources when F scales with them
    assert metrics.scd(3 * a + 5, 3 * b + 5, 3 * (a + b) / 2 + 5) == pytest.approx(metrics.scd(a, b, (a + b) / 2))


def test_vif_identity_and_contrast():
    x = np.rint(np.clip(_random_image((96, 96)) * 0.5 + 60, 0, 255))
    assert metrics.vif(x, x) == pytest.approx(1.0, abs=1e-6)
    assert metrics.vif(x, 1.5 * x) > 1.0  # contrast enhancement scores above 1
    assert 0.0 <= metrics.vif(x, np.full_like(x, x.mean())) < 1e-6


def test_vif_small_image_falls_back_to_one():
    tiny = _random_image((12, 12))
    assert metrics.vif(tiny, tiny * 0.5) == 1.0


def test_compute_all_names_and_luma_reduction():
    a, b = _random_image(), _random_image()
    f = np.rint((a + b) / 2)
    values = metrics.compute_all(a, b, f)
    assert list(values) == ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"]
    assert list(metrics.METRICS) == list(values)
    rgb = np.repeat(f[..., None], 3, axis=2).astype(np.uint8)
    assert metrics.compute_all(a, b, rgb) == pytest.approx(values)
    bits = metrics.compute_all(a, b, f, names=("MI",), mi_base=2)
    assert bits["MI"] == pytest.approx(values["MI"] / math.log(2))


def test_compute_all_rejects_mismatched_sizes_and_unknown_names():
    a = _random_image()
    with pytest.raises(ValueError, match="differ in size"):
        metrics.compute_all(a, a, a[:-1])
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.compute_all(a, a, a, names=("PSNR",))


def test_fused_image_is_not_stretched():
    a, b = _random_image(), _random_image()
    f = np.rint((a + b) / 4)  # dark fusion
    assert metrics.compute_all(a, b, f)["SD"] == pytest.approx(np.std(f))
