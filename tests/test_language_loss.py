"""Loss terms of the language-driven objective (and the pixel objective) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefusion.language import losses as L  # noqa: E402
from edgefusion.training import pixel  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def t(*values):
    return torch.tensor([values], dtype=torch.float64)


# --- directional ------------------------------------------------------------------------------


def test_directional_zero_when_image_moves_along_text_direction():
    # image dir = [1,0]-[0,1] = [1,-1]; text dir = [1,-1]
    assert L.directional_loss(t(1, 0), t(0, 1), t(1, 0), t(0, 1)).item() == pytest.approx(0.0, abs=1e-12)


def test_directional_two_when_opposite_and_one_when_orthogonal():
    assert L.directional_loss(t(1, 0), t(0, 1), t(0, 1), t(1, 0)).item() == pytest.approx(2.0)
    # image dir [1,-1,0]; text dir [0,0,1] - [1,1,0]/sqrt2 has zero dot product with it
    assert L.directional_loss(t(1, 0, 0), t(0, 1, 0), t(0, 0, 1), t(1, 1, 0)).item() == pytest.approx(1.0)


def test_directional_hand_value_and_normalization():
    # norm([3,4]) - norm([1,0]) = [-0.4, 0.8]; norm([0,2]) - norm([1,0]) = [-1, 1]
    expected = 1 - (0.4 + 0.8) / (math.hypot(0.4, 0.8) * math.sqrt(2))
    got = L.directional_loss(t(3, 4), t(5, 0), t(0, 2), t(7, 0)).item()
    assert got == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.0513167, abs=1e-6)


def test_directional_is_one_when_fused_equals_source():
    assert L.directional_loss(t(0.3, 0.4), t(0.3, 0.4), t(1, 0), t(0, 1)).item() == pytest.approx(1.0)


def test_directional_per_sample_with_shared_text():
    fused = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    source = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    out = L.directional_loss(fused, source, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([0.0, 2.0], abs=1e-6)


# --- similarity, regularizer -------------------------------------------------------------------


def test_similarity_hand_values():
    assert L.similarity_loss(t(2, 0), [t(1, 0), t(0, 3)]).item() == pytest.approx(0.5)
    assert L.similarity_loss(t(1, 1), [t(2, 2), t(5, 5)]).item() == pytest.approx(0.0, abs=1e-12)
    assert L.similarity_loss(t(1, 0), [t(-1, 0)]).item() == pytest.approx(2.0)


def test_feature_max_loss_hand_value_and_zero():
    f = [torch.tensor([[1.0, 2.0]]), torch.tensor([[5.0]])]
    a = [torch.tensor([[0.0, 3.0]]), torch.tensor([[5.0]])]
    b = [torch.tensor([[2.0, 1.0]]), torch.tensor([[-1.0]])]
    # depth 1: max = [2, 3], mse = ((1-2)^2 + (2-3)^2)/2 = 1; depth 2: 0 -> mean 0.5
    assert L.feature_max_loss(f, a, b).item() == pytest.approx(0.5)
    maxed = [torch.maximum(x, y) for x, y in zip(a, b)]
    assert L.feature_max_loss(maxed, a, b).item() == 0.0
    # the paper sums the depths: 1 + 0
    assert L.feature_max_loss(f, a, b, reduce="sum").item() == pytest.approx(1.0)


# --- entropy and patch filtering ----------------------------------------------------------------


def test_entropy_bits_hand_values():
    flat = torch.full((1, 1, 16, 16), 0.5)
    halves = torch.cat([torch.zeros(1, 1, 8, 16), torch.ones(1, 1, 8, 16)], dim=2)
    ramp = (torch.arange(256, dtype=torch.float32) / 255.0).reshape(1, 1, 16, 16)
    got = L.entropy_bits(torch.cat([flat, halves, ramp]))
    assert got.tolist() == pytest.approx([0.0, 1.0, 8.0], abs=1e-5)


def test_entropy_matches_numpy_histogram():
    img = torch.rand(1, 1, 32, 32)
    counts = np.bincount(np.minimum((img.numpy().ravel() * 256).astype(int), 255), minlength=256)
    p = counts[counts > 0] / counts.sum()
    assert L.entropy_bits(img).item() == pytest.approx(float(-(p * np.log2(p)).sum()), rel=1e-5)


def test_patch_filter_keeps_textured_drops_flat():
    textured = torch.rand(2, 1, 48, 48)  # ~7.9 bits
    flat = torch.full((2, 1, 48, 48), 0.3)
    gentle = torch.linspace(0.4, 0.45, 48).repeat(48, 1)[None, None].repeat(2, 1, 1, 1)  # ~13 levels: ~3.7 bits
    ir = torch.cat([textured, flat, textured, gentle])
    vis = torch.cat([textured, textured, flat, textured])
    keep = L.keep_mask(ir, vis, threshold=6.0)
    assert keep.tolist() == [True, True, False, False, False, False, False, False]


# --- CLIP input and crops -----------------------------------------------------------------------


def test_clip_input_normalizes_gray_to_three_channels():
    x = L.clip_input(torch.full((2, 1, 40, 50), 0.5), 32, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    assert x.shape == (2, 3, 32, 32)
    assert x[:, 0].abs().max() == pytest.approx(0.0, abs=1e-6)
    assert x[:, 1].mean() == pytest.approx(1.0, abs=1e-6)
    assert x[:, 2].mean() == pytest.approx(0.25, abs=1e-6)


def test_patch_average_one_of_eight_crops_kept():
    losses = torch.tensor([0.3, 0.8, 0.5, 0.1, 0.9, 0.2, 0.4, 0.6])
    keep = torch.tensor([False, True, False, False, False, False, False, False])
    # paper: per-crop loss x mask averaged over ALL crops -> 0.8 / 8; edgefusion's variant: over the kept crop -> 0.8
    assert L.patch_average(losses, keep, "all").item() == pytest.approx(0.1)
    assert L.patch_average(losses, keep, "kept").item() == pytest.approx(0.8)
    none = torch.zeros(8, dtype=torch.bool)
    assert L.patch_average(losses, none, "all").item() == 0.0 and L.patch_average(losses, none, "kept").item() == 0.0
    two = keep.clone()
    two[4] = True
    assert L.patch_average(losses, two, "all").item() == pytest.approx(1.7 / 8)
    assert L.patch_average(losses, two, "kept").item() == pytest.approx(1.7 / 2)


def _maps(window, warp):
    return L.PatchMaps(torch.zeros(1, dtype=torch.long), torch.tensor([window]), torch.tensor([warp]))


IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_patch_window_cuts_the_quadrant_exactly():
    img = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    for fill in ("zeros", "reflection"):
        assert torch.allclose(L.apply_patches(img, _maps([0.0, 0.0, 1.0, 1.0], IDENTITY), 8, fill), img, atol=1e-4)
        top_left = L.apply_patches(img, _maps([-0.5, -0.5, 0.5, 0.5], IDENTITY), 4, fill)
        assert torch.allclose(top_left, img[..., :4, :4], atol=1e-4)


def test_patch_fill_black_outside_the_window_or_image_around_it():
    img = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    # bottom-left quadrant, content shifted down by a quarter of the window (t_y = 0.5 normalized):
    # output row 0 reads window row -0.5 (outside), rows 1..3 read window rows 0..2 (image rows 4..6)
    shifted = [[1.0, 0.0, 0.0], [0.0, 1.0, -0.5]]
    black = L.apply_patches(img, _maps([-0.5, 0.5, 0.5, 0.5], shifted), 4, "zeros")[0, 0]
    around = L.apply_patches(img, _maps([-0.5, 0.5, 0.5, 0.5], shifted), 4, "reflection")[0, 0]
    assert torch.equal(black[0], torch.zeros(4))
    assert torch.allclose(black[1:], img[0, 0, 4:7, :4], atol=1e-4)
    assert torch.allclose(around[0], img[0, 0, 3, :4], atol=1e-4)  # the image row just above the window
    assert torch.allclose(around[1:], black[1:])


def test_patch_maps_paper_geometry():
    torch.manual_seed(1)
    maps = L.random_patch_maps(4, 32, (224, 224), (0.5, 0.8), True, 5.0, 5.0, (0.0, 0.1), (1.0, 1.5))
    assert maps.image.tolist() == [i for i in range(4) for _ in range(32)]
    cx, cy, hx, hy = maps.window.unbind(1)
    assert torch.all(hx == hx[0]) and torch.all(hy == hx[0]) and 0.5 <= hx[0].item() <= 0.8  # one side per step
    assert torch.all(cx.abs() + hx <= 1 + 1e-6) and torch.all(cy.abs() + hy <= 1 + 1e-6)  # window inside the image
    a, b = maps.warp[:, :, :2], maps.warp[:, :, 2]
    zoom = torch.linalg.det(a).rsqrt()  # rotation and shear have det 1: det(warp) = 1 / zoom^2
    assert zoom.min() >= 1 - 1e-5 and zoom.max() <= 1.5 + 1e-5 and zoom.max() - zoom.min() > 0.3
    shift = -torch.linalg.solve(a, b)  # the forward shift t (normalized window units: 0.1 of the side = 0.2)
    assert shift[:, 0].abs().max() < 1e-5 and shift[:, 1].abs().max() <= 0.2 + 1e-5 and shift[:, 1].abs().max() > 0.1
    linear = a * zoom[:, None, None]  # Shear(-s) R(-r): its (1, 0) entry is -sin(r)
    angle = torch.asin(-linear[:, 1, 0]).rad2deg()
    assert angle.abs().max() <= 5 + 1e-4 and angle.abs().max() > 3
    per_crop = L.random_patch_maps(2, 16, (224, 224), (0.5, 0.8), False, 5.0, 5.0, (0.0, 0.1), (1.0, 1.5))
    assert len(set(per_crop.window[:, 2].tolist())) == 32


def test_patches_share_geometry_across_channels_in_image_major_order():
    a = torch.rand(2, 1, 24, 24)
    maps = L.random_patch_maps(2, 3, (24, 24), (0.5, 0.8), False, 8.0, 5.0, (0.05, 0.05), (1.0, 1.2))
    together = L.apply_patches(torch.cat([a, 1 - a], dim=1), maps, 12, "reflection")
    assert together.shape == (6, 2, 12, 12)
    assert torch.allclose(together[:, 1], 1 - together[:, 0], atol=1e-5)
    assert torch.allclose(L.apply_patches(a, maps[torch.tensor([3, 4, 5])], 12, "reflection"), together[3:, :1], atol=1e-6)


# --- optimization with a synthetic embedding in place of CLIP -----------------------------------


def _synthetic_embedding(x: torch.Tensor) -> torch.Tensor:
    """A known 3-D 'embedding': (mean intensity, mean |horizontal gradient|, constant)."""
    grad = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return torch.stack([x.mean(dim=(1, 2, 3)), 4 * grad, torch.full_like(grad, 0.2)], dim=1)


def test_directional_optimization_moves_embedding_along_text_direction():
    source = torch.full((1, 1, 16, 16), 0.6)  # bright and flat: embedding (0.6, 0, 0.2)
    text_source, text_objective = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])  # 'bright' -> 'textured'
    logits = torch.zeros(1, 1, 16, 16) + 0.4 + 0.05 * torch.randn(1, 1, 16, 16)
    logits.requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    text_dir = L.unit(text_objective) - L.unit(text_source)
    e_source = _synthetic_embedding(source)

    def measure():
        e_fused = _synthetic_embedding(torch.sigmoid(logits))
        return L.directional_loss(e_fused, e_source, text_objective, text_source).item(), ((L.unit(e_fused) - L.unit(e_source)) @ text_dir).item()

    loss0, along0 = measure()
    for _ in range(30):
        loss = L.directional_loss(_synthetic_embedding(torch.sigmoid(logits)), e_source, text_objective, text_source).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loss1, along1 = measure()
    assert loss1 < loss0 - 0.2
    assert along1 > along0 + 0.1


# --- pixel objective -----------------------------------------------------------------------------


def test_pixel_terms_zero_at_their_targets():
    ir, vis = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
    assert pixel.intensity_max_l1(torch.maximum(ir, vis), ir, vis).item() == 0.0
    assert pixel.gradient_max_l1(ir, ir, ir).item() == 0.0
    assert pixel.ssim_loss(ir, ir, ir).item() == pytest.approx(0.0, abs=1e-5)
    # hand value: |0.2 - max(0.5, 0.1)| = 0.3 everywhere
    assert pixel.intensity_max_l1(torch.full((1, 1, 4, 4), 0.2), torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.1)).item() == pytest.approx(0.3)


def test_sobel_magnitude_of_a_ramp():
    ramp = torch.arange(8, dtype=torch.float32).repeat(8, 1)[None, None]  # +1 per column
    mag = pixel.sobel_magnitude(ramp)
    assert torch.allclose(mag[..., 1:-1, 1:-1], torch.full_like(mag[..., 1:-1, 1:-1], 8.0))  # Gx = 1*2+2*2+1*2


def test_ssim_matches_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    a = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    b = (a + 0.2 * torch.rand(1, 1, 32, 32, dtype=torch.float64)).clamp(0, 1)
    expected = skimage_metrics.structural_similarity(a[0, 0].numpy(), b[0, 0].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert pixel.ssim(a, b).item() == pytest.approx(expected, abs=1e-6)
