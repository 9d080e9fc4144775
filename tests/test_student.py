"""Student architecture: composition formula, exact upsampling, cost, ONNX export and operator set."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from edgefusion import preprocess  # noqa: E402
from edgefusion.errors import UserError  # noqa: E402
from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.student import SIZES, Student, Upsample4, macs_per_pixel  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def _pair(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, h, w, generator=gen), torch.rand(1, 1, h, w, generator=gen)


def test_upsample4_is_exact_bilinear():
    x = torch.rand(1, 3, 5, 7)
    planes = Upsample4()(x)
    reference = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert len(planes) == 3
    for k, plane in enumerate(planes):
        assert plane.shape == (1, 1, 20, 28)
        torch.testing.assert_close(plane[:, 0], reference[:, k], atol=1e-6, rtol=0)


def test_compose_is_the_documented_affine_formula():
    model = Student("s")
    ir, vis = _pair(16, 24)
    maps = torch.empty(1, 4, 4, 6)
    maps[:, 0], maps[:, 1], maps[:, 2], maps[:, 3] = 0.1, 0.5, 0.25, 0.8
    expected = (0.1 + 0.5 * ir + 0.25 * vis + 0.8 * torch.clamp(ir - vis, min=0)).clamp(0, 1)
    torch.testing.assert_close(model.compose(ir, vis, maps), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_untrained_student_is_pixel_max(size):
    ir, vis = _pair(32, 40)
    model = build_model("student", {"size": size})
    with torch.no_grad():
        fused = model(ir, vis)
    assert fused.shape == ir.shape and model.stride == 8
    assert model.analyze(ir, vis).shape == (1, 4, 8, 10)
    torch.testing.assert_close(fused, torch.maximum(ir, vis), atol=5e-3, rtol=0)


def test_unknown_size_is_a_user_error():
    with pytest.raises(UserError, match="student"):
        build_model("student", {"size": "xl"})


def test_torch_fuser_clips_without_touching_the_callers_planes():
    """TorchFuser clips the model's output to [0, 1] in place only when the model made it: a model that returns its
    input (torch.from_numpy shares the caller's plane) leaves the caller's array as it was."""
    from edgefusion.models.checkpoint import TorchFuser

    class Identity(torch.nn.Module):
        def forward(self, ir, vis):
            return ir

    class Doubled(torch.nn.Module):
        def forward(self, ir, vis):
            return 2 * ir

    ir = np.linspace(-0.5, 1.5, 20, dtype=np.float32).reshape(4, 5)
    before = ir.copy()
    np.testing.assert_array_equal(TorchFuser(Identity(), "identity").fuse_planes(ir, np.zeros_like(ir)), np.clip(before, 0, 1))
    np.testing.assert_array_equal(ir, before)
    np.testing.assert_array_equal(TorchFuser(Doubled(), "doubled").fuse_planes(ir, np.zeros_like(ir)), np.clip(2 * before, 0, 1))
    np.testing.assert_array_equal(ir, before)


def test_student_s_costs_under_one_gigaflop_at_1080p():
    macs = macs_per_pixel(Student("s"), 64, 64)
    assert 100 < macs < 250  # MACs per pixel; 2 * 250 * 1920 * 1080 = 1.04 GFLOPs
    assert macs_per_pixel(Student("m"), 64, 64) > 2 * macs


onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from edgefusion.convert.onnx import STUDENT_OPS, check_ops, export_onnx, read_stride  # noqa: E402


def _train_a_little(model: Student) -> Student:
    """Perturb all weights so the export check does not run on the trivial max initialization."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_dynamic_onnx_export_matches_pytorch(tmp_path, size):
    model = _train_a_little(Student(size))
    path = export_onnx(model, tmp_path / f"student-{size}.onnx", dynamic=True)
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["ir", "vis"] and [o.name for o in graph.graph.output] == ["fused"]
    assert graph.opset_import[0].version >= 17 and read_stride(path) == 8
    counts = check_ops(graph)
    assert counts["DepthToSpace"] == 4 and "Resize" in counts
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in ((481, 353), (64, 96)):
        ir, vis = _pair(h, w, seed=h)
        ir_p = preprocess.pad_to_multiple(ir.numpy(), model.stride)
        vis_p = preprocess.pad_to_multiple(vis.numpy(), model.stride)
        assert ir_p.shape[-2:] == ((h + 7) // 8 * 8, (w + 7) // 8 * 8)
        (out,) = session.run(None, {"ir": ir_p, "vis": vis_p})
        with torch.no_grad():
            ref = model(torch.from_numpy(ir_p), torch.from_numpy(vis_p)).numpy()
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() < 1e-4


def test_fixed_shape_export(tmp_path):
    model = _train_a_little(Student("s"))
    path = export_onnx(model, tmp_path / "fixed.onnx", shape=(48, 64), dynamic=False)
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 48, 64]
    with pytest.raises(UserError, match="multiples of the model stride"):
        export_onnx(model, tmp_path / "bad.onnx", shape=(50, 64), dynamic=False)
    assert not (tmp_path / "bad.onnx").exists()


def test_op_checker_rejects_operators_outside_the_list(tmp_path):
    class WithNorm(torch.nn.Module):
        stride = 1

        def forward(self, ir, vis):
            return torch.sigmoid(F.instance_norm(ir + vis))

    path = export_onnx(WithNorm(), tmp_path / "norm.onnx", shape=(16, 16))
    with pytest.raises(UserError, match="InstanceNormalization"):
        check_ops(path)
    assert "InstanceNormalization" not in STUDENT_OPS
    assert check_ops(path, allowed=STUDENT_OPS | {"InstanceNormalization"})["Sigmoid"] == 1
