"""Teacher network, model checkpoints/TorchFuser, the teacher objectives and recipes."""

from __future__ import annotations

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


@pytest.mark.parametrize("name", ["teacher", "teacher-smoke", "teacher-pixel"])
def test_packaged_recipes_parse(name):
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    recipe = load_recipe(resource_dir("train") / f"{name}.toml", teacher.SECTIONS)
    build_model("teacher", vars(recipe["model"]))
    if name == "teacher":  # the paper's defaults
        assert recipe["data"].crop == 224 and recipe["train"].batch_size == 16 and recipe["clip"].model == "ViT-B-32"
        o = recipe["objective"]
        assert (o.weight_similarity, o.weight_global, o.weight_patch, o.weight_regularizer) == (6.0, 2.0, 10.0, 10.0)
        assert (o.input_noise, o.entropy_threshold, o.regularizer) == (0.03, 6.0, "vgg19")
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
