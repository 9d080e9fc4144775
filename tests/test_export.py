"""``edgefusion export``: FP32 conversions agree with PyTorch on a real pair and keep the I/O contract."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgefusion.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    """``students(architecture)``: (checkpoint path, model) of a perturbed student, made once per module.
    ``student-ctx`` (v2) takes a third input, the frame statistics."""
    from runtime_models import perturbed_student

    cache: dict[str, tuple[Path, object]] = {}

    def get(architecture: str) -> tuple[Path, object]:
        if architecture not in cache:
            path = tmp_path_factory.mktemp("ckpt") / f"{architecture}.pt"
            cache[architecture] = (path, perturbed_student(path, seed=1, architecture=architecture))
        return cache[architecture]

    return get


@pytest.fixture(scope="module")
def student(students) -> tuple[Path, object]:
    return students("student")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.mark.parametrize("fmt, name, backend, layout, shape, architecture", [
    ("onnx", "m.onnx", "onnxruntime", "NCHW", None, "student"),
    ("openvino", "m.xml", "openvino", "NCHW", None, "student"),
    ("tflite", "m.tflite", "litert", "NHWC", "64x96", "student"),
    # v2 (stats input); its OpenVINO and LiteRT conversions are checked by test_quantize and test_runtime
    ("onnx", "m.onnx", "onnxruntime", "NCHW", None, "student-ctx"),
])
def test_export_matches_pytorch(tmp_path, students, capsys, fmt, name, backend, layout, shape, architecture):
    from runtime_models import torch_reference

    from edgefusion.runtime.backends import open_backend
    from edgefusion.runtime.frame_stats import frame_stats

    student = students(architecture)
    inputs = ("ir", "vis", "stats") if architecture == "student-ctx" else ("ir", "vis")
    out = tmp_path / name
    argv = ["export", "--model", str(student[0]), "--format", fmt, "--out", str(out)] + (["--shape", shape] if shape else [])
    assert main(argv) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    files = {"model": out} | ({"weights": out.with_suffix(".bin")} if fmt == "openvino" else {})
    engine = open_backend(backend, files, layout=layout, inputs=inputs)
    # a size other than the export example: dynamic exports must follow it
    h, w = (64, 96) if shape else (72, 104)
    rng = np.random.default_rng(0)
    ir, vis = (rng.random((1, 1, h, w), dtype=np.float32) for _ in range(2))
    stats = frame_stats(ir[0, 0], vis[0, 0])[None] if "stats" in inputs else None
    assert _psnr(torch_reference(student[1], ir, vis, stats), engine.run(ir, vis, stats=stats)) > 60.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("architecture, names", [("student", ["ir", "vis"]), ("student-ctx", ["ir", "vis", "stats"])])
def test_onnx_export_with_fixed_shape(tmp_path, students, architecture, names):
    import onnx

    out = tmp_path / "fixed.onnx"
    assert main(["export", "--model", str(students(architecture)[0]), "--format", "onnx", "--out", str(out), "--shape", "64x96"]) == 0
    graph = onnx.load(str(out)).graph
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
    assert [i.name for i in graph.input] == names
    assert dims == [[1, 1, 64, 96], [1, 1, 64, 96], [1, 6]][: len(names)]  # frame statistics: one fixed (1, 6) input


def test_analysis_graph_has_no_channel_concat_and_keeps_module_names(tmp_path, students):
    """student-ctx's exported analyze network (x86 bundles) joins and picks channels without Concat/Split/Slice
    (OpenVINO's CPU plugin runs them as reference kernels); the weight slices it convolves its input parts
    with are initializers named after the weight, so keep_float still finds every conv by module."""
    import onnx

    from edgefusion.convert.onnx import export_onnx, op_types
    from edgefusion.quantize.onnxruntime import in_modules
    from edgefusion.quantize.pipeline import analyze_only

    path = export_onnx(analyze_only(students("student-ctx")[1]), tmp_path / "analyze.onnx")
    graph = onnx.load(str(path)).graph
    assert not {"Concat", "Split", "Slice"} & set(op_types(path))
    assert {n.input[0] for n in graph.node if n.op_type == "Gather"} == {"stats"}  # the frame statistics only
    initializers = {i.name for i in graph.initializer}
    weights = [n.input[1] for n in graph.node if n.op_type == "Conv"]
    assert all(w in initializers for w in weights)
    counts = {m: sum(in_modules(w, (m,)) for w in weights) for m in ("stem_ir", "stem_vis", "quarter", "eighth_in", "eighth", "merge", "head")}
    # quarter: one part per stem output (raw and normalized, both planes); merge: its first conv over q and e, then a 3x3 conv
    assert counts == {"stem_ir": 1, "stem_vis": 1, "quarter": 4, "eighth_in": 1, "eighth": 2, "merge": 3, "head": 1}
    assert sum(counts.values()) == len(weights)


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


def test_failed_onnx_export_is_one_line_and_torch_logs_nothing(tmp_path, student, capfd):
    """A dynamic export traced at one stride fails inside torch.export (a 1-pixel bottleneck is specialized):
    the UserError is one line without terminal colour codes, torch's log lines stay off stderr, no file."""
    from edgefusion.convert.onnx import export_onnx
    from edgefusion.errors import UserError

    capfd.readouterr()
    with pytest.raises(UserError) as info:
        export_onnx(student[1], tmp_path / "m.onnx", shape=(8, 8), dynamic=True)
    assert capfd.readouterr().err == ""
    message = str(info.value)
    assert message.startswith("ONNX export of Student failed: ") and "\n" not in message and "\x1b" not in message
    assert list(tmp_path.iterdir()) == []


def test_torch_logs_of_a_successful_export_are_written_after_it(capfd):
    import logging

    from edgefusion.convert.onnx import _torch_logs_kept_on_success

    logger = logging.getLogger("torch.export")
    capfd.readouterr()
    with _torch_logs_kept_on_success():
        logger.warning("kept note")
        assert "kept note" not in capfd.readouterr().err  # held while the block runs
    assert "kept note" in capfd.readouterr().err
    with pytest.raises(RuntimeError), _torch_logs_kept_on_success():
        logger.warning("dropped note")
        raise RuntimeError
    assert "dropped note" not in capfd.readouterr().err
