"""Backends (open_backend) on tiny local models, and the bundle Fuser."""

from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np
import pytest
from runtime_models import export_onnx, make_bundle, max_float_onnx, max_model_onnx, tiny_fuser, torch_reference

from edgefusion.errors import UserError
from edgefusion.runtime import Fuser
from edgefusion.runtime.backends import open_backend

def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


needs_ort = pytest.mark.skipif(not _has("onnxruntime"), reason="onnxruntime not installed")
needs_ov = pytest.mark.skipif(not _has("openvino"), reason="openvino not installed")
needs_litert = pytest.mark.skipif(
    not (_has("litert_torch") and (_has("ai_edge_litert") or _has("tflite_runtime"))), reason="litert-torch / LiteRT interpreter not installed"
)


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("torch").set_num_threads(1)
    return tiny_fuser()


@pytest.fixture(scope="module")
def onnx_file(model, tmp_path_factory):
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")


def _planes(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.random((1, 1, h, w), dtype=np.float32) for _ in range(2))


@needs_ort
@pytest.mark.parametrize("shape", [(37, 53), (64, 48)])
def test_onnxruntime_matches_torch_at_any_shape(model, onnx_file, shape):
    backend = open_backend("onnxruntime", {"model": onnx_file}, threads=1)
    assert backend.provider == "CPUExecutionProvider"
    ir, vis = _planes(*shape)
    out = backend.run(ir, vis)
    assert out.shape == (1, 1, *shape) and out.dtype == np.float32
    np.testing.assert_allclose(out, torch_reference(model, ir, vis), atol=1e-5)


@needs_ort
@pytest.mark.parametrize("dtype,zero_point", [("uint8", 0), ("int8", -128)])
def test_integer_io_is_quantized_and_dequantized(tmp_path, dtype, zero_point):
    scale = 1.0 / 255.0
    path = max_model_onnx(tmp_path / "max.onnx", dtype, scale, zero_point)
    quant = {n: {"scale": scale, "zero_point": zero_point} for n in ("ir", "vis", "fused")}
    backend = open_backend("onnxruntime", {"model": path}, io_dtype=dtype, io_quantization=quant, threads=1)
    ir, vis = _planes(5, 7, seed=3)
    ir[0, 0, 0, :3] = [0.0, 1.0, 0.5 / 255]  # extremes and a rounding tie
    out = backend.run(ir, vis)
    expected = np.round(np.maximum(ir, vis) * 255) / 255  # quantization grid of the model's I/O
    np.testing.assert_allclose(out, expected, atol=1e-6)


@needs_ort
def test_output_buffer_is_filled_in_place(onnx_file):
    backend = open_backend("onnxruntime", {"model": onnx_file}, threads=1)
    ir, vis = _planes(16, 16)
    out = np.full((1, 1, 16, 16), -1, dtype=np.float32)
    assert backend.run(ir, vis, out=out) is out
    np.testing.assert_array_equal(out, backend.run(ir, vis))


@needs_ov
def test_openvino_matches_torch(model, onnx_file, tmp_path):
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_file)), str(tmp_path / "model.xml"))
    backend = open_backend("openvino", {"model": tmp_path / "model.xml", "weights": tmp_path / "model.bin"}, threads=1)
    assert "CPU" in backend.provider
    for shape in [(37, 53), (24, 24)]:
        ir, vis = _planes(*shape, seed=1)
        np.testing.assert_allclose(backend.run(ir, vis), torch_reference(model, ir, vis), atol=1e-4)  # ~0.03 gray levels


@needs_ov
def test_openvino_runs_each_shape_on_a_static_model_deterministically(model, onnx_file):
    backend = open_backend("openvino", {"model": onnx_file}, threads=1)
    a, b, c = (24, 32), (40, 16), (16, 16)
    results = []
    for i, shape in enumerate([a, a, b, a, b, c, c, a]):
        ir, vis = _planes(*shape, seed=i % 2)
        got = backend.run(ir, vis)
        np.testing.assert_allclose(got, torch_reference(model, ir, vis), atol=1e-4)
        results.append((shape, i % 2, got, got.copy()))
        if i == 0:  # compiled for the shape on its first call
            assert backend.static_shapes == [((1, 1, *a),) * 2]
    for shape, seed, got, kept in results:  # results are the caller's arrays, not the engine's reused output memory
        np.testing.assert_array_equal(got, kept)
        first = next(r for r in results if r[:2] == (shape, seed))
        np.testing.assert_array_equal(got, first[2])  # the same input gives the same output, whatever ran before
    assert backend.static_shapes == [((1, 1, *c),) * 2, ((1, 1, *a),) * 2]  # at most two kept, least recently used dropped
    ir, vis = _planes(*a, seed=1)
    np.testing.assert_array_equal(backend.run_raw(ir, vis), results[1][2])  # raw output of the static model, copied


@needs_ov
def test_openvino_falls_back_to_the_dynamic_model_when_a_static_one_fails(model, onnx_file):
    backend = open_backend("openvino", {"model": onnx_file}, threads=1)

    class Refusing:
        def compile_model(self, *args):
            raise RuntimeError("cannot compile\nsecond line")

    backend._static.core = Refusing()
    ir, vis = _planes(24, 40, seed=3)
    for _ in range(2):
        np.testing.assert_allclose(backend.run(ir, vis), torch_reference(model, ir, vis), atol=1e-4)
    assert backend.static_shapes == [] and list(backend._static.requests) == [((1, 1, 24, 40),) * 2]  # tried once


