"""``benchmarks/fidelity_diagnosis.py``: the error-diagnosis helpers on small synthetic arrays with hand values."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fidelity_diagnosis as fd  # noqa: E402


@pytest.fixture(scope="module")
def ramp() -> np.ndarray:
    """A 24 x 32 8-bit-valued image with every level pattern different."""
    return np.random.default_rng(3).integers(0, 256, (24, 32)).astype(np.float64)


def test_affine_fit_recovers_a_and_b(ramp):
    a, b = fd.affine_fit(ramp, 1.7 * ramp - 12.0)
    assert a == pytest.approx(1.7, abs=1e-12) and b == pytest.approx(-12.0, abs=1e-9)


def test_affine_fit_of_a_constant_image_is_the_mean():
    assert fd.affine_fit(np.full((4, 4), 9.0), np.arange(16.0).reshape(4, 4)) == (0.0, pytest.approx(7.5))


def test_frequency_split_of_a_constant_error_is_all_low_pass(ramp):
    split = fd.frequency_split(ramp + 5.0, ramp)
    assert split["mse"] == pytest.approx(25.0)
    for sigma in fd.SIGMAS:
        band = split[f"{sigma:g}"]
        assert band["mse_low"] == pytest.approx(25.0) and band["mse_high"] == pytest.approx(0.0, abs=1e-18)
        assert band["psnr_low_fixed"] > 150


def test_frequency_split_of_a_checkerboard_error_is_all_residual():
    checker = 3.0 * (-1.0) ** np.add.outer(np.arange(64), np.arange(64))
    band = fd.frequency_split(np.full((64, 64), 100.0) + checker, np.full((64, 64), 100.0))["8"]
    assert band["mse_low"] < 1e-4  # not 0: the reflected border breaks the pattern's phase
    assert band["mse_high"] == pytest.approx(9.0, abs=1e-3)
    assert band["psnr_low_fixed"] == pytest.approx(10 * math.log10(255**2 / 9.0), abs=1e-3)  # 38.59 dB


def test_isotonic_pools_violators_by_weight():
    np.testing.assert_allclose(fd.isotonic(np.array([1.0, 3.0, 2.0]), np.ones(3)), [1.0, 2.5, 2.5])
    np.testing.assert_allclose(fd.isotonic(np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 3.0])), [1.0, 2.25, 2.25])
    np.testing.assert_allclose(fd.isotonic(np.array([4.0, 3.0, 2.0, 1.0]), np.ones(4)), [2.5] * 4)


def test_curve_fit_recovers_a_monotone_curve_and_interpolates_gaps(ramp):
    lut = fd.curve_fit(ramp, 16.0 * np.sqrt(ramp))
    levels = np.unique(ramp).astype(int)
    np.testing.assert_allclose(lut[levels], 16.0 * np.sqrt(levels), atol=1e-9)
    gap = fd.curve_fit(np.array([0.0, 10.0, 10.0]), np.array([0.0, 100.0, 100.0]))
    assert gap[5] == pytest.approx(50.0) and gap[255] == pytest.approx(100.0)
    assert np.all(np.diff(fd.curve_fit(ramp, -ramp)) >= 0)  # a decreasing relation still gets a monotone curve


def test_curve_fit_rejects_levels_out_of_8_bits():
    with pytest.raises(ValueError, match="0..255"):
        fd.curve_fit(np.array([0.0, 256.0]), np.zeros(2))


def test_detail_gain_of_an_affine_copy(ramp):
    detail = fd.detail_gain(ramp, 2.0 * ramp + 7.0)
    assert detail["gain"] == pytest.approx(2.0) and detail["corr"] == pytest.approx(1.0) and detail["amplitude_ratio"] == pytest.approx(2.0)


def test_local_std_of_flat_and_striped_images():
    assert np.all(fd.local_std(np.full((16, 16), 42.0)) < 1e-6)
    stripes = np.tile(np.array([0.0, 10.0]), (32, 16))
    assert fd.local_std(stripes)[8:-8, 8:-8] == pytest.approx(5.0, abs=0.01)


def test_contrast_bins_hand_values():
    bins = fd.contrast_bins(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 3.0, 5.0, 100.0]))
    assert bins == {"pixels": [1, 1, 1, 0, 0, 1], "sq_error": [1.0, 4.0, 9.0, 0.0, 0.0, 16.0]}


def test_diagnose_and_summarize_an_affine_student(ramp):
    teacher = ramp
    student = np.rint(teacher / 1.25 + 20.0)
    frame = fd.diagnose_frame(student, teacher, ramp, ramp)
    assert frame["affine"]["a"] == pytest.approx(1.25, abs=0.01) and frame["affine"]["b"] == pytest.approx(-25.0, abs=1.0) and frame["affine"]["psnr"] > frame["psnr"]
    assert frame["curve_psnr"] >= frame["affine"]["psnr"] - 1e-9  # a monotone curve can do what an increasing affine map does
    summary = fd.summarize([frame, frame])
    assert summary["psnr"] == pytest.approx(frame["psnr"])
    assert sum(b["pixel_share"] for b in summary["contrast_bins"]) == pytest.approx(1.0)
    assert sum(b["error_share"] for b in summary["contrast_bins"]) == pytest.approx(1.0)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plots_write_png_files(tmp_path, ramp):
    frame = fd.diagnose_frame(np.rint(ramp * 0.9), ramp, ramp, ramp)
    fd.plot_bars({"A": {"x": fd.summarize([frame])}}, tmp_path / "bars.png")
    fd.plot_maps([{"title": "f", "ir": ramp, "vis": ramp, "t": ramp, "s": ramp * 0.9, "shifted": ramp}], tmp_path / "maps.png")
    for name in ("bars.png", "maps.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mean_matching_removes_a_constant_offset_only(ramp):
    base = np.floor(ramp / 2)
    frame = fd.diagnose_frame(base + 10.0, base, ramp, ramp)
    assert frame["mean"] == {"student": pytest.approx(base.mean() + 10.0), "teacher": pytest.approx(base.mean()), "psnr_matched": math.inf}
    assert frame["psnr"] == pytest.approx(10 * math.log10(255**2 / 100.0))  # 28.13 dB
    summary = fd.summarize([frame, fd.diagnose_frame(base + 20.0, base + 5.0, ramp, ramp)])
    assert summary["mean_corr"] == pytest.approx(1.0) and summary["teacher_mean_spread"] == pytest.approx(2.5)
