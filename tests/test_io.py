"""Shared core: image files, pairing, atomic output, color conversion and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgefusion import preprocess
from edgefusion.errors import UserError
from edgefusion.runtime.frame import fuse_arrays
from edgefusion.io import atomic, color, images, pairs

RNG = np.random.default_rng(3)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# --- images -------------------------------------------------------------------------------------


def test_read_image_keeps_types_and_shapes(tmp_path):
    gray = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    deep = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)
    np.testing.assert_array_equal(images.read_image(_save(tmp_path / "g.png", gray)), gray)
    np.testing.assert_array_equal(images.read_image(_save(tmp_path / "c.png", rgb)), rgb)
    for suffix in ("png", "tif"):
        read = images.read_image(_save(tmp_path / f"d.{suffix}", deep))
        assert read.dtype == np.uint16
        np.testing.assert_array_equal(read, deep)


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_read_image_truncated_file_is_a_user_error(tmp_path, suffix):
    full = _save(tmp_path / f"full.{suffix}", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UserError, match="cannot read image") as info:
        images.read_image(cut)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


def test_read_image_garbage_and_missing(tmp_path):
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(UserError, match="cannot read image"):
        images.read_image(garbage)
    with pytest.raises(UserError, match="not found"):
        images.read_image(tmp_path / "missing.png")


def test_write_image_is_atomic_and_checks_suffix(tmp_path):
    image = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    images.write_image(tmp_path / "out.png", image)
    np.testing.assert_array_equal(images.read_image(tmp_path / "out.png"), image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    with pytest.raises(UserError, match="unsupported output image type"):
        images.write_image(tmp_path / "out.xyz", image)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        images.write_image(tmp_path / "dir.png", image)


# --- atomic output ------------------------------------------------------------------------------


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_folder_moves_files_only_on_success(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic.staged_folder(target) as stage:
            (stage / "1.txt").write_text("one")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic.staged_folder(target) as stage:
        (stage / "1.txt").write_text("one")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (target / "1.txt").read_text() == "one"


# --- pairs --------------------------------------------------------------------------------------


def _dataset(root, names, ir_dir="ir", vis_dir="vi"):
    for name in names:
        _save(root / ir_dir / f"{name}.png", np.zeros((4, 4), np.uint8))
        _save(root / vis_dir / f"{name}.jpg", np.zeros((4, 4, 3), np.uint8))
    return root


def test_find_pairs_by_stem_and_folder_names(tmp_path):
    found = pairs.find_pairs(_dataset(tmp_path / "a", ["02", "01"]))
    assert [(p.name, p.ir.name, p.vis.name) for p in found] == [("01", "01.png", "01.jpg"), ("02", "02.png", "02.jpg")]
    found = pairs.find_pairs(_dataset(tmp_path / "b", ["x"], "infrared", "visible"))
    assert [p.name for p in found] == ["x"]


def test_pairs_missing_partner_empty_and_duplicates(tmp_path):
    root = _dataset(tmp_path / "d", ["01", "02"])
    (root / "vi" / "02.jpg").unlink()
    with pytest.raises(UserError, match="02.png has no visible partner"):
        pairs.find_pairs(root)
    empty = tmp_path / "e"
    (empty / "ir").mkdir(parents=True)
    (empty / "vi").mkdir()
    with pytest.raises(UserError, match="no images"):
        pairs.find_pairs(empty)
    with pytest.raises(UserError, match="must hold an IR folder"):
        pairs.find_pairs(tmp_path / "d" / "ir")
    _save(root / "ir" / "01.bmp", np.zeros((4, 4), np.uint8))
    with pytest.raises(UserError, match="two images share the name"):
        pairs.find_pairs(root)


def test_resolve_pairs_files_folders_and_mixtures(tmp_path):
    root = _dataset(tmp_path, ["01"])
    single = pairs.resolve_pairs(root / "ir" / "01.png", root / "vi" / "01.jpg")
    assert [p.name for p in single] == ["01"]
    assert [p.name for p in pairs.resolve_pairs(root / "ir", root / "vi")] == ["01"]
    with pytest.raises(UserError, match="both be files or both be folders"):
        pairs.resolve_pairs(root / "ir" / "01.png", root / "vi")
    with pytest.raises(UserError, match="input not found"):
        pairs.resolve_pairs(root / "ir" / "nope.png", root / "vi" / "01.jpg")


# --- color --------------------------------------------------------------------------------------


def test_luma_u8_hand_values():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 10, 10]]], dtype=np.uint8)
    # 0.299*255 = 76.245, 0.587*255 = 149.685, 0.114*255 = 29.07
    np.testing.assert_array_equal(color.luma_u8(rgb), [[76, 150, 29, 10]])
    gray = np.array([[3, 250]], dtype=np.uint8)
    assert color.luma_u8(gray).dtype == np.float64
    np.testing.assert_array_equal(color.luma_u8(gray), gray)


def test_ycbcr_round_trip_within_one_level():
    rgb = RNG.integers(0, 256, (32, 32, 3)).astype(np.float32) / 255
    y, cbcr = color.rgb_to_ycbcr(rgb)
    back = color.ycbcr_to_rgb(y, cbcr)
    assert np.abs(np.rint(back * 255) - np.rint(rgb * 255)).max() <= 1
    gray = np.full((2, 2, 3), 0.4, np.float32)
    _, cbcr = color.rgb_to_ycbcr(gray)
    np.testing.assert_allclose(cbcr, 0.5, atol=1e-6)  # neutral chroma


class _KeepVisible:
    name = "keep-visible"

    def fuse_planes(self, ir, vis_y):
        return vis_y


def test_color_round_trip_synthetic():
    vis = RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    ir = RNG.integers(0, 256, (24, 20), dtype=np.uint8)
    out = fuse_arrays(_KeepVisible(), ir, vis)
    assert out.shape == vis.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - vis.astype(int)).max() <= 1


def test_color_round_trip_roadscene(shared_data):
    ir = images.read_image(shared_data / "RoadScene" / "ir" / "FLIR_00211.jpg")
    vis = images.read_image(shared_data / "RoadScene" / "vi" / "FLIR_00211.jpg")
    assert vis.ndim == 3
    out = fuse_arrays(_KeepVisible(), ir, vis)
    assert np.abs(out.astype(int) - vis.astype(int)).max() <= 1


# --- preprocessing ------------------------------------------------------------------------------


def test_to_unit_float_8_bit_and_float():
    np.testing.assert_allclose(preprocess.to_unit_float(np.array([0, 51, 255], np.uint8)), [0.0, 0.2, 1.0], atol=1e-7)
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        preprocess.to_unit_float(np.array([0.5, 1.5]))
    with pytest.raises(UserError, match="unsupported pixel type"):
        preprocess.to_unit_float(np.array([1, 2], np.int32))


def test_thermal_stretch_maps_percentiles_to_black_and_white():
    frame = (np.arange(1000).reshape(25, 40) * 7 + 3000).astype(np.uint16)
    lo, hi = np.percentile(frame, [0.5, 99.5])
    out = preprocess.to_unit_float(frame)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, np.clip((frame - lo) / (hi - lo), 0, 1), atol=1e-6)
    assert not preprocess.to_unit_float(np.full((3, 3), 999, np.uint16)).any()
    with pytest.raises(UserError, match="percentiles"):
        preprocess.ThermalStretch(60, 40)


def test_prepare_pair_planes_and_size_check():
    ir = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    gray_rgb = np.repeat(RNG.integers(0, 256, (10, 12, 1), dtype=np.uint8), 3, axis=2)
    pair = preprocess.prepare_pair(ir, gray_rgb)
    assert pair.vis_cbcr is None and pair.ir.shape == pair.vis_y.shape == (10, 12)
    np.testing.assert_allclose(pair.vis_y, gray_rgb[..., 0] / 255, atol=1e-7)
    color_vis = RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    assert preprocess.prepare_pair(ir, color_vis).vis_cbcr.shape == (2, 10, 12)
    with pytest.raises(UserError, match=r"IR 12x10, visible 13x10"):
        preprocess.prepare_pair(ir, np.zeros((10, 13), np.uint8))


def test_pad_to_multiple_and_model_inputs():
    plane = np.arange(15, dtype=np.float32).reshape(3, 5)
    padded = preprocess.pad_to_multiple(plane, 4)
    assert padded.shape == (4, 8)
    np.testing.assert_array_equal(padded[3], padded[2])  # edge replication
    np.testing.assert_array_equal(padded[:, 7], padded[:, 4])
    assert preprocess.pad_to_multiple(plane, 1) is plane
    pair = preprocess.prepare_pair(np.zeros((3, 5), np.uint8), np.zeros((3, 5), np.uint8))
    ir, vis = preprocess.model_inputs(pair, 8)
    assert ir.shape == vis.shape == (1, 1, 8, 8) and ir.dtype == np.float32


def test_to_uint8_rounds_without_stretching():
    np.testing.assert_array_equal(preprocess.to_uint8(np.array([0.0, 0.5, 0.1, 1.2])), [0, 128, 26, 255])
