"""Student v2 (``student-ctx``): stats input, structured head, cost, tiles equal the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefusion.errors import UserError  # noqa: E402
from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.student import macs_per_pixel  # noqa: E402
from edgefusion.models.student_ctx import HEADS  # noqa: E402
from edgefusion.runtime.frame_stats import frame_stats  # noqa: E402


def _frame(h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A smooth-plus-texture pair and its whole-frame stats (1, 6)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    ir = np.clip(0.3 + 0.4 * np.sin(6 * xx) * np.cos(4 * yy) + 0.1 * rng.random((h, w)), 0, 1).astype(np.float32)
    vis = np.clip(0.5 + 0.3 * np.cos(9 * xx + 3 * yy) + 0.15 * rng.random((h, w)), 0, 1).astype(np.float32)
    stats = torch.from_numpy(frame_stats(ir, vis))[None]
    return torch.from_numpy(ir)[None, None], torch.from_numpy(vis)[None, None], stats


def _perturbed(config: dict, seed: int = 0):
    """A student-ctx whose every weight is randomly perturbed (so it is far from its max(ir, vis) start)."""
    torch.manual_seed(seed)
    model = build_model("student-ctx", config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("head", HEADS)
def test_untrained_student_ctx_is_pixel_max(head):
    ir, vis, stats = _frame(32, 40)
    model = build_model("student-ctx", {"size": "s", "head": head}).eval()
    with torch.no_grad():
        fused = model(ir, vis, stats)
        maps = model.analyze(ir, vis, stats)
    assert model.inputs == ("ir", "vis", "stats") and model.stride == 8
    assert maps.shape == (1, 4, 8, 10) and fused.shape == ir.shape
    torch.testing.assert_close(fused, torch.maximum(ir, vis), atol=5e-3, rtol=0)


def test_structured_head_expresses_detail_gain():
    """Head values (h0, h1, h2, h3) = (0, g, 0, 0) on constant maps: fused = g*ir + (max(p_ir,p_vis) - g*p_ir) upsampled."""
    model = build_model("student-ctx", {"head": "structured"}).eval()
    ir, vis, stats = _frame(32, 32)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 1.5, 0.0, 0.0]))
        maps = model.analyze(ir, vis, stats)
    p_ir, p_vis = torch.nn.functional.avg_pool2d(ir, 4), torch.nn.functional.avg_pool2d(vis, 4)
    torch.testing.assert_close(maps[:, 1], torch.full_like(maps[:, 1], 1.5))
    torch.testing.assert_close(maps[:, 0:1], torch.maximum(p_ir, p_vis) - 1.5 * p_ir, atol=1e-6, rtol=0)


def test_stats_change_the_output():
    model = _perturbed({"size": "s"})
    ir, vis, stats = _frame(32, 32)
    with torch.no_grad():
        a = model(ir, vis, stats)
        b = model(ir, vis, stats * torch.tensor([[1.2, 0.5, 0.8, 2.0, 1.0, 3.0]]))
    assert (a - b).abs().mean() > 1e-3


def test_cost_within_twice_the_v1_student():
    v1 = macs_per_pixel(build_model("student", {"size": "s"}))
    v2 = macs_per_pixel(build_model("student-ctx", {"size": "s"}))
    assert v2 <= 2 * v1


def test_unknown_config_is_a_user_error():
    with pytest.raises(UserError, match="student"):
        build_model("student-ctx", {"head": "fancy"})
    with pytest.raises(UserError, match="student-ctx"):
        build_model("student-ctx", {"depth": 3})


def test_tiles_with_whole_frame_stats_equal_the_whole_frame():
    """Overlapping 8-aligned tiles, each given the WHOLE frame's stats, stitched from their centres."""
    model = _perturbed({"size": "s"}, seed=3)
    h, w, core, margin = 96, 160, 32, 64
    ir, vis, stats = _frame(h, w, seed=1)
    with torch.no_grad():
        whole = model(ir, vis, stats)
        tiled = torch.zeros_like(whole)
        for y in range(0, h, core):
            for x in range(0, w, core):
                y0, x0 = max(0, y - margin), max(0, x - margin)
                y1, x1 = min(h, y + core + margin), min(w, x + core + margin)
                out = model(ir[..., y0:y1, x0:x1], vis[..., y0:y1, x0:x1], stats)
                tiled[..., y : y + core, x : x + core] = out[..., y - y0 : y - y0 + core, x - x0 : x - x0 + core]
    assert (whole - torch.maximum(ir, vis)).abs().mean() > 0.02  # the model does something non-trivial
    assert (tiled - whole).abs().mean() * 255 < 1.0
    assert (tiled - whole).abs().max() * 255 < 1.0
