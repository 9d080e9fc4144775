"""student-ctx distillation through the target cache: targets computed once, whole-frame stats, resume, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefusion.cli import main  # noqa: E402
from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.checkpoint import model_payload, read_checkpoint, save_checkpoint  # noqa: E402
from edgefusion.models.provenance import provenance_of  # noqa: E402
from edgefusion.runtime.frame_stats import frame_stats  # noqa: E402
from edgefusion.training import distill_ctx as DC  # noqa: E402
from edgefusion.training import target_cache as TC  # noqa: E402
from edgefusion.training.loop import Interrupted  # noqa: E402

RECIPE = """
[model]
architecture = "student-ctx"
size = "s"
[distill]
crop = 32
augmentations = ["s1-g1-1", "s0.75-g0.8-1.2"]
cache_dir = "{cache}"
[train]
steps = {steps}
batch_size = 2
lr = 0.005
log_every = 2
checkpoint_every = 3
"""


@pytest.fixture(scope="module")
def data(tno_corners):
    """Two small real pairs (shipped TNO samples, 48x64 corner)."""
    return tno_corners


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A randomly initialized LD-Lite with imported-weights provenance (not meaningful, to test the flag)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("teacher") / "teacher-ld.pt"
    meta = {"stage": "teacher", "objective": "test weights", "language_objective_meaningful": False, "licence": "Apache-2.0", "attribution": "test"}
    save_checkpoint(path, model_payload(build_model("ld-lite", {}), "ld-lite", {}, meta))
    return path


def _recipe(tmp_path, cache, steps=6):
    path = tmp_path / "student-ld.toml"
    path.write_text(RECIPE.format(cache=cache, steps=steps))
    return path


def test_frame_aug_spelling_and_effect():
    aug = TC.FrameAug.parse("s0.5-g2-1")
    assert aug.key == "s0.5-g2-1" and TC.FrameAug.parse(aug.key) == aug
    ir = np.full((16, 24), 0.5, np.float32)
    a, b = aug.apply(ir, ir)
    assert a.shape == (8, 12) and np.allclose(a, 0.25) and np.allclose(b, 0.5)
    for bad in ("s1", "x1-g1-1", "s9-g1-1"):
        with pytest.raises(Exception, match="augmentation"):
            TC.FrameAug.parse(bad)


def test_distill_uses_each_target_once_and_resumes(tmp_path, data, teacher_ckpt, monkeypatch):
    cache = tmp_path / "cache"
    calls = []
    original = TC.TargetCache._compute
    monkeypatch.setattr(TC.TargetCache, "_compute", lambda self, i, a, p: (calls.append((i, a.key)), original(self, i, a, p)))
    recipe = _recipe(tmp_path, cache)
    final = DC.distill_ctx(teacher_ckpt, data, recipe, tmp_path / "run1", progress=False)
    assert sorted(calls) == [(0, "s0.75-g0.8-1.2"), (0, "s1-g1-1"), (1, "s0.75-g0.8-1.2"), (1, "s1-g1-1")]
    files = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.npy"))
    assert len(files) == 4 and all(f.split("/")[1].startswith(("tno_07-", "tno_19-")) for f in files)
    # a second run (another recipe, same teacher and frames) computes nothing
    DC.distill_ctx(teacher_ckpt, data, recipe, tmp_path / "run2", progress=False)
    assert len(calls) == 4
    # interrupted run resumes to the same student as an uninterrupted one
    def kill(step, _):
        if step == 4:
            raise Interrupted
    with pytest.raises(Interrupted):
        DC.distill_ctx(teacher_ckpt, data, recipe, tmp_path / "run3", progress=False, hooks=(kill,))
    resumed = DC.distill_ctx(teacher_ckpt, data, recipe, tmp_path / "run3", resume=True, progress=False)
    a, b = read_checkpoint(final)["state_dict"], read_checkpoint(resumed)["state_dict"]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert len(calls) == 4


def test_items_are_crops_of_whole_frames_with_whole_frame_stats(tmp_path, data, teacher_ckpt):
    from edgefusion.training.dataset import PairCrops
    from edgefusion.training.recipe import DataConfig

    teacher = build_model("ld-lite", {})
    pairs = PairCrops(data, DataConfig(crop=32))
    cache = TC.TargetCache(tmp_path, pairs, teacher, "0" * 64)
    aug = TC.FrameAug.parse("s1-g1-1")
    dataset = DC.CachedCrops(cache, [aug], crop=32)
    item = dataset[(1, 7)]
    ir, vis = pairs.planes(1)
    np.testing.assert_allclose(item["stats"].numpy(), frame_stats(ir, vis))  # the WHOLE frame's, not the crop's
    assert item["ir"].shape == (1, 32, 32) and item["teacher"].shape == (1, 32, 32)
    # the crop is a window of the whole frame (float16 storage: 1e-3)
    window = item["ir"][0].numpy()
    hits = [(y, x) for y in range(48 - 31) for x in range(64 - 31) if np.abs(ir[y : y + 32, x : x + 32] - window).max() < 1e-3]
    assert len(hits) == 1
    y, x = hits[0]
    np.testing.assert_allclose(item["teacher"][0].numpy(), cache.target(1, aug)[y : y + 32, x : x + 32], atol=1e-3)


def test_student_carries_teacher_provenance_without_paths(tmp_path, data, teacher_ckpt, capsys):
    recipe = _recipe(tmp_path, tmp_path / "cache", steps=2)
    out = tmp_path / "run"
    rc = main(["train", "student", "--teacher", str(teacher_ckpt), "--data", str(data), "--config", str(recipe), "--out", str(out), "--device", "cpu"])
    assert rc == 0
    payload = read_checkpoint(out / "student.pt")
    assert payload["architecture"] == "student-ctx"
    prov = provenance_of(payload)
    assert prov["language_objective_meaningful"] is False and prov["licence"] == "Apache-2.0"
    assert prov["teacher"]["architecture"] == "ld-lite"
    text = json.dumps(payload["metadata"])
    assert str(tmp_path) not in text and str(data) not in text


@pytest.mark.parametrize("name", ["student-ld", "student-ld-smoke", "student-ld-go", "student-ld-finetune"])
def test_shipped_recipes_are_valid_student_ctx_recipes(name):
    from edgefusion.resources import resource_dir

    path = resource_dir("train") / f"{name}.toml"
    assert DC.is_ctx_recipe(path)
    recipe = DC.load_ctx_recipe(path)
    assert recipe["model"].architecture == "student-ctx" and recipe["distill"].crop % 8 == 0
    assert recipe["distill"].cache_dir == ""  # no machine paths in shipped recipes


def test_ld_lite_declares_a_true_gain_offset_invariance(data):
    """The declaration gain_offset relies on: a per-plane a*x+b of the inputs leaves LD-Lite's output as is."""
    torch.manual_seed(1)
    teacher = build_model("ld-lite", {}).eval()
    assert teacher.gain_offset_invariant is True
    ir = torch.rand(1, 1, 32, 48) * 0.6 + 0.2
    vis = torch.rand(1, 1, 32, 48) * 0.5 + 0.1
    with torch.no_grad():
        plain, moved = teacher(ir, vis), teacher(1.3 * ir - 0.1, 0.7 * vis + 0.2)
    assert (plain - moved).abs().max() < 2e-3 and plain.std() > 1e-3