@needs_litert
def test_litert_nhwc_matches_torch(model, tmp_path):
    import litert_torch
    import torch

    shape = (24, 40)
    wrapped = litert_torch.to_channel_last_io(model, args=[0, 1], outputs=[0]).eval()
    sample = torch.rand(1, *shape, 1)
    litert_torch.convert(wrapped, (sample, sample.clone())).export(str(tmp_path / "model.tflite"))
    backend = open_backend("litert", {"model": tmp_path / "model.tflite"}, layout="NHWC", threads=1)
    ir, vis = _planes(*shape, seed=2)
    np.testing.assert_allclose(backend.run(ir, vis), torch_reference(model, ir, vis), atol=1e-5)


def test_unsupported_backend_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="unsupported backend 'coreml'"):
        open_backend("coreml", {"model": tmp_path / "m.onnx"})


@needs_ort
def test_missing_or_wrong_model_file_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="model file not found"):
        open_backend("onnxruntime", {"model": tmp_path / "absent.onnx"})
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="onnxruntime cannot load") as info:
        open_backend("onnxruntime", {"model": tmp_path / "junk.onnx"})
    assert "\n" not in str(info.value)


def test_integer_io_without_quantization_is_rejected(tmp_path):
    with pytest.raises(UserError, match="io_quantization.ir"):
        open_backend("onnxruntime", {"model": tmp_path / "m.onnx"}, io_dtype="uint8")


@pytest.mark.skipif(_has("tensorrt"), reason="TensorRT is installed here")
def test_tensorrt_without_tensorrt_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="TensorRT Python API is not importable"):
        open_backend("tensorrt", {"model": tmp_path / "m.engine"})


@needs_ort
def test_input_contract_is_checked(onnx_file):
    backend = open_backend("onnxruntime", {"model": onnx_file}, threads=1)
    with pytest.raises(UserError, match="float32 \\(1, 1, H, W\\)"):
        backend.run(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))


# ---------------------------------------------------------------- Fuser (bundles)


@pytest.fixture(scope="module")
def max_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("maxb")
    return make_bundle(root / "bundle", max_float_onnx(root / "max.onnx"), stride=8)


@needs_ort
@pytest.mark.parametrize("shape", [(37, 53), (40, 64), (1, 9)])
def test_fuser_gray_uint8_is_pixel_max(max_bundle, shape):
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, shape, dtype=np.uint8)
    vis = rng.integers(0, 256, shape, dtype=np.uint8)
    fuser = Fuser.open(max_bundle, threads=1)
    out = fuser.fuse(ir, vis)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, np.maximum(ir, vis))


@needs_ort
@pytest.mark.parametrize("ir_shape,vis_shape,message", [
    ((0, 8), (0, 8, 3), r"empty image of shape \(0, 8\)"),
    ((8,), (4, 8), r"got shape \(8,\)"),
    ((4, 8), (4, 8, 2), r"got shape \(4, 8, 2\)"),
])
def test_fuser_refuses_empty_frames_and_bad_shapes_in_one_line(max_bundle, ir_shape, vis_shape, message):
    fuser = Fuser.open(max_bundle, threads=1)
    with pytest.raises(UserError, match=message) as info:
        fuser.fuse(np.zeros(ir_shape, np.uint8), np.zeros(vis_shape, np.uint8))
    assert "\n" not in str(info.value)


@needs_ort
def test_fuser_rgb_visible_keeps_chroma_and_fuses_luma(max_bundle):
    rng = np.random.default_rng(1)
    ir = rng.integers(0, 256, (21, 30), dtype=np.uint8)
    vis = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    out = Fuser.open(max_bundle).fuse(ir, vis)
    assert out.shape == (21, 30, 3) and out.dtype == np.uint8
    luma = lambda rgb: rgb.astype(np.float64) @ [0.299, 0.587, 0.114]  # noqa: E731
    expected = np.maximum(ir, luma(vis))
    inside = (out > 2).all(axis=2) & (out < 253).all(axis=2)  # RGB not clipped: luma is exact up to rounding
    assert np.abs(luma(out) - expected)[inside].max() <= 1.5


