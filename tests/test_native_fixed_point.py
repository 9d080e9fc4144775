"""The fixed-point composition of ef_compose_u8 (gray, and color from the 8-bit source; inputs from the planes
or the 8-bit frames): hand values at its rounding edges and map limits, the float fallback beyond them, and
agreement with numpy within one gray level (edgefusion/runtime/compose.py + preprocess.restore_color / to_uint8)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_native import SLOW_OK, lib  # noqa: F401 (lib: the kernels fixture, skips without a C compiler)

from edgefusion import preprocess
from edgefusion.io.color import rgb_to_ycbcr
from edgefusion.runtime import native
from edgefusion.runtime.compose import Composer


def _constant_maps(h: int, w: int, a0=0.0, a1=0.0, a2=0.0, a3=0.0) -> np.ndarray:
    """Maps (4, h/4, w/4) of constant A0..A3 (compose.py: A0 + A1 ir + A2 vis + A3 relu(ir - vis))."""
    return np.stack([np.full((h // 4, w // 4), a, np.float32) for a in (a0, a1, a2, a3)])


def _gray(lib, ir, vis, maps) -> np.ndarray:
    h, w = ir.shape
    return native.Composer(lib, h, w).to_u8(ir, vis, maps, None, np.empty((h, w), np.uint8))


def _numpy_gray(ir, vis, maps) -> np.ndarray:
    h, w = ir.shape
    return preprocess.to_uint8(preprocess.restore_color(Composer(h, w)(ir, vis, maps, np.empty((h, w), np.float32)), None))


# 40 pixels a row: 16-pixel AVX2 blocks and a portable tail of 8 in every row
H, W = 8, 40


@pytest.mark.parametrize("level,expected", [(0.0, 0), (127.0, 127), (127.5, 128), (126.5, 127), (254.5, 255), (255.0, 255)])
def test_constant_fused_levels_round_half_up(lib, level, expected):
    """fused = A0 (A0 = level / 255, 16 A0 255 an integer): rint(4080 A0) and every blend are exact, so the byte is
    the documented round half up of the level (numpy's half to even gives 126 for 126.5: one level apart, allowed)."""
    zeros = np.zeros((H, W), np.float32)
    got = _gray(lib, zeros, zeros, _constant_maps(H, W, a0=level / 255.0))
    assert (got == expected).all()


@pytest.mark.parametrize("a0,a1,x,expected", [(8.0, 0.0, 0.0, 255), (-8.0, 0.0, 1.0, 0), (8.0, -8.0, 1.0, 0),
                                              (-8.0, 8.0, 1.0, 0), (0.0, 8.0, 0.5, 255), (-7.5, 8.0, 1.0, 128)])
def test_maps_at_the_fixed_point_limits(lib, a0, a1, x, expected):
    """|A| = 8 is inside the fixed-point range: sums far outside [0, 1] saturate to 0 / 255, and
    -7.5 + 8 x 1 = 0.5 -> 127.5 -> 128 (exact: 4080 * 7.5 and 4080 * 8 are integers)."""
    ir, vis = np.full((H, W), x, np.float32), np.zeros((H, W), np.float32)
    assert (_gray(lib, ir, vis, _constant_maps(H, W, a0=a0, a1=a1)) == expected).all()


@pytest.mark.parametrize("scale", [8.5, 1e3, 1e6])
def test_maps_beyond_the_range_take_the_float_path(lib, scale):
    """A0 = s, A1 = -s with ir = 1 - 0.3 / s (fused near 0.3 after a cancellation of s): maps beyond the fixed-point
    range (|A| > 8) send the rows to the float path, which repeats numpy's float32 operations: numpy's bytes."""
    rng = np.random.default_rng(1)
    ir = np.full((H, W), 1.0 - 0.3 / scale, np.float32)
    vis = rng.random((H, W), dtype=np.float32)
    maps = _constant_maps(H, W, a0=scale, a1=-scale)
    np.testing.assert_array_equal(_gray(lib, ir, vis, maps), _numpy_gray(ir, vis, maps))


def test_only_the_rows_with_wide_maps_fall_back(lib):
    """One low-res row with a map of 20 (out of range) among rows of 0.3: every pixel within one level of numpy."""
    rng = np.random.default_rng(2)
    h, w = 32, 40
    ir, vis = rng.random((h, w), dtype=np.float32), rng.random((h, w), dtype=np.float32)
    maps = (0.3 * rng.standard_normal((4, h // 4, w // 4))).astype(np.float32)
    maps[1, 3, :] = 20.0
    got, expected = _gray(lib, ir, vis, maps), _numpy_gray(ir, vis, maps)
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_fusing_only_the_visible_gives_back_its_colors(lib):
    """A2 = 1 (fused = vis luma) and color restored from the source: the source pixels, within one level."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    y, _ = rgb_to_ycbcr(rgb, scale=1.0 / 255.0)
    vis = np.ascontiguousarray(y, np.float32)
    maps = _constant_maps(H, W, a2=1.0)
    out = native.Composer(lib, H, W).to_u8(np.zeros((H, W), np.float32), vis, maps, native.chroma(src=rgb),
                                           np.empty((H, W, 3), np.uint8))
    assert np.abs(out.astype(int) - rgb).max() <= 1
    gray_source = np.repeat(rng.integers(0, 256, (H, W, 1), dtype=np.uint8), 3, axis=2)  # dr = db = 0: exact
    y, _ = rgb_to_ycbcr(gray_source, scale=1.0 / 255.0)
    out = native.Composer(lib, H, W).to_u8(np.zeros((H, W), np.float32), np.ascontiguousarray(y, np.float32), maps,
                                           native.chroma(src=gray_source), np.empty((H, W, 3), np.uint8))
    assert np.abs(out.astype(int) - gray_source).max() <= 1


@SLOW_OK
@given(h4=st.integers(1, 6), w4=st.integers(1, 14), seed=st.integers(0, 2**31 - 1),
       map_scale=st.sampled_from([0.05, 0.6, 2.0, 7.9, 12.0]), bgr=st.booleans())
def test_fixed_point_within_one_level_of_numpy(lib, h4, w4, seed, map_scale, bgr):
    """Random planes, maps of several scales (some beyond the fixed-point range), gray and color output from an RGB
    or BGR source: |C - numpy| <= 1 everywhere (crop of a padded frame, as the runtime passes it)."""
    rng = np.random.default_rng(seed)
    ph, pw = 4 * h4, 4 * w4
    h, w = max(1, ph - int(rng.integers(0, 4))), max(1, pw - int(rng.integers(0, 4)))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, cbcr = rgb_to_ycbcr(rgb, scale=1.0 / 255.0)
    ir = rng.random((ph, pw), dtype=np.float32)
    vis = np.pad(np.asarray(y, np.float32), ((0, ph - h), (0, pw - w)), mode="edge")
    maps = (map_scale * rng.standard_normal((4, ph // 4, pw // 4))).astype(np.float32)
    fused = Composer(ph, pw)(ir, vis, maps, np.empty((ph, pw), np.float32))[:h, :w]
    composer = native.Composer(lib, ph, pw)
    gray = composer.to_u8(ir, vis, maps, None, np.empty((h, w), np.uint8))
    assert np.abs(gray.astype(int) - preprocess.to_uint8(preprocess.restore_color(fused, None))).max() <= 1
    src = np.ascontiguousarray(rgb[..., ::-1]) if bgr else rgb
    order = native.BGR if bgr else native.RGB
    color = composer.to_u8(ir, vis, maps, native.chroma(src=src, order=order), np.empty((h, w, 3), np.uint8), order=order)
    if bgr:
        color = color[..., ::-1]
    assert np.abs(color.astype(int) - preprocess.to_uint8(preprocess.restore_color(fused, cbcr))).max() <= 1


# ---- the 8-bit inputs: ir read from its uint8 frame, the visible luma from the source pixels (7 bytes a pixel)

def _ir_plane(ir8: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """The padded IR plane of a uint8 frame, ir8 / 255 (float32, as the input pass writes it)."""
    h, w = ir8.shape
    return np.pad(ir8.astype(np.float32) / np.float32(255.0), ((0, ph - h), (0, pw - w)), mode="edge")


def _all_bytes(h: int = H, w: int = W) -> np.ndarray:
    """A uint8 frame holding each of the 256 values (more than once)."""
    return (np.arange(h * w) % 256).astype(np.uint8).reshape(h, w)


@pytest.mark.parametrize("maps_of", [dict(a1=1.0), dict(a3=1.0)])
def test_ir_bytes_come_back(lib, maps_of):
    """fused = ir (A1 = 1, or A3 = 1 with vis 0: relu(ir - 0)) read from the uint8 frame: 255 fused = b exactly,
    so every byte b of the IR frame is the output byte, gray and gray written to 3 channels."""
    ir8 = _all_bytes(16, 32)
    h, w = ir8.shape
    maps = _constant_maps(h, w, **maps_of)
    composer = native.Composer(lib, h, w)
    zeros = np.zeros((h, w), np.float32)
    gray = composer.to_u8(_ir_plane(ir8, h, w), zeros, maps, None, np.empty((h, w), np.uint8), ir_u8=ir8)
    np.testing.assert_array_equal(gray, ir8)
    rgb = composer.to_u8(_ir_plane(ir8, h, w), zeros, maps, None, np.empty((h, w, 3), np.uint8), ir_u8=ir8)
    np.testing.assert_array_equal(rgb, np.repeat(ir8[..., None], 3, axis=2))


def test_gray_source_pixels_come_back_exactly(lib):
    """A2 = 1 (fused = vis luma, taken from the source pixels: L = 1000 g) with a gray source stored as RGB
    (R = G = B = g): every pixel comes back as (g, g, g) exactly, for all 256 values of g."""
    g = _all_bytes(16, 32)
    h, w = g.shape
    src = np.repeat(g[..., None], 3, axis=2)
    vis = np.ascontiguousarray(rgb_to_ycbcr(src, scale=1.0 / 255.0)[0], np.float32)
    out = native.Composer(lib, h, w).to_u8(np.zeros((h, w), np.float32), vis, _constant_maps(h, w, a2=1.0),
                                           native.chroma(src=src), np.empty((h, w, 3), np.uint8), ir_u8=g)
    np.testing.assert_array_equal(out, src)


def test_gray_visible_bytes_write_the_bytes_of_their_plane(lib):
    """A gray visible frame read as bytes (vis_u8): x = rint(16384 b / 255) is the plane's own rounding for every
    byte, so gray and 3-channel output equal those of the plane b / 255, byte for byte; A2 = 1 gives b back."""
    rng = np.random.default_rng(8)
    g = _all_bytes(16, 48)
    h, w = g.shape
    ir8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
    planes = _ir_plane(ir8, h, w), _ir_plane(g, h, w)
    composer = native.Composer(lib, h, w)
    for maps in ((0.8 * rng.standard_normal((4, h // 4, w // 4))).astype(np.float32), _constant_maps(h, w, a2=1.0)):
        for shape in ((h, w), (h, w, 3)):
            plane = composer.to_u8(*planes, maps, None, np.empty(shape, np.uint8))
            u8 = composer.to_u8(*planes, maps, None, np.empty(shape, np.uint8), ir_u8=ir8, vis_u8=g)
            np.testing.assert_array_equal(u8, plane)
    np.testing.assert_array_equal(composer.to_u8(*planes, maps, None, np.empty((h, w), np.uint8), vis_u8=g), g)


def test_visible_luma_is_the_exact_integer_luma(lib):
    """A2 = 1, A1 = -1 and IR 0, fused = Y = (299 R + 587 G + 114 B) / 255000 (an exact integer L over 255000),
    with a source whose chroma is zero except in one channel pair: the red output is 255 Y + 1.000339 (R - 255 Y);
    checked for pixels whose exact value lies away from a rounding edge: the byte is floor(value + 1/2)."""
    rng = np.random.default_rng(7)
    h, w = 16, 48
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    vis = np.ascontiguousarray(rgb_to_ycbcr(src, scale=1.0 / 255.0)[0], np.float32)
    ir8 = np.zeros((h, w), np.uint8)
    out = native.Composer(lib, h, w).to_u8(np.zeros((h, w), np.float32), vis, _constant_maps(h, w, a2=1.0),
                                           native.chroma(src=src), np.empty((h, w, 3), np.uint8), ir_u8=ir8)
    s = src.astype(np.int64)
    luma = (299 * s[..., 0] + 587 * s[..., 1] + 114 * s[..., 2]) / 1000.0  # 255 Y, exact in float64
    red = luma + 1.403 * 0.713 * (s[..., 0] - luma)
    blue = luma + 1.773 * 0.564 * (s[..., 2] - luma)
    for exact, got in ((red, out[..., 0]), (blue, out[..., 2])):
        exact = np.clip(exact, 0, 255)
        clear = np.abs(exact - np.floor(exact) - 0.5) > 0.05  # the fixed-point error bound here is below 0.05 (about 0.048)
        assert clear.mean() > 0.8
        np.testing.assert_array_equal(got[clear], np.floor(exact[clear] + 0.5).astype(np.uint8))


def test_ir_bytes_narrower_than_the_frame_are_refused(lib):
    """ir_u8 narrower than the output frame: ValueError (the kernel itself refuses a short stride: kernels check)."""
    ir8 = _all_bytes()
    with pytest.raises(ValueError):
        native.Composer(lib, H, W).to_u8(_ir_plane(ir8, H, W), _ir_plane(ir8, H, W), _constant_maps(H, W), None,
                                         np.empty((H, W), np.uint8), ir_u8=ir8[:, : W - 1])


@SLOW_OK
@given(h4=st.integers(1, 6), w4=st.integers(1, 14), seed=st.integers(0, 2**31 - 1),
       map_scale=st.sampled_from([0.05, 0.6, 2.0, 7.9, 12.0]), bgr=st.booleans())
def test_8bit_inputs_within_one_level_of_numpy(lib, h4, w4, seed, map_scale, bgr):
    """uint8 IR (read as bytes) and an RGB/BGR source (its luma read from the pixels), or a gray visible frame read
    as bytes: gray and color output within
    one level of numpy's float path on the planes the input pass writes, maps of several scales (some beyond the
    fixed-point range: those rows read the planes)."""
    rng = np.random.default_rng(seed)
    ph, pw = 4 * h4, 4 * w4
    h, w = max(1, ph - int(rng.integers(0, 4))), max(1, pw - int(rng.integers(0, 4)))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ir8 = rng.integers(0, 256, (h, w), dtype=np.uint8)
    y, cbcr = rgb_to_ycbcr(rgb, scale=1.0 / 255.0)
    ir = _ir_plane(ir8, ph, pw)
    vis = np.pad(np.asarray(y, np.float32), ((0, ph - h), (0, pw - w)), mode="edge")
    maps = (map_scale * rng.standard_normal((4, ph // 4, pw // 4))).astype(np.float32)
    fused = Composer(ph, pw)(ir, vis, maps, np.empty((ph, pw), np.float32))[:h, :w]
    composer = native.Composer(lib, ph, pw)
    gray = composer.to_u8(ir, vis, maps, None, np.empty((h, w), np.uint8), ir_u8=ir8)
    assert np.abs(gray.astype(int) - preprocess.to_uint8(preprocess.restore_color(fused, None))).max() <= 1
    green = rgb[..., 1].copy()  # a gray visible frame, read as bytes (copy: a new array's strides)
    vis_gray = _ir_plane(green, ph, pw)
    fused_gray = Composer(ph, pw)(ir, vis_gray, maps, np.empty((ph, pw), np.float32))[:h, :w]
    gray = composer.to_u8(ir, vis_gray, maps, None, np.empty((h, w), np.uint8), ir_u8=ir8, vis_u8=green)
    assert np.abs(gray.astype(int) - preprocess.to_uint8(preprocess.restore_color(fused_gray, None))).max() <= 1
    src = np.ascontiguousarray(rgb[..., ::-1]) if bgr else rgb
    order = native.BGR if bgr else native.RGB
    color = composer.to_u8(ir, vis, maps, native.chroma(src=src, order=order), np.empty((h, w, 3), np.uint8),
                           order=order, ir_u8=ir8)
    if bgr:
        color = color[..., ::-1]
    assert np.abs(color.astype(int) - preprocess.to_uint8(preprocess.restore_color(fused, cbcr))).max() <= 1
