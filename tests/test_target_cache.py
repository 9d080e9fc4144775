"""Per-frame teacher target cache: keys, round trip, torn files, and a teacher pass that resumes."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion.io.digest import sha256_file
from edgefusion.io.images import read_image, write_image
from edgefusion.resources import SAMPLES
from edgefusion.training.target_cache import SCALE, TargetCache, frame_key

DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def test_round_trip_within_half_a_uint16_step(tmp_path):
    cache = TargetCache(tmp_path, DIGEST_A)
    plane = np.random.default_rng(0).random((7, 9), dtype=np.float32)
    plane[0, 0], plane[0, 1] = 0.0, 1.0
    assert cache.get("f") is None
    stored = cache.put("f", "", plane)
    got = cache.get("f")
    assert got.dtype == np.float32 and got.shape == (7, 9)
    assert np.array_equal(got, stored)
    assert np.abs(got - plane).max() <= 0.5 / SCALE + 1e-7
    assert got[0, 0] == 0.0 and got[0, 1] == 1.0


def test_keys_separate_teacher_frame_and_augmentation(tmp_path):
    a, b = TargetCache(tmp_path, DIGEST_A), TargetCache(tmp_path, DIGEST_B)
    a.put("f", "", np.full((2, 2), 0.25, np.float32))
    assert b.get("f") is None  # another teacher: its own entries
    assert a.get("g") is None and a.get("f", "hflip") is None
    a.put("f", "hflip", np.full((2, 2), 0.75, np.float32))
    assert a.get("f")[0, 0] == pytest.approx(0.25, abs=1e-5) and a.get("f", "hflip")[0, 0] == pytest.approx(0.75, abs=1e-5)
    assert len({a.path("f"), a.path("f", "hflip"), a.path("g"), b.path("f")}) == 4
    assert a.path("f").parent.name == DIGEST_A[:16]


def test_frame_key_follows_file_contents(tmp_path):
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    write_image(ir, np.zeros((3, 3), np.uint8))
    write_image(vis, np.zeros((3, 3), np.uint8))
    before = frame_key("p", ir, vis)
    assert frame_key("p", ir, vis) == before and frame_key("q", ir, vis) != before
    write_image(vis, np.ones((3, 3), np.uint8))
    assert frame_key("p", ir, vis) != before


def test_torn_or_foreign_file_is_a_miss_and_get_or_compute_fills_it(tmp_path):
    cache = TargetCache(tmp_path, DIGEST_A)
    path = cache.path("f")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x93NUMPY torn")
    calls = []

    def compute():
        calls.append(1)
        return np.full((3, 4), 0.5, np.float32)

    value, hit = cache.get_or_compute("f", "", compute)
    assert not hit and calls == [1] and value[0, 0] == pytest.approx(0.5, abs=1e-5)
    value, hit = cache.get_or_compute("f", "", compute)
    assert hit and calls == [1]
    np.save(path, np.zeros((2, 2), np.float64))  # not what put() writes
    assert cache.get("f") is None


# --- the distillation teacher pass resumes (issue 9.5) -----------------------------------------------

torch = pytest.importorskip("torch")

from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.checkpoint import TorchFuser, model_payload, save_checkpoint  # noqa: E402
from edgefusion.training import distill as D  # noqa: E402
from edgefusion.training.dataset import PairCrops  # noqa: E402

NAMES = ("tno_07", "tno_08", "tno_19", "tno_20")
RECIPE = """
[distill]
teacher_cache = true
[data]
crop = 32
[train]
steps = 2
batch_size = 2
[finetune]
steps = 2
batch_size = 1
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    for name in NAMES:
        for sub in ("ir", "vi"):
            write_image(root / sub / f"{name}.png", read_image(SAMPLES / sub / f"{name}.png")[:40, :48])
    return root


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    torch.manual_seed(5)
    config = {"width": 4, "downsamples": 1, "res_blocks": 1, "style_dim": 2, "mlp_width": 8}
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_checkpoint(path, model_payload(build_model("teacher", config), "teacher", config, {"objective": "test"}))
    return path


def test_interrupted_teacher_pass_resumes_where_it_stopped(tmp_path, data, teacher_ckpt, monkeypatch):
    recipe = tmp_path / "student.toml"
    recipe.write_text(RECIPE)
    real, calls = TorchFuser.fuse_planes, []

    def interrupted_after_two(self, ir, vis):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a kill) during the third frame
        calls.append(1)
        return real(self, ir, vis)

    monkeypatch.setattr(TorchFuser, "fuse_planes", interrupted_after_two)
    with pytest.raises(KeyboardInterrupt):
        D.distill(teacher_ckpt, data, recipe, tmp_path / "run", progress=False)
    assert len(list((tmp_path / "run" / D.CACHE_DIR).rglob("*.npy"))) == 2

    resumed = []

    def counting(self, ir, vis):
        resumed.append(1)
        return real(self, ir, vis)

    monkeypatch.setattr(TorchFuser, "fuse_planes", counting)
    final = D.distill(teacher_ckpt, data, recipe, tmp_path / "run", resume=True, progress=False)
    assert final.is_file()
    assert len(resumed) == len(NAMES) - 2  # only the frames the interrupted pass had not stored

    # the cache holds the teacher's own whole-frame outputs (computed here independently)
    teacher, _ = D.load_teacher(teacher_ckpt, torch.device("cpu"))
    pairs = PairCrops(data, D.load_student_recipe(recipe)["data"])
    cache = TargetCache(tmp_path / "run" / D.CACHE_DIR, sha256_file(teacher_ckpt))
    monkeypatch.setattr(TorchFuser, "fuse_planes", real)
    for i, pair in enumerate(pairs.pairs):
        expected = TorchFuser(teacher, "t").fuse_planes(*pairs.planes(i))
        np.testing.assert_allclose(cache.get(frame_key(pair.name, pair.ir, pair.vis)), expected, atol=0.5 / SCALE + 1e-6)