def test_gain_offset_items_transform_planes_and_stats_not_the_target(tmp_path, data):
    from edgefusion.training.dataset import PairCrops
    from edgefusion.training.gain_offset import GainOffset
    from edgefusion.training.recipe import DataConfig

    pairs = PairCrops(data, DataConfig(crop=32))
    cache = TC.TargetCache(tmp_path, pairs, build_model("ld-lite", {}), "0" * 64)
    aug = TC.FrameAug.parse("s1-g1-1")
    plain = DC.CachedCrops(cache, [aug], crop=32)
    moved = DC.CachedCrops(cache, [aug], crop=32, gain_offset=GainOffset(0.7, 1.3, 0.1))
    ir, vis = pairs.planes(1)
    changed = 0
    for seed in range(6):
        p, m = plain[(1, seed)], moved[(1, seed)]
        assert torch.equal(p["teacher"], m["teacher"])  # the target is the cached one, untouched
        ab = []
        for name in ("ir", "vis"):  # same window (drawn first); recover (a, b) by least squares on the crop
            x, y = p[name].flatten().double().numpy(), m[name].flatten().double().numpy()
            a, b = np.polyfit(x, y, 1)
            assert np.abs(a * x + b - y).max() < 2e-3 and 0.69 < a < 1.31 and abs(b) < 0.101
            ab.append((a, b))
        changed += any(abs(a - 1) > 0.02 or abs(b) > 0.02 for a, b in ab)
        # the stats are those of the transformed WHOLE frame (recomputed here from the planes)
        whole = frame_stats(np.clip(ab[0][0] * ir + ab[0][1], 0, 1), np.clip(ab[1][0] * vis + ab[1][1], 0, 1))
        np.testing.assert_allclose(m["stats"].numpy(), whole, atol=2e-3)
    assert changed >= 4


def test_gain_offset_is_refused_for_a_teacher_that_does_not_declare_the_invariance(tmp_path, data, capsys):
    config = {"width": 4, "downsamples": 1, "res_blocks": 1, "style_dim": 2, "mlp_width": 8}
    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, model_payload(build_model("teacher", config), "teacher", config, {"stage": "teacher"}))
    recipe = _recipe(tmp_path, tmp_path / "cache", steps=2)
    recipe.write_text(recipe.read_text().replace("[train]", "gain_offset = [0.8, 1.2, 0.05]\n[train]"))
    rc = main(["train", "student", "--teacher", str(teacher), "--data", str(data), "--config", str(recipe), "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "gain_offset" in err and "invariant" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
