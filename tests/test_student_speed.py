"""Eager fast paths of the students (strip composition, fused stems, split merge, channels_last) vs the math.

References: a frozen copy of ``StudentCtx.forward`` as it was before the fast
paths (modules as declared, whole frame, written out here) with PyTorch's own
bilinear resize as ``up4``; the export formulation (``export_graph``); hand
values of the x4 upsampling.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from edgefusion.models.student import STRIP_ROWS, export_graph, pad_rows, upsample4  # noqa: E402
from edgefusion.runtime.frame_stats import frame_stats  # noqa: E402
from test_student_ctx import _perturbed  # noqa: E402

#: Frozen constants of student-ctx (STD_EPS, STATS_SCALE) at the time of the reference.
STD_EPS = 0.01
STATS_SCALE = (1.0, 4.0, 1.0, 4.0, 10.0, 10.0)


def _reference(model, ir, vis, stats):
    """``(fused, maps)`` of student-ctx by its original formula, whole frame, ``up4`` = F.interpolate bilinear."""
    def normalized(s, conv, mean, std):
        weight_sum = conv.weight.sum(dim=(1, 2, 3))[None, :, None, None]
        return (s - mean[:, None, None, None] * weight_sum) / (std[:, None, None, None] + STD_EPS)

    s_ir, s_vis = model.stem_ir(ir), model.stem_vis(vis)
    n_ir, n_vis = normalized(s_ir, model.stem_ir, stats[:, 0], stats[:, 1]), normalized(s_vis, model.stem_vis, stats[:, 2], stats[:, 3])
    x = torch.relu(torch.cat([s_ir, s_vis, n_ir, n_vis], dim=1) + model.stem_bias)
    q = torch.relu(model.quarter(x))
    context = model.context(stats * torch.tensor(STATS_SCALE))[:, :, None, None]
    e = model.eighth(torch.relu(model.eighth_in(F.avg_pool2d(q, 2)) + context))
    h = model.head(model.merge(torch.cat([q, F.interpolate(e, scale_factor=2.0, mode="nearest")], dim=1)))
    if model.head_kind == "plain":
        maps = h
    else:
        p_ir, p_vis = F.avg_pool2d(ir, 4), F.avg_pool2d(vis, 4)
        h0, h1, h2, h3 = h[:, 0:1], h[:, 1:2], h[:, 2:3], h[:, 3:4]
        maps = torch.cat([h0 + torch.maximum(p_ir, p_vis) - h1 * p_ir - h2 * p_vis - h3 * torch.relu(p_ir - p_vis), h1, h2, h3], dim=1)
    a = F.interpolate(maps, scale_factor=4.0, mode="bilinear", align_corners=False)
    fused = a[:, 0:1] + a[:, 1:2] * ir + a[:, 2:3] * vis + a[:, 3:4] * torch.relu(ir - vis)
    return fused.clamp(0.0, 1.0), maps


def _frames(n: int, h: int, w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    planes = []
    for k in range(n):
        ir = np.clip(0.3 + 0.4 * np.sin((6 + k) * xx) * np.cos(4 * yy) + 0.2 * rng.random((h, w)), 0, 1)
        vis = np.clip(0.5 + 0.3 * np.cos(9 * xx + (3 + k) * yy) + 0.2 * rng.random((h, w)), 0, 1)
        planes.append((ir.astype(np.float32), vis.astype(np.float32)))
    ir = torch.from_numpy(np.stack([p[0] for p in planes]))[:, None]
    vis = torch.from_numpy(np.stack([p[1] for p in planes]))[:, None]
    stats = torch.from_numpy(np.stack([frame_stats(*p) for p in planes]))
    return ir, vis, stats


@pytest.fixture(scope="module")
def shipped():
    from edgefusion.models.checkpoint import load_model
    from edgefusion.resources import DEFAULT_MODEL

    return load_model(DEFAULT_MODEL)[0]


@pytest.fixture(scope="module")
def real_frame():
    """The first shipped sample pair, model planes padded to the stride, and its stats."""
    from edgefusion import preprocess
    from edgefusion.io.images import read_image
    from edgefusion.io.pairs import find_pairs
    from edgefusion.resources import SAMPLES

    pair = find_pairs(SAMPLES)[0]
    prepared = preprocess.prepare_pair(read_image(pair.ir), read_image(pair.vis))
    stats = torch.from_numpy(frame_stats(prepared.ir, prepared.vis_y))[None]
    ir, vis = (torch.from_numpy(np.ascontiguousarray(preprocess.pad_to_multiple(p, 8)))[None, None] for p in (prepared.ir, prepared.vis_y))
    return ir, vis, stats


def test_upsample4_hand_values():
    """Row [0, 4] -> samples at (i + 0.5) / 4 - 0.5, clamped to [0, 1], times 4; rows likewise."""
    maps = torch.tensor([[[[0.0, 4.0]]]])  # (1, 1, 1, 2)
    up = upsample4(pad_rows(maps), 0, 1)
    expected = torch.tensor([0.0, 0.0, 0.5, 1.5, 2.5, 3.5, 4.0, 4.0])
    assert up.shape == (1, 1, 4, 8)
    torch.testing.assert_close(up[0, 0], expected.expand(4, 8), atol=1e-6, rtol=0)
    column = torch.cat([upsample4(pad_rows(maps.transpose(2, 3)), j, j + 1) for j in (0, 1)], dim=2)  # strips of one row
    torch.testing.assert_close(column[0, 0], expected[:, None].expand(8, 4), atol=1e-6, rtol=0)


def test_shipped_student_on_a_real_frame_equals_the_original_forward(shipped, real_frame):
    ir, vis, stats = real_frame
    with torch.no_grad():
        fused, maps = shipped(ir, vis, stats), shipped.analyze(ir, vis, stats)
        ref_fused, ref_maps = _reference(shipped, ir, vis, stats)
    assert maps.is_contiguous() and fused.shape == ir.shape
    torch.testing.assert_close(maps, ref_maps, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused, ref_fused, atol=1e-5, rtol=0)
    assert (fused - torch.maximum(ir, vis)).abs().mean() > 0.01  # a real, non-trivial output


@pytest.mark.parametrize("config", [{"size": "s"}, {"size": "s+", "head": "plain", "dilated": 2}])
def test_random_batch_equals_the_original_forward_and_the_export_graph(config):
    """Two frames with different stats in one batch (no cross-talk), 136 rows: strips of 16 low-res rows + 2."""
    model = _perturbed(config)
    ir, vis, stats = _frames(2, 136, 88)
    assert (136 // 4) // STRIP_ROWS == 2 and (136 // 4) % STRIP_ROWS  # two full strips and a partial one
    with torch.no_grad():
        fused = model(ir, vis, stats)
        ref_fused, ref_maps = _reference(model, ir, vis, stats)
        with export_graph():
            export_fused, export_maps = model(ir, vis, stats), model.analyze(ir, vis, stats)
        single = model(ir[1:], vis[1:], stats[1:])
    tol = 1e-5 * max(1.0, float(ref_maps.abs().max()))  # randomly perturbed weights: maps far above 1, float error scales
    torch.testing.assert_close(model.analyze(ir, vis, stats), ref_maps, atol=tol, rtol=0)
    torch.testing.assert_close(fused, ref_fused, atol=tol, rtol=0)
    torch.testing.assert_close(fused, export_fused, atol=tol, rtol=0)
    torch.testing.assert_close(export_maps, ref_maps, atol=tol, rtol=0)
    torch.testing.assert_close(fused[1:], single, atol=tol, rtol=0)


def test_shipped_student_on_random_frames_equals_the_original_forward(shipped):
    ir, vis, stats = _frames(1, 136, 88, seed=5)
    ir, vis = torch.rand_like(ir), torch.rand_like(vis)  # noise: the hardest case for the detail gains
    stats = torch.from_numpy(frame_stats(ir[0, 0].numpy(), vis[0, 0].numpy()))[None]
    with torch.no_grad():
        torch.testing.assert_close(shipped(ir, vis, stats), _reference(shipped, ir, vis, stats)[0], atol=1e-5, rtol=0)


def test_training_path_gradients_equal_the_original_forward():
    """Autograd on (whole crop, no strips): outputs and the gradients of weights and inputs match."""
    model = _perturbed({"size": "s"}, seed=2).train()
    ir, vis, stats = _frames(2, 64, 48, seed=3)
    grads = []
    for forward in (lambda: model(ir_g, vis, stats), lambda: _reference(model, ir_g, vis, stats)[0]):
        model.zero_grad()
        ir_g = ir.clone().requires_grad_(True)
        out = forward()
        (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
        grads.append([out.detach(), ir_g.grad] + [p.grad for p in model.parameters()])
    for new, old in zip(*grads):
        torch.testing.assert_close(new, old, atol=1e-5, rtol=1e-4)


def test_export_traces_the_export_graph(shipped):
    """torch.export (what the ONNX and LiteRT converters use) sees the documented ops, not the eager ones."""
    ir, vis, stats = _frames(1, 32, 32)
    graph = torch.export.export(shipped, (ir, vis, stats)).graph_module.code
    assert "pixel_shuffle" in graph and "avg_pool2d" in graph
    assert "lerp" not in graph and "upsample_linear1d" not in graph


def test_export_analysis_has_no_channel_concat_or_split(shipped):
    """The analyze network as exported (x86: analyze-only models) joins and picks channels without cat/split
    (OpenVINO's CPU plugin runs both as reference kernels); the frozen reference above checks it is the same math."""
    from edgefusion.quantize.pipeline import analyze_only

    ir, vis, stats = _frames(1, 32, 32)
    graph = torch.export.export(analyze_only(shipped), (ir, vis, stats)).graph_module.code
    assert "aten.conv2d" in graph
    assert not [op for op in ("aten.cat", "split", "chunk", "unbind") if op in graph]


@pytest.mark.parametrize("kernel", [1, 3])
def test_parts_conv_equals_the_conv_of_the_concat(kernel):
    """PartsConv2d([a, b, (c, 2)]) = conv(cat[a, b, nearest x2 of c]) (low-resolution parts: 1x1 only)."""
    from edgefusion.models.student_ctx import PartsConv2d

    torch.manual_seed(0)
    conv = PartsConv2d(7, 5, kernel, padding=kernel // 2)
    a, b, c = torch.randn(2, 3, 8, 10), torch.randn(2, 2, 8, 10), torch.randn(2, 2, 4, 5)
    up = F.interpolate(c, scale_factor=2.0, mode="nearest")
    with torch.no_grad():
        expected = F.conv2d(torch.cat([a, b, up], dim=1), conv.weight, conv.bias, padding=kernel // 2)
        torch.testing.assert_close(conv([a, b, up]), expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(conv(torch.cat([a, b, up], dim=1)), expected, atol=1e-6, rtol=0)
        if kernel == 1:
            torch.testing.assert_close(conv([a, b, (c, 2)]), expected, atol=1e-5, rtol=0)
        else:
            with pytest.raises(ValueError, match="1x1"):
                conv([a, b, (c, 2)])
