"""``edgefusion export``: FP32 conversions agree with PyTorch on a real pair and keep the I/O contract."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgefusion.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> tuple[Path, object]:
    from runtime_models import perturbed_student

    path = tmp_path_factory.mktemp("ckpt") / "student.pt"
    return path, perturbed_student(path, seed=1)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.mark.parametrize("fmt, name, backend, layout, shape", [
    ("onnx", "m.onnx", "onnxruntime", "NCHW", None),
    ("openvino", "m.xml", "openvino", "NCHW", None),
    ("tflite", "m.tflite", "litert", "NHWC", "64x96"),
])
def test_export_matches_pytorch(tmp_path, student, capsys, fmt, name, backend, layout, shape):
    import torch

    from edgefusion.runtime.backends import open_backend

    out = tmp_path / name
    argv = ["export", "--model", str(student[0]), "--format", fmt, "--out", str(out)] + (["--shape", shape] if shape else [])
    assert main(argv) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    files = {"model": out} | ({"weights": out.with_suffix(".bin")} if fmt == "openvino" else {})
    engine = open_backend(backend, files, layout=layout)
    # a size other than the export example: dynamic exports must follow it
    h, w = (64, 96) if shape else (72, 104)
    rng = np.random.default_rng(0)
    ir, vis = (rng.random((1, 1, h, w), dtype=np.float32) for _ in range(2))
    with torch.no_grad():
        ref = student[1](torch.from_numpy(ir), torch.from_numpy(vis)).numpy()
    assert _psnr(ref, engine.run(ir, vis)) > 60.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_onnx_export_with_fixed_shape(tmp_path, student):
    import onnx

    out = tmp_path / "fixed.onnx"
    assert main(["export", "--model", str(student[0]), "--format", "onnx", "--out", str(out), "--shape", "64x96"]) == 0
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(out)).graph.input]
    assert dims == [[1, 1, 64, 96], [1, 1, 64, 96]]


@pytest.mark.parametrize("argv, message", [
    (["--format", "onnx", "--out", "x.tflite"], "must end in .onnx"),
    (["--format", "tflite", "--out", "x.tflite", "--shape", "60x90"], "multiple of the model stride 8"),
    (["--format", "onnx", "--out", "x.onnx", "--shape", "big"], "shape must be HxW"),
])
def test_bad_export_arguments(tmp_path, student, capsys, argv, message):
    argv = [a if not a.startswith("x.") else str(tmp_path / a) for a in argv]
    assert main(["export", "--model", str(student[0]), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def student_v2(tmp_path_factory) -> tuple[Path, object]:
    from runtime_models import perturbed_student

    path = tmp_path_factory.mktemp("ckpt") / "ctx.pt"
    return path, perturbed_student(path, seed=2, architecture="student-ctx")


@pytest.mark.parametrize("fmt, name, backend, layout, shape", [
    ("onnx", "m.onnx", "onnxruntime", "NCHW", None),
    ("openvino", "m.xml", "openvino", "NCHW", None),
    ("tflite", "m.tflite", "litert", "NHWC", "64x96"),
])
def test_v2_export_takes_stats_and_matches_pytorch(tmp_path, student_v2, capsys, fmt, name, backend, layout, shape):
    from runtime_models import torch_reference

    from edgefusion.runtime.backends import open_backend
    from edgefusion.runtime.frame_stats import frame_stats

    out = tmp_path / name
    argv = ["export", "--model", str(student_v2[0]), "--format", fmt, "--out", str(out)] + (["--shape", shape] if shape else [])
    assert main(argv) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    files = {"model": out} | ({"weights": out.with_suffix(".bin")} if fmt == "openvino" else {})
    engine = open_backend(backend, files, layout=layout, inputs=("ir", "vis", "stats"))
    h, w = (64, 96) if shape else (72, 104)
    rng = np.random.default_rng(0)
    ir, vis = (rng.random((1, 1, h, w), dtype=np.float32) for _ in range(2))
    stats = frame_stats(ir[0, 0], vis[0, 0])[None]
    assert _psnr(torch_reference(student_v2[1], ir, vis, stats), engine.run(ir, vis, stats=stats)) > 60.0
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(out)).graph
        assert [i.name for i in graph.input] == ["ir", "vis", "stats"]
        assert [d.dim_value for d in graph.input[2].type.tensor_type.shape.dim] == [1, 6]