@needs_ort
def test_fuser_uint16_ir_uses_the_bundles_percentile_stretch(tmp_path):
    bundle = make_bundle(tmp_path / "b", max_float_onnx(tmp_path / "max.onnx"), preprocessing={"thermal_stretch": [1.0, 99.0]})
    rng = np.random.default_rng(2)
    ir = rng.integers(1000, 9000, (33, 47), dtype=np.uint16)
    vis = np.zeros((33, 47), dtype=np.uint8)  # max(ir, 0) = stretched IR
    lo, hi = np.percentile(ir, [1.0, 99.0])
    expected = np.rint(np.clip((ir - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    out = Fuser.open(bundle).fuse(ir, vis)
    assert np.abs(out.astype(int) - expected).max() <= 1


@needs_ort
def test_fuser_pads_to_stride_and_matches_torch(model, onnx_file, tmp_path):
    bundle = make_bundle(tmp_path / "b.zip", onnx_file, stride=16, as_zip=True)
    fuser = Fuser.open(bundle, threads=1)
    assert fuser.provider == "CPUExecutionProvider" and "onnxruntime" in fuser.name
    ir, vis = _planes(37, 53, seed=5)
    got = fuser.fuse_planes(ir[0, 0], vis[0, 0])
    pad = lambda x: np.pad(x, ((0, 0), (0, 0), (0, 11), (0, 11)), mode="edge")  # noqa: E731  37->48, 53->64
    expected = torch_reference(model, pad(ir), pad(vis))[0, 0, :37, :53]
    np.testing.assert_allclose(got, expected, atol=1e-5)


@needs_ort
def test_fixed_shape_bundle_tiles_larger_and_pads_smaller_frames(model, tmp_path):
    fixed = export_onnx(model, tmp_path / "fixed.onnx", height=64, width=96, dynamic=False)
    fuser = Fuser.open(make_bundle(tmp_path / "b", fixed, stride=8, fixed_shape=[64, 96]), threads=1)
    for shape in [(150, 203), (40, 50), (64, 96), (150, 50), (33, 200)]:
        ir, vis = _planes(*shape, seed=shape[0])
        got = fuser.fuse_planes(ir[0, 0], vis[0, 0])
        hp, wp = max(-(-shape[0] // 8) * 8, 64), max(-(-shape[1] // 8) * 8, 96)
        pad = lambda x: np.pad(x, ((0, 0), (0, 0), (0, hp - shape[0]), (0, wp - shape[1])), mode="edge")  # noqa: E731
        expected = torch_reference(model, pad(ir), pad(vis))[0, 0, : shape[0], : shape[1]]
        np.testing.assert_allclose(got, expected, atol=1e-5)


@needs_ort
def test_one_fuser_shared_by_threads_gives_sequential_results(max_bundle):
    fuser = Fuser.open(max_bundle, threads=1)
    frames = [_planes(24 + 8 * (i % 3), 40, seed=i) for i in range(12)]
    expected = [np.maximum(ir, vis)[0, 0] for ir, vis in frames]
    results: dict[int, np.ndarray] = {}

    def work(indices):
        for i in indices:
            results[i] = fuser.fuse_planes(frames[i][0][0, 0], frames[i][1][0, 0])

    threads = [threading.Thread(target=work, args=(range(k, 12, 3),)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(12):
        np.testing.assert_array_equal(results[i], expected[i])


@needs_ort
def test_integer_io_bundle(tmp_path):
    scale = 1.0 / 255.0
    path = max_model_onnx(tmp_path / "max.onnx", "uint8", scale, 0)
    quant = {n: {"scale": scale, "zero_point": 0} for n in ("ir", "vis", "fused")}
    bundle = make_bundle(tmp_path / "b", path, precision="int8", io_dtype="uint8", io_quantization=quant)
    rng = np.random.default_rng(4)
    ir, vis = (rng.integers(0, 256, (19, 23), dtype=np.uint8) for _ in range(2))
    np.testing.assert_array_equal(Fuser.open(bundle).fuse(ir, vis), np.maximum(ir, vis))


@needs_ort
@pytest.mark.parametrize("damage, message", [
    ("hash", "SHA-256 mismatch"),
    ("missing", "missing file"),
    ("backend", "unknown backend"),
])
def test_broken_bundles_are_one_line_errors(max_bundle, tmp_path, damage, message):
    import json
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(max_bundle, broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    if damage == "hash":
        (broken / "max.onnx").write_bytes((broken / "max.onnx").read_bytes() + b"\0")
    elif damage == "missing":
        (broken / "max.onnx").unlink()
    else:
        manifest["backend"] = "coreml"
        (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=message) as info:
        Fuser.open(broken)
    assert "\n" not in str(info.value)


@needs_ort
def test_fuse_and_open_fuser_via_frame_and_fusers_modules(max_bundle):
    from edgefusion.fusers import open_fuser
    from edgefusion.runtime.frame import fuse_arrays

    fuser = open_fuser(max_bundle)
    ir = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    vis = ir[::-1].copy()
    np.testing.assert_array_equal(fuse_arrays(fuser, ir, vis), np.maximum(ir, vis))


@needs_ort
def test_fuse_arrays_hands_a_bundle_to_its_own_frame_path(max_bundle, monkeypatch):
    """fuse_arrays of a bundle's Fuser runs Fuser.fuse (the path of firmware, bench, eval and demo) with the stretch."""
    from edgefusion import preprocess
    from edgefusion.runtime.frame import fuse_arrays

    fuser = Fuser.open(max_bundle)
    calls = []
    real = Fuser.fuse
    monkeypatch.setattr(Fuser, "fuse", lambda self, ir, vis, stretch=None: calls.append(stretch) or real(self, ir, vis, stretch))
    ir = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    vis = ir[::-1].copy()
    np.testing.assert_array_equal(fuse_arrays(fuser, ir, vis), np.maximum(ir, vis))
    assert calls == [preprocess.DEFAULT_STRETCH]


# ---------------------------------------------------------------- analyze-only bundles, numpy composition

def _student(seed: int = 0):
    torch = pytest.importorskip("torch")
    student_module = pytest.importorskip("edgefusion.models.student")
    torch.manual_seed(seed)
    student = student_module.Student("s").eval()
    with torch.no_grad():  # non-constant maps, so that upsampling and the formula are exercised
        student.head.weight.normal_(0.0, 0.3)
    return student


@pytest.mark.parametrize("shape,strip,workers", [((48, 72), 5, 1), ((8, 16), 8, 1), ((64, 32), 1, 1), ((96, 40), 3, 3)])
def test_numpy_composition_matches_student_compose(shape, strip, workers):
    from edgefusion.runtime.compose import Composer

    student = _student()
    import torch

    gen = torch.Generator().manual_seed(1)
    ir, vis = torch.rand(1, 1, *shape, generator=gen), torch.rand(1, 1, *shape, generator=gen)
    maps = torch.randn(1, 4, shape[0] // 4, shape[1] // 4, generator=gen)
    with torch.no_grad():
        expected = student.compose(ir, vis, maps).numpy()[0, 0]
    out = np.empty(shape, np.float32)
    Composer(*shape, strip_rows=strip, workers=workers)(ir.numpy()[0, 0], vis.numpy()[0, 0], maps.numpy()[0], out)
    np.testing.assert_allclose(out, expected, atol=2e-6)


@needs_ort
def test_analyze_only_bundle_matches_student_forward(tmp_path):
    student = _student(seed=2)
    import torch

    class Analyze(torch.nn.Module):
        def __init__(self, s):
            super().__init__()
            self.s = s

        def forward(self, ir, vis):
            return self.s.analyze(ir, vis)

    x = torch.rand(1, 1, 32, 48)
    h, w = torch.export.Dim("h", min=1, max=1024), torch.export.Dim("w", min=1, max=1024)
    path = tmp_path / "analyze.onnx"
    torch.onnx.export(Analyze(student), (x, x.clone()), str(path), input_names=["ir", "vis"], output_names=["maps"], dynamo=True,
                      dynamic_shapes={"ir": {2: 8 * h, 3: 8 * w}, "vis": {2: 8 * h, 3: 8 * w}}, external_data=False)
    bundle = make_bundle(tmp_path / "b", path, stride=8, compose="runtime",
                         outputs=[{"name": "maps", "shape": [1, 4, "H/4", "W/4"], "dtype": "float32"}])
    fuser = Fuser.open(bundle, threads=1)
    ir, vis = _planes(37, 53, seed=9)
    pad = lambda a: np.pad(a, ((0, 0), (0, 0), (0, 3), (0, 3)), mode="edge")  # noqa: E731  -> 40x56
    expected = torch_reference(student, pad(ir), pad(vis))[0, 0, :37, :53]
    np.testing.assert_allclose(fuser.fuse_planes(ir[0, 0], vis[0, 0]), expected, atol=1e-5)
    # default threads: the frame path takes every usable core (the C runtime's default), the results unchanged
    default = Fuser.open(bundle)
    assert (default.frame_threads, fuser.frame_threads) == (len(os.sched_getaffinity(0)), 1)
    np.testing.assert_array_equal(default.fuse_planes(ir[0, 0], vis[0, 0]), fuser.fuse_planes(ir[0, 0], vis[0, 0]))
    gray = (np.arange(37 * 53).reshape(37, 53) % 251).astype(np.uint8)
    np.testing.assert_array_equal(default.fuse(gray, gray[::-1].copy()), fuser.fuse(gray, gray[::-1].copy()))


# ---------------------------------------------------------------- videos and image sequences

def _write_video(path, frames):
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (frames[0].shape[1], frames[0].shape[0]))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f[..., ::-1])
    writer.release()


def _read_video(path):
    import cv2

    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame[..., ::-1])


@needs_ort
def test_fuse_two_videos_frame_by_frame(max_bundle, tmp_path):
    pytest.importorskip("cv2")
    from edgefusion.io.images import read_image
    from edgefusion.runtime import video

    rng = np.random.default_rng(0)
    ir = [np.kron(rng.integers(0, 256, (4, 6), dtype=np.uint8), np.ones((8, 8), np.uint8)) for _ in range(6)]
    vis = [np.kron(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)) for _ in range(6)]
    _write_video(tmp_path / "ir.avi", ir)
    _write_video(tmp_path / "vis.avi", vis)
    assert video.handles(tmp_path / "ir.avi", tmp_path / "vis.avi", tmp_path / "out")
    fuser = Fuser.open(max_bundle)
    assert video.fuse_streams(fuser, tmp_path / "ir.avi", tmp_path / "vis.avi", tmp_path / "frames") == 6
    decoded_ir, decoded_vis = _read_video(tmp_path / "ir.avi"), _read_video(tmp_path / "vis.avi")
    for i in range(6):  # each output frame is the bundle's fusion of the decoded input frames
        expected = fuser.fuse(decoded_ir[i], decoded_vis[i])
        np.testing.assert_array_equal(read_image(tmp_path / "frames" / f"frame_{i:06d}.png"), expected)
    assert video.fuse_streams(fuser, tmp_path / "ir.avi", tmp_path / "vis.avi", tmp_path / "fused.avi") == 6
    assert len(_read_video(tmp_path / "fused.avi")) == 6


@needs_ort
def test_frame_folders_to_video_and_length_mismatch(max_bundle, tmp_path):
    pytest.importorskip("cv2")
    from edgefusion.io.images import write_image
    from edgefusion.runtime import video

    for role in ("ir", "vi"):
        (tmp_path / role).mkdir()
        for i in range(4):
            brighter = (role == "ir") == (i % 2 == 0)  # IR brighter on even frames, visible on odd ones
            write_image(tmp_path / role / f"{i:03d}.png", np.full((16, 24), 50 * i + 30 * brighter, np.uint8))
    fuser = Fuser.open(max_bundle)
    assert video.fuse_streams(fuser, tmp_path / "ir", tmp_path / "vi", tmp_path / "seq.avi") == 4
    frames = _read_video(tmp_path / "seq.avi")
    assert np.allclose([f.mean() for f in frames], [30, 80, 130, 180], atol=2)  # max per frame, through a lossy codec
    _write_video(tmp_path / "a.avi", [np.zeros((16, 24), np.uint8)] * 3)
    _write_video(tmp_path / "b.avi", [np.zeros((16, 24), np.uint8)] * 5)
    with pytest.raises(UserError, match="same frame count"):
        video.fuse_streams(fuser, tmp_path / "a.avi", tmp_path / "b.avi", tmp_path / "bad.avi")
    assert not (tmp_path / "bad.avi").exists() and not list(tmp_path.glob(".bad*"))


@needs_ort
def test_dynamic_bundle_tiles_frames_larger_than_the_tile_option(model, onnx_file, tmp_path):
    bundle = make_bundle(tmp_path / "b", onnx_file, stride=8)
    whole, tiled = Fuser.open(bundle, threads=1), Fuser.open(bundle, threads=1, tile=(64, 64), overlap=32)
    ir, vis = _planes(130, 170, seed=11)
    np.testing.assert_allclose(tiled.fuse_planes(ir[0, 0], vis[0, 0]), whole.fuse_planes(ir[0, 0], vis[0, 0]), atol=1e-5)
    with pytest.raises(UserError, match="not a multiple of the model stride"):
        Fuser.open(bundle, tile=(60, 64))


@needs_ort
def test_cli_fuse_with_a_bundle_and_a_broken_one(max_bundle, tmp_path, capsys):
    import shutil

    from edgefusion.cli import main
    from edgefusion.io.images import read_image, write_image

    rng = np.random.default_rng(6)
    ir, vis = rng.integers(0, 256, (2, 20, 28), dtype=np.uint8)
    write_image(tmp_path / "ir.png", ir)
    write_image(tmp_path / "vis.png", vis)
    args = ["fuse", "--ir", str(tmp_path / "ir.png"), "--vis", str(tmp_path / "vis.png")]
    assert main(args + ["--model", str(max_bundle), "-o", str(tmp_path / "out.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), np.maximum(ir, vis))
    broken = tmp_path / "broken"
    shutil.copytree(max_bundle, broken)
    (broken / "max.onnx").write_bytes(b"tampered")
    capsys.readouterr()
    assert main(args + ["--model", str(broken), "-o", str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert "SHA-256 mismatch" in err and err.count("\n") == 1 and not (tmp_path / "bad.png").exists()


@needs_ort
def test_fixed_shape_model_at_another_shape_is_one_line_error(model, tmp_path):
    fixed = export_onnx(model, tmp_path / "fixed.onnx", height=16, width=24, dynamic=False)
    backend = open_backend("onnxruntime", {"model": fixed}, threads=1)
    ir, vis = _planes(16, 24)
    np.testing.assert_allclose(backend.run(ir, vis), torch_reference(model, ir, vis), atol=1e-5)
    ir, vis = _planes(24, 24)
    with pytest.raises(UserError, match="onnxruntime failed on a \\(1, 1, 24, 24\\) input") as info:
        backend.run(ir, vis)
    assert "\n" not in str(info.value)


@needs_ort
def test_stream_input_errors_are_one_line(max_bundle, tmp_path, monkeypatch):
    from edgefusion.runtime import video

    (tmp_path / "frames").mkdir()
    (tmp_path / "clip.avi").write_bytes(b"")
    fuser = Fuser.open(max_bundle)
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # OpenCV not installed
    with pytest.raises(UserError, match="pip install opencv-python-headless"):
        video.fuse_streams(fuser, tmp_path / "clip.avi", tmp_path / "clip.avi", tmp_path / "out.avi")
    monkeypatch.undo()
    with pytest.raises(UserError, match="is not a video"):
        video.fuse_streams(fuser, tmp_path / "frames", tmp_path / "clip.avi", tmp_path / "out.avi")
    with pytest.raises(UserError, match="cannot open IR video"):
        video.fuse_streams(fuser, tmp_path / "clip.avi", tmp_path / "clip.avi", tmp_path / "out.avi")
    with pytest.raises(UserError, match="not found"):
        video.fuse_streams(fuser, tmp_path / "absent.avi", tmp_path / "clip.avi", tmp_path / "out.avi")
    assert not (tmp_path / "out.avi").exists()


# ---------------------------------------------------------------- v2 students: frame statistics as a third input

V2_INPUTS = ("ir", "vis", "stats")


@pytest.fixture(scope="module")
def student_v2(tmp_path_factory):
    """A perturbed v2 student (``student-ctx``) and its dynamic ONNX export (inputs ir, vis, stats)."""
    pytest.importorskip("torch").set_num_threads(1)
    from runtime_models import perturbed_student

    from edgefusion.convert.onnx import export_onnx as project_export

    root = tmp_path_factory.mktemp("v2")
    model = perturbed_student(root / "ctx.pt", seed=3, architecture="student-ctx")
    return model, project_export(model, root / "ctx.onnx", shape=(32, 48))


def _stats(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    from edgefusion.runtime.frame_stats import frame_stats

    return frame_stats(ir[0, 0], vis[0, 0])[None]


def _v2_bundle(path, onnx_path, **fields):
    specs = [{"name": n, "shape": [1, 1, "H", "W"], "dtype": "float32"} for n in ("ir", "vis")]
    specs.append({"name": "stats", "shape": [1, 6], "dtype": "float32"})
    return make_bundle(path, onnx_path, stride=8, **{"inputs": specs, **fields})


@needs_ort
@pytest.mark.parametrize("backend", ["onnxruntime", pytest.param("openvino", marks=needs_ov)])
def test_v2_backend_takes_stats_and_refuses_a_missing_or_extra_one(student_v2, backend):
    model, onnx_path = student_v2
    engine = open_backend(backend, {"model": onnx_path}, inputs=V2_INPUTS, threads=1)
    ir, vis = _planes(40, 56, seed=2)
    stats = _stats(ir, vis)
    np.testing.assert_allclose(engine.run(ir, vis, stats=stats), torch_reference(model, ir, vis, stats), atol=1e-5)
    other = stats + np.float32(0.2)  # the statistics really reach the network
    assert np.abs(engine.run(ir, vis, stats=other) - engine.run(ir, vis, stats=stats)).max() > 1e-3
    with pytest.raises(UserError, match=r"stats must be a float32 \(1, 6\) array") as info:
        engine.run(ir, vis)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="has 3 inputs .*expects 2"):
        open_backend(backend, {"model": onnx_path}, threads=1)  # a v2 model opened as v1


@needs_ort
def test_v1_backend_refuses_stats(onnx_file):
    ir, vis = _planes(16, 16)
    with pytest.raises(UserError, match="takes no frame statistics"):
        open_backend("onnxruntime", {"model": onnx_file}, threads=1).run(ir, vis, stats=_stats(ir, vis))


@needs_ort
def test_v2_fuser_feeds_the_unpadded_frames_stats(student_v2, tmp_path):
    model, onnx_path = student_v2
    fuser = Fuser.open(_v2_bundle(tmp_path / "b", onnx_path), threads=1)
    ir, vis = _planes(37, 53, seed=5)
    pad = lambda x: np.pad(x, ((0, 0), (0, 0), (0, 3), (0, 3)), mode="edge")  # noqa: E731  -> 40x56
    expected = torch_reference(model, pad(ir), pad(vis), _stats(ir, vis))[0, 0, :37, :53]
    got = fuser.fuse_planes(ir[0, 0], vis[0, 0])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    padded_stats = torch_reference(model, pad(ir), pad(vis), _stats(pad(ir), pad(vis)))[0, 0, :37, :53]
    assert np.abs(got - padded_stats).max() > 1e-4  # the stats of the padded frame would be a different result


@needs_ort
def test_v2_analyze_only_bundle_matches_student_forward(student_v2, tmp_path):
    from edgefusion.convert.onnx import export_onnx as project_export
    from edgefusion.quantize.pipeline import analyze_only, rename_output

    model, _ = student_v2
    path = project_export(analyze_only(model), tmp_path / "analyze.onnx", shape=(32, 48))
    rename_output(path, "maps")
    bundle = _v2_bundle(tmp_path / "b", path, compose="runtime", outputs=[{"name": "maps", "shape": [1, 4, "H/4", "W/4"], "dtype": "float32"}])
    ir, vis = _planes(48, 64, seed=9)
    expected = torch_reference(model, ir, vis, _stats(ir, vis))[0, 0]
    np.testing.assert_allclose(Fuser.open(bundle, threads=1).fuse_planes(ir[0, 0], vis[0, 0]), expected, atol=1e-5)


@needs_ort
def test_v2_bundle_with_stats_encoding_equals_the_student_on_raw_stats(student_v2, tmp_path):
    """A model that decodes its stats input (quantize's decoding_stats), in a bundle whose manifest has
    stats_encoding: the Fuser encodes the frame's stats, so the result is the student's on the raw stats."""
    from edgefusion.convert.onnx import export_onnx as project_export
    from edgefusion.quantize.pipeline import decoding_stats
    from edgefusion.runtime.stats_encoding import INTEGER_IO_SCALE as scale  # the encoding quantize writes for integer I/O

    model, _ = student_v2
    path = project_export(decoding_stats(model, scale), tmp_path / "decoding.onnx", shape=(32, 48))
    ir, vis = _planes(40, 56, seed=4)
    expected = torch_reference(model, ir, vis, _stats(ir, vis))[0, 0]
    encoded = Fuser.open(_v2_bundle(tmp_path / "enc", path, stats_encoding={"scale": list(scale)}), threads=1)
    np.testing.assert_allclose(encoded.fuse_planes(ir[0, 0], vis[0, 0]), expected, atol=1e-5)
    raw = Fuser.open(_v2_bundle(tmp_path / "raw", path), threads=1)  # the same model fed raw stats: decoded wrongly
    assert np.abs(raw.fuse_planes(ir[0, 0], vis[0, 0]) - expected).max() > 1e-3


@needs_ort
@pytest.mark.parametrize("inputs", [
    ["ir", "vis", "extra"],
    ["vis", "ir"],
    ["ir", "vis", "stats", "stats"],
    "ir,vis,stats",
    [{"name": "ir"}, {"shape": [1, 6]}],
])
def test_manifest_with_wrong_inputs_is_refused_in_one_line(student_v2, tmp_path, capsys, inputs):
    import json

    from edgefusion.cli import main
    from edgefusion.io.images import write_image

    bundle = _v2_bundle(tmp_path / "b", student_v2[1])
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["inputs"] = inputs
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="manifest 'inputs' must name") as info:
        Fuser.open(bundle)
    assert "\n" not in str(info.value)
    write_image(tmp_path / "ir.png", np.zeros((16, 16), np.uint8))
    capsys.readouterr()
    code = main(["fuse", "--model", str(bundle), "--ir", str(tmp_path / "ir.png"), "--vis", str(tmp_path / "ir.png"), "-o", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 2 and "manifest 'inputs' must name" in err and err.count("\n") == 1 and not (tmp_path / "f.png").exists()


@pytest.mark.parametrize("key, value", [("stride", 16), ("value_range", [0.0, 2.0]), ("stats_encoding", {"scale": [2.0] * 6})])
def test_manifest_edited_into_valid_values_is_refused_in_one_line(student_v2, tmp_path, capsys, key, value):
    """Values no model file's digest covers (they change how the frame is prepared or read): the manifest's seal refuses them."""
    import json

    from edgefusion.cli import main
    from edgefusion.io.images import write_image

    bundle = _v2_bundle(tmp_path / "b", student_v2[1])
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest.get(key) != value
    manifest[key] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    write_image(tmp_path / "ir.png", np.zeros((16, 16), np.uint8))
    capsys.readouterr()
    code = main(["fuse", "--model", str(bundle), "--ir", str(tmp_path / "ir.png"), "--vis", str(tmp_path / "ir.png"), "-o", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 2 and "changed after the bundle was written" in err and err.count("\n") == 1, err
    assert not (tmp_path / "f.png").exists()


@needs_ort
@pytest.mark.parametrize("command", ["fuse", "eval"])
def test_fuse_and_eval_of_a_bundle_take_the_runtimes_frame_path(student_v2, tmp_path, monkeypatch, command):
    """``edgefusion fuse/eval --model BUNDLE`` run Fuser.fuse (the path firmware and bench use), and write its result."""
    from edgefusion.cli import main
    from edgefusion.io.images import read_image, write_image

    bundle = _v2_bundle(tmp_path / "b", student_v2[1])
    rng = np.random.default_rng(5)
    ir, vis = rng.integers(0, 256, (24, 40), np.uint8), rng.integers(0, 256, (24, 40, 3), np.uint8)
    for folder, image in (("ir", ir), ("vi", vis)):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "p.png", image)
    calls, fuse = [], Fuser.fuse

    def spy(self, *args, **kwargs):
        calls.append(args[0].shape)
        return fuse(self, *args, **kwargs)

    monkeypatch.setattr(Fuser, "fuse", spy)
    out = tmp_path / "out"
    if command == "fuse":
        argv = ["fuse", "--model", str(bundle), "--ir", str(tmp_path / "ir" / "p.png"), "--vis", str(tmp_path / "vi" / "p.png"), "-o", str(out / "p.png")]
    else:
        argv = ["eval", "--model", str(bundle), "--data", str(tmp_path), "--json", str(tmp_path / "m.json")]
    assert main(argv) == 0
    assert calls == [(24, 40)]
    if command == "fuse":
        expected = Fuser.open(bundle).fuse(ir, vis)
        np.testing.assert_array_equal(read_image(out / "p.png"), expected)


@needs_ort
def test_inputs_that_do_not_match_the_model_are_one_line_errors(student_v2, model, onnx_file, tmp_path):
    import json

    from edgefusion.runtime.manifest_seal import sealed_manifest_text

    with pytest.raises(UserError, match="has 3 inputs .*expects 2") as info:
        Fuser.open(make_bundle(tmp_path / "v2_as_v1", student_v2[1], stride=8))  # a v2 model in a v1 manifest
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="has 2 inputs .*expects 3"):
        Fuser.open(_v2_bundle(tmp_path / "v1_as_v2", onnx_file))
    bare = make_bundle(tmp_path / "bare", onnx_file)  # no 'inputs' key at all: a v1 bundle
    manifest = json.loads((bare / "manifest.json").read_text())
    del manifest["inputs"]
    (bare / "manifest.json").write_bytes(sealed_manifest_text(manifest))  # as an older writer left it, sealed
    ir, vis = _planes(24, 32, seed=1)
    np.testing.assert_allclose(Fuser.open(bare).fuse_planes(ir[0, 0], vis[0, 0]), torch_reference(model, ir, vis)[0, 0], atol=1e-5)


def _fake_tensorrt(inputs: tuple[str, ...]):
    """Stand-ins for ``tensorrt`` and ``cuda.bindings.runtime`` whose engine computes, on "device" buffers that
    are host memory, ``fused = max(ir, vis) + stats[0, 0]`` (``stats`` only when it is among ``inputs``)."""
    import ctypes
    import types

    memory: dict[int, np.ndarray] = {}

    def malloc(nbytes):
        buf = np.zeros(nbytes, np.uint8)
        memory[buf.ctypes.data] = buf
        return 0, buf.ctypes.data

    def free(ptr):
        memory.pop(int(ptr), None)
        return (0,)

    def memcpy(dst, src, nbytes, kind, stream):
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    cuda = types.SimpleNamespace(
        cudaSetDevice=lambda i: (0,), cudaStreamCreate=lambda: (0, 1), cudaStreamSynchronize=lambda s: (0,),
        cudaGetDeviceProperties=lambda i: (0, types.SimpleNamespace(name=b"FakeGPU")), cudaMalloc=malloc,
        cudaFree=free, cudaMemcpyAsync=memcpy,
        cudaMemcpyKind=types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2),
    )

    class Context:
        def __init__(self):
            self.shapes, self.addresses = {}, {}

        def set_input_shape(self, name, shape):
            self.shapes[name] = tuple(shape)

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def get_tensor_shape(self, name):
            return self.shapes["ir"]

        def view(self, name, shape):
            return memory[self.addresses[name]][: 4 * int(np.prod(shape))].view(np.float32).reshape(shape)

        def execute_async_v3(self, stream):
            shape = self.shapes["ir"]
            fused = np.maximum(self.view("ir", shape), self.view("vis", shape))
            if "stats" in inputs:
                assert self.shapes["stats"] == (1, 6)
                fused = fused + self.view("stats", (1, 6))[0, 0]
            self.view("fused", shape)[...] = fused
            return True

    names = (*inputs, "fused")
    engine = types.SimpleNamespace(
        num_io_tensors=len(names), get_tensor_name=lambda i: names[i], create_execution_context=Context,
        get_tensor_mode=lambda n: "output" if n == "fused" else "input", get_tensor_dtype=lambda n: np.float32,
    )
    trt = types.SimpleNamespace(
        __version__="fake", Logger=type("Logger", (), {"WARNING": 0, "__init__": lambda self, level: None}),
        Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda blob: engine),
        TensorIOMode=types.SimpleNamespace(INPUT="input"), nptype=lambda dtype: dtype,
    )
    return trt, cuda


@pytest.mark.parametrize("inputs", [("ir", "vis"), ("ir", "vis", "stats")])
def test_tensorrt_adapter_binds_every_input_including_stats(tmp_path, monkeypatch, inputs):
    """The TensorRT adapter's own code on a fake engine and CUDA runtime (no GPU here): each input, stats too,
    is copied to its device buffer with its shape set, and the output comes back."""
    import sys
    import types

    trt, cuda = _fake_tensorrt(inputs)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda", types.ModuleType("cuda"))
    monkeypatch.setitem(sys.modules, "cuda.bindings", types.ModuleType("cuda.bindings"))
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cuda)
    (tmp_path / "m.engine").write_bytes(b"engine")
    engine = open_backend("tensorrt", {"model": tmp_path / "m.engine"}, inputs=inputs)
    assert engine.provider == "CUDA:0 (FakeGPU)"
    ir, vis = _planes(24, 40, seed=3)
    stats = np.full((1, 6), 0.25, np.float32) if "stats" in inputs else None
    expected = np.clip(np.maximum(ir, vis) + (0.25 if stats is not None else 0.0), 0.0, 1.0)
    np.testing.assert_allclose(engine.run(ir, vis, stats=stats), expected, atol=1e-6)


@pytest.mark.parametrize("backend", [pytest.param("onnxruntime", marks=needs_ort), pytest.param("openvino", marks=needs_ov)])
@pytest.mark.parametrize("fields, message", [
    ({"layout": "NHWC"}, "the {backend} model's ir input is 1x1x?x?, not one channel in the NHWC layout the bundle manifest says"),
    ({"io_dtype": "uint8", "io_quantization": {n: {"scale": 1 / 255, "zero_point": 0} for n in ("ir", "vis", "fused")}},
     "the {backend} model's ir input is float32, the bundle manifest says uint8"),
])
def test_manifest_that_contradicts_the_model_is_refused_on_open(onnx_file, tmp_path, backend, fields, message):
    """A manifest edited after the build (its layout or io_dtype) no longer matches the model's inputs: one line when opening."""
    bundle = make_bundle(tmp_path / "b", onnx_file, backend=backend, **fields)
    with pytest.raises(UserError) as err:
        Fuser.open(bundle)
    assert str(err.value) == message.format(backend=backend)
