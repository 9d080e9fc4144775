"""Teacher network, model checkpoints/TorchFuser, the teacher objectives and recipes."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefusion.errors import UserError  # noqa: E402
from edgefusion.models import build_model, register  # noqa: E402
from edgefusion.models.checkpoint import TorchFuser, model_payload, read_checkpoint, save_checkpoint  # noqa: E402
from edgefusion.resources import resource_dir  # noqa: E402

TINY = {"width": 4, "downsamples": 2, "res_blocks": 1, "style_dim": 2, "mlp_width": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


@pytest.mark.parametrize("skips", [True, False])
def test_teacher_output_contract(skips):
    model = build_model("teacher", {**TINY, "skips": skips}).eval()
    assert model.stride == 4
    ir, vis = torch.rand(2, 1, 24, 40), torch.rand(2, 1, 24, 40)
    out = model(ir, vis)
    assert out.shape == (2, 1, 24, 40)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_teacher_style_codes_drive_the_decoder():
    model = build_model("teacher", TINY).eval()
    ir, vis = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    base = model(ir, vis)
    with torch.no_grad():
        model.style_mlp[-1].bias.add_(1.0)  # changes every AdaIN scale/shift, nothing else
    assert not torch.allclose(model(ir, vis), base)


# --- the paper's layout -------------------------------------------------------------------------

PAPER = {"layout": "paper", "width": 16, "downsamples": 3, "res_blocks": 2, "style_dim": 8, "mlp_width": 256, "skips": False}


def _conv(cout, cin, k):
    return [(cout, cin, k, k), (cout,)]


def _paper_parameter_shapes():
    """Every parameter shape of the paper's teacher, written from the issue's layout (ConvTranspose: Cin, Cout, k, k)."""
    content = _conv(16, 1, 7) + _conv(32, 16, 4) + _conv(64, 32, 4) + _conv(128, 64, 4) + 4 * _conv(128, 128, 3)
    style = _conv(16, 1, 7) + _conv(32, 16, 4) + _conv(64, 32, 4) + _conv(64, 64, 4) + _conv(8, 64, 1)
    decoder = 4 * _conv(256, 256, 3) + [(256, 16), (256,), (256, 256), (256,), (2048, 256), (2048,)]
    decoder += [(256, 128, 5, 5), (128,), (128,), (128,), (128, 64, 5, 5), (64,), (64,), (64,), (64, 32, 5, 5), (32,), (32,), (32,)]
    decoder += _conv(1, 32, 7)
    return sorted(2 * content + 2 * style + decoder)


def test_paper_teacher_parameters_and_layer_shapes():
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    assert vars(load_recipe(resource_dir("train") / "teacher.toml", teacher.SECTIONS)["model"]) == PAPER
    model = build_model("teacher", PAPER)
    assert sum(p.numel() for p in model.parameters()) == 5_776_977
    assert sorted(tuple(p.shape) for p in model.parameters()) == _paper_parameter_shapes()
    assert model.stride == 8


def test_paper_teacher_feature_shapes_and_bottleneck():
    model = build_model("teacher", PAPER).eval()
    seen = {}
    for name in ("content_ir", "content_vis", "style_ir", "style_mlp", "blocks.1", "up.0", "up.1", "up.2"):
        model.get_submodule(name).register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape)))
    with torch.no_grad():
        model(torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48))
    assert seen == {"content_ir": (2, 128, 4, 6), "content_vis": (2, 128, 4, 6), "style_ir": (2, 8), "style_mlp": (2, 2048),
                    "blocks.1": (2, 256, 4, 6), "up.0": (2, 128, 8, 12), "up.1": (2, 64, 16, 24), "up.2": (2, 32, 32, 48)}


def test_paper_teacher_output_is_clamped_tanh_and_init_is_normal_002():
    model = build_model("teacher", PAPER).eval()
    ir, vis = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        out = model(ir, vis)
        assert out.shape == (1, 1, 32, 32) and out.min() >= 0.0 and out.max() <= 1.0
        last = model.out[0]
        last.weight.zero_()
        last.bias.fill_(0.5)
        assert torch.allclose(model(ir, vis), torch.full_like(out, math.tanh(0.5)))  # tanh, not a sigmoid (0.62)
        last.bias.fill_(-0.5)
        assert torch.equal(model(ir, vis), torch.zeros_like(out))  # tanh < 0 clamped to 0
    fresh = build_model("teacher", PAPER)
    big = fresh.blocks[0].conv1
    assert big.weight.std().item() == pytest.approx(0.02, rel=0.01) and abs(big.weight.mean().item()) < 1e-3
    assert all(torch.count_nonzero(m.bias) == 0 for m in fresh.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)))


def _paper_macs_224() -> int:
    """Multiply-accumulates at 224x224 by hand: Cin*Cout*k*k per output position (conv) or input position (transposed)."""
    content = 1 * 16 * 49 * 224**2 + 16 * 32 * 16 * 112**2 + 32 * 64 * 16 * 56**2 + 64 * 128 * 16 * 28**2 + 4 * 128 * 128 * 9 * 28**2
    style = 1 * 16 * 49 * 224**2 + 16 * 32 * 16 * 112**2 + 32 * 64 * 16 * 56**2 + 64 * 64 * 16 * 28**2 + 64 * 8
    decoder = 4 * 256 * 256 * 9 * 28**2 + 256 * 128 * 25 * 28**2 + 128 * 64 * 25 * 56**2 + 64 * 32 * 25 * 112**2 + 32 * 49 * 224**2
    mlp = 16 * 256 + 256 * 256 + 256 * 2048
    return 2 * content + 2 * style + decoder + mlp


def test_paper_teacher_macs_at_224():
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model("teacher", PAPER)
        x = torch.empty(1, 1, 224, 224)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, x)
    macs = counter.get_total_flops() // 2
    assert macs == _paper_macs_224()
    assert macs / 1e9 == pytest.approx(6.3, rel=0.05)  # the 6.3 GMAC (6.07 counted this way)


def test_paper_layout_has_no_skips():
    with pytest.raises(UserError, match="no skip connections"):
        build_model("teacher", {**PAPER, "skips": True})


def test_unknown_architecture_and_bad_config_are_user_errors():
    with pytest.raises(UserError, match="unknown model architecture"):
        build_model("nope", {})
    with pytest.raises(UserError, match="invalid config"):
        build_model("teacher", {"widht": 3})


def test_checkpoint_round_trip_and_fuser_pads_and_crops(tmp_path):
    model = build_model("teacher", TINY).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model_payload(model, "teacher", TINY, {"note": "x"}))
    fuser = TorchFuser.load(path)
    assert fuser.name == "m" and fuser.stride == 4 and fuser.metadata == {"note": "x"}
    ir, vis = np.random.rand(21, 30).astype(np.float32), np.random.rand(21, 30).astype(np.float32)
    fused = fuser.fuse_planes(ir, vis)
    assert fused.shape == (21, 30) and fused.dtype == np.float32
    # Same as running the original model on the edge-padded planes and cropping.
    from edgefusion.preprocess import pad_to_multiple

    with torch.no_grad():
        ref = model(*(torch.from_numpy(pad_to_multiple(p, 4))[None, None] for p in (ir, vis)))[0, 0, :21, :30].numpy()
    np.testing.assert_allclose(fused, ref, atol=1e-6)


def test_open_fuser_accepts_checkpoint(tmp_path):
    from edgefusion.fusers import open_fuser

    path = tmp_path / "teacher.pt"
    save_checkpoint(path, model_payload(build_model("teacher", TINY), "teacher", TINY))
    assert open_fuser(path).fuse_planes(np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32)).shape == (8, 8)


def test_registered_architecture_is_rebuilt_from_checkpoint(tmp_path):
    class Mean(torch.nn.Module):
        stride = 1

        def __init__(self, config):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor(float(config["w"])))

        def forward(self, ir, vis):
            return self.w * ir + (1 - self.w) * vis

    register("test-mean", Mean)
    path = tmp_path / "mean.pt"
    save_checkpoint(path, model_payload(Mean({"w": 0.25}), "test-mean", {"w": 0.25}))
    out = TorchFuser.load(path).fuse_planes(np.ones((3, 3), np.float32), np.zeros((3, 3), np.float32))
    np.testing.assert_allclose(out, 0.25)


def test_bad_checkpoints_are_user_errors(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        read_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(UserError, match="not an edgefusion checkpoint"):
        read_checkpoint(foreign)
    wrong = tmp_path / "wrong.pt"
    payload = model_payload(build_model("teacher", TINY), "teacher", TINY)
    payload["config"] = {**TINY, "width": 8}
    save_checkpoint(wrong, payload)
    with pytest.raises(UserError, match="do not match"):
        TorchFuser.load(wrong)


@pytest.mark.parametrize("name", ["teacher", "teacher-unet", "teacher-smoke", "teacher-pixel"])
def test_packaged_recipes_parse(name):
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    recipe = load_recipe(resource_dir("train") / f"{name}.toml", teacher.SECTIONS)
    build_model("teacher", vars(recipe["model"]))
    o = recipe["objective"]
    if name in ("teacher", "teacher-unet"):  # the paper's loss weights
        assert recipe["data"].crop == 224 and recipe["train"].batch_size == 16 and recipe["clip"].model == "ViT-B-32"
        assert (o.weight_similarity, o.weight_global, o.weight_patch, o.weight_regularizer) == (6.0, 2.0, 10.0, 10.0)
        assert (o.input_noise, o.entropy_threshold, o.regularizer) == (0.03, 6.0, "vgg19")
    if name == "teacher":  # every other point of issue 12
        t, d = recipe["train"], recipe["data"]
        assert (t.lr, t.betas, t.milestones, t.amp) == (5e-4, [0.9, 0.999], [], "off")
        assert (d.hflip, d.vflip, d.rotate_deg, d.shear_deg, d.scale_jitter, d.translate, d.min_std) == (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.05)
        assert (o.patch_crops, o.patch_average, o.patch_scale, o.patch_scale_per) == (32, "all", [0.5, 0.8], "step")
        assert (o.patch_rotate_deg, o.patch_shear_deg, o.patch_translate, o.patch_zoom, o.patch_fill) == (5.0, 5.0, [0.0, 0.1], [1.0, 1.5], "zeros")
        assert (o.regularizer_reduce, o.vgg_imagenet_norm, o.input_noise_clamp, o.clip_precision) == ("sum", False, False, "fp16")
    if name == "teacher-unet":  # edgefusion's variant
        assert recipe["model"].layout == "unet" and recipe["model"].skips and (o.patch_crops, o.patch_average) == (8, "kept")
    if name == "teacher-pixel":
        assert recipe["objective"].kind == "pixel"


def test_recipe_errors_name_the_key(tmp_path):
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    bad = tmp_path / "bad.toml"
    for text, message in [
        ("[objective]\nkind = 'clip'\n", "objective.kind must be one of language, pixel"),
        ("[objective]\npatch_scale = [0.8, 0.5]\n", "patch_scale must be"),
        ("[prompts]\nfused = []\n", "prompts.fused"),
        ("[model]\nwidth = 2.5\n", "model.width must be int"),
        ("[train\n", "cannot parse recipe"),
    ]:
        bad.write_text(text)
        with pytest.raises(UserError, match=message.replace("[", r"\[")):
            load_recipe(bad, teacher.SECTIONS)


# --- objectives with the tiny random CLIP ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_objective():
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    torch.set_num_threads(1)
    recipe = load_recipe(resource_dir("train") / "teacher-smoke.toml", teacher.SECTIONS)
    recipe["objective"].input_noise = 0.0
    objective, metadata = teacher.build_objective(recipe, teacher.check_weights(recipe))
    return objective, metadata


def test_tiny_clip_objective_is_flagged_meaningless(tiny_objective):
    _, metadata = tiny_objective
    assert metadata["language_objective_meaningful"] is False
    assert metadata["clip_model"] == "edgefusion-tiny-clip" and metadata["clip_weights"] == "random"


def test_language_objective_terms_and_gradients(tiny_objective):
    objective, _ = tiny_objective
    model = build_model("teacher", TINY)
    terms = objective(model, {"ir": torch.rand(2, 1, 64, 64), "vis": torch.rand(2, 1, 64, 64)})
    assert set(terms) == {"total", "similarity", "global_direction", "patch_direction", "regularizer", "patch_kept"}
    cfg = objective.cfg
    expected = cfg.weight_similarity * terms["similarity"] + cfg.weight_global * terms["global_direction"] + cfg.weight_patch * terms["patch_direction"] + cfg.weight_regularizer * terms["regularizer"]
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["patch_kept"].item() == 1.0  # uniform noise: ~8 bits everywhere
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not any(p.requires_grad for p in objective.parameters())


def test_language_objective_drops_flat_patches(tiny_objective):
    objective, _ = tiny_objective
    flat = torch.full((2, 1, 64, 64), 0.5)
    terms = objective(build_model("teacher", TINY), {"ir": flat, "vis": torch.rand(2, 1, 64, 64)})
    assert terms["patch_kept"].item() == 0.0 and terms["patch_direction"].item() == 0.0


def _objective_with(tiny_objective, **changes):
    """The tiny-CLIP objective with ``[objective]`` options changed (shares the CLIP, prompts and features)."""
    import copy
    import dataclasses

    base, _ = tiny_objective
    objective = copy.copy(base)
    objective.cfg = dataclasses.replace(base.cfg, **changes)
    return objective


def _half_textured(n=2, size=64):
    """Top half uniform noise (~8 bits), bottom half flat: some crops pass the entropy filter, some not."""
    x = torch.rand(n, 1, size, size)
    x[..., size // 2:, :] = 0.5
    return x


@pytest.mark.parametrize("fill", ["zeros", "reflection"])
def test_patch_average_all_is_kept_mean_times_kept_fraction(tiny_objective, fill):
    ir, vis = _half_textured(), _half_textured()
    model = build_model("teacher", TINY)
    terms = {}
    for over in ("all", "kept"):
        objective = _objective_with(tiny_objective, patch_crops=8, patch_average=over, patch_fill=fill, patch_scale_per="step", patch_zoom=[1.0, 1.5])
        torch.manual_seed(3)  # same crops for both
        terms[over] = objective(model, {"ir": ir, "vis": vis})
    kept = terms["all"]["patch_kept"].item()
    assert kept == terms["kept"]["patch_kept"].item() and 0.0 < kept < 1.0
    assert terms["all"]["patch_direction"].item() == pytest.approx(terms["kept"]["patch_direction"].item() * kept, rel=1e-5)
    terms["all"]["total"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_regularizer_reduce_sum_is_depths_times_mean(tiny_objective):
    ir, vis = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    model = build_model("teacher", TINY)
    depths = len(tiny_objective[0].features(ir))
    values = {}
    for reduce in ("mean", "sum"):
        torch.manual_seed(0)
        values[reduce] = _objective_with(tiny_objective, regularizer_reduce=reduce)(model, {"ir": ir, "vis": vis})["regularizer"].item()
    assert depths >= 2 and values["sum"] == pytest.approx(depths * values["mean"], rel=1e-5)


class _Record(torch.nn.Module):
    def forward(self, ir, vis):
        self.seen = ir
        return torch.maximum(ir, vis).clamp(0, 1)


@pytest.mark.parametrize("clamp", [True, False])
def test_input_noise_clamp_option(clamp):
    from edgefusion.training.teacher import ObjectiveConfig, PixelObjective

    model = _Record()
    zeros = torch.zeros(1, 1, 32, 32)
    torch.manual_seed(0)
    PixelObjective(ObjectiveConfig(kind="pixel", input_noise=0.5, input_noise_clamp=clamp))(model, {"ir": zeros, "vis": zeros})
    if clamp:
        assert model.seen.min() == 0.0 and (model.seen == 0).float().mean() > 0.4  # about half the noise is negative
    else:
        assert model.seen.min() < -0.5 and model.seen.std().item() == pytest.approx(0.5, rel=0.1)


def test_clip_precision_is_fp16_on_cuda_only():
    from edgefusion.training.teacher import clip_dtype

    assert clip_dtype("cuda", "fp16") == torch.float16 and clip_dtype("cuda", "bf16") == torch.bfloat16
    assert clip_dtype("cuda", "fp32") == torch.float32 and clip_dtype("cuda", "amp") is None
    assert clip_dtype("cpu", "fp16") is None  # CPU: the loop's fp32


def test_min_std_redraws_flat_crops(tmp_path):
    from PIL import Image

    from edgefusion.training.dataset import PairCrops
    from edgefusion.training.recipe import DataConfig

    rng = np.random.default_rng(0)
    plane = np.full((64, 64), 128, np.uint8)
    plane[32:] = rng.integers(0, 256, (32, 64))  # bottom half textured, top half flat
    for folder in ("ir", "vi"):
        (tmp_path / folder).mkdir()
        Image.fromarray(plane).save(tmp_path / folder / "a.png")
    stds = {}
    for min_std in (0.0, 0.05):
        data = PairCrops(tmp_path, DataConfig(crop=16, hflip=0.0, rotate_deg=0.0, shear_deg=0.0, scale_jitter=0.0, translate=0.0, min_std=min_std))
        stds[min_std] = [min(float(v.std()) for v in data[(0, seed)].values()) for seed in range(40)]
    assert min(stds[0.0]) < 0.01  # some crops fall in the flat half
    assert min(stds[0.05]) >= 0.05


def test_paper_recipe_objective_trains_the_paper_network():
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    recipe = load_recipe(resource_dir("train") / "teacher.toml", teacher.SECTIONS)
    recipe["clip"].model, recipe["clip"].weights, recipe["objective"].regularizer = "edgefusion-tiny-clip", "random", "clip"
    objective, _ = teacher.build_objective(recipe, teacher.check_weights(recipe))
    model = build_model("teacher", vars(recipe["model"]))
    terms = objective(model, {"ir": torch.rand(2, 1, 32, 32), "vis": torch.rand(2, 1, 32, 32)})
    assert all(torch.isfinite(v) for v in terms.values()) and 0.0 < terms["patch_kept"].item() <= 1.0
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_pixel_objective_terms():
    from edgefusion.training.teacher import PIXEL_OBJECTIVE_NOTE, ObjectiveConfig, PixelObjective, build_objective

    class Max(torch.nn.Module):
        def forward(self, ir, vis):
            return torch.maximum(ir, vis)

    ir, vis = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    terms = PixelObjective(ObjectiveConfig(kind="pixel", input_noise=0.0))(Max(), {"ir": ir, "vis": vis})
    assert terms["intensity"].item() == 0.0
    assert set(terms) == {"total", "intensity", "gradient", "ssim"}
    _, metadata = build_objective({"objective": ObjectiveConfig(kind="pixel")}, None)
    assert metadata == {"objective": PIXEL_OBJECTIVE_NOTE, "language_objective_meaningful": False}
    assert "NOT the paper" in PIXEL_OBJECTIVE_NOTE


def test_vgg_regularizer_loads_local_weights_and_taps_three_depths(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    from edgefusion.training.features import VGG19_LAYERS, VGGFeatures, resolve_vgg_weights

    reference = make_layers(cfgs["E"])[: max(VGG19_LAYERS.values()) + 1].eval()  # torchvision vgg19().features
    path = tmp_path / "vgg19-features.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, path)
    features = VGGFeatures(resolve_vgg_weights(path))
    gray = torch.rand(1, 1, 32, 32)
    out = features(gray)
    assert [tuple(o.shape[1:]) for o in out] == [(128, 16, 16), (256, 8, 8), (512, 4, 4)]
    x = (gray.expand(-1, 3, -1, -1) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(out[-1], reference(x), atol=1e-5)  # relu4_2 is the last layer kept
        raw = VGGFeatures(resolve_vgg_weights(path), imagenet_norm=False)(gray)[-1]
        assert torch.allclose(raw, reference(gray.expand(-1, 3, -1, -1)), atol=1e-5)  # the paper: [0, 1] gray, unnormalized
    assert not any(p.requires_grad for p in features.parameters())
    broken = tmp_path / "broken.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, broken)
    with pytest.raises(UserError, match="not a torchvision VGG19 state dict"):
        VGGFeatures(broken)
    with pytest.raises(UserError, match="VGG19 weights not found"):
        resolve_vgg_weights(tmp_path / "missing.pth")


def test_clip_weights_from_a_local_file(tmp_path):
    from edgefusion.language.clip import TINY_CLIP, load_clip, resolve_weights

    random_clip = load_clip(resolve_weights(TINY_CLIP, "random"))
    path = tmp_path / "tiny.pt"
    torch.save(random_clip.model.state_dict(), path)
    weights = resolve_weights(TINY_CLIP, str(path))
    assert weights.path == path and not weights.meaningful  # the test model never counts as meaningful
    loaded = load_clip(weights)
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded.model.encode_image(image), random_clip.model.encode_image(image))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot load CLIP"):
        load_clip(resolve_weights(TINY_CLIP, str(junk)))
    with pytest.raises(UserError, match="without pretrained tags"):
        resolve_weights(TINY_CLIP, "openai")
