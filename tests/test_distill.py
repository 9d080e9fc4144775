"""Distillation on the shared engine: learns the teacher, rejects non-teachers, resumes by phase."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion.io.digest import sha256_file

torch = pytest.importorskip("torch")

from edgefusion.errors import UserError  # noqa: E402
from edgefusion.io.images import read_image, write_image  # noqa: E402
from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.checkpoint import TorchFuser, load_model, model_payload, save_checkpoint  # noqa: E402
from edgefusion.resources import SAMPLES  # noqa: E402
from edgefusion.training import distill as D  # noqa: E402
from edgefusion.training.dataset import PairCrops  # noqa: E402
from edgefusion.training.loop import Interrupted  # noqa: E402
from edgefusion.training.recipe import DataConfig  # noqa: E402

TINY_TEACHER = {"width": 4, "downsamples": 1, "res_blocks": 1, "style_dim": 2, "mlp_width": 8}
RECIPE = """
[model]
size = "s"
[distill]
zooms = [0.5, 1.0, 2.0]
teacher_cache = {cache}
[data]
crop = 32
[train]
steps = {steps}
batch_size = 4
lr = 0.01
log_every = 5
checkpoint_every = 4
[finetune]
steps = {finetune}
batch_size = 1
lr = 0.002
checkpoint_every = 2
"""


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three small real pairs (shipped TNO samples, top-left 48x64 corner)."""
    root = tmp_path_factory.mktemp("pairs")
    for name in ("tno_07", "tno_19", "tno_20"):
        for sub in ("ir", "vi"):
            write_image(root / sub / f"{name}.png", read_image(SAMPLES / sub / f"{name}.png")[:48, :64])
    return root


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    torch.manual_seed(3)
    model = build_model("teacher", TINY_TEACHER)
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_checkpoint(path, model_payload(model, "teacher", TINY_TEACHER, {"objective": "test"}))
    return path


def _recipe(tmp_path, steps=24, finetune=4, cache="true"):
    path = tmp_path / "student.toml"
    path.write_text(RECIPE.format(steps=steps, finetune=finetune, cache=cache))
    return path


def _write(folder, name, text):
    (folder / name).write_text(text)
    return folder / name


def _l1_to_teacher(student, teacher, data) -> float:
    pairs = PairCrops(data, DataConfig(cache=False))
    errors = []
    for i in range(len(pairs)):
        ir, vis = pairs.planes(i)
        errors.append(np.abs(TorchFuser(student, "s").fuse_planes(ir, vis) - TorchFuser(teacher, "t").fuse_planes(ir, vis)).mean())
    return float(np.mean(errors))


@pytest.mark.parametrize("cache", ["true", "false"])
def test_distillation_moves_the_student_towards_the_teacher(tmp_path, data, teacher_ckpt, cache):
    teacher, _ = load_model(teacher_ckpt)
    before = _l1_to_teacher(D.Student("s"), teacher, data)
    final = D.distill(teacher_ckpt, data, _recipe(tmp_path, cache=cache), tmp_path / "run", progress=False)
    student, payload = load_model(final)
    after = _l1_to_teacher(student, teacher, data)
    assert after < 0.6 * before, (before, after)
    assert payload["architecture"] == "student" and payload["config"] == {"size": "s"}
    meta = payload["metadata"]
    assert meta["stage"] == "student" and meta["teacher"]["sha256"] == sha256_file(teacher_ckpt)
    assert meta["teacher"]["objective"] == "test" and meta["data"] == {"folder": data.name, "pairs": 3}
    assert str(tmp_path) not in repr(meta) and str(data) not in repr(meta)  # no build-machine paths (issue 9.6)
    assert meta["recipe"]["train"]["steps"] == 4  # the fine-tuning phase's schedule
    assert meta["student_recipe"]["train"]["steps"] == 24
    assert (tmp_path / "run" / "crops" / "student-crops.pt").is_file() and (tmp_path / "run" / "log.csv").is_file()
    assert (tmp_path / "run" / "teacher-cache").is_dir() == (cache == "true")
    assert payload["metadata"]["recipe"]["distill"]["teacher_cache"] == (cache == "true")


def test_zoom_crops_and_whole_frames(data):
    pairs = PairCrops(data, DataConfig(crop=32, rotate_deg=0.0, shear_deg=0.0, translate=0.0, scale_jitter=0.0, hflip=0.0))
    for seed in range(6):
        item = D.ZoomCrops(pairs, [0.5, 2.0])[(seed % len(pairs), seed)]
        assert item["ir"].shape == item["vis"].shape == (1, 32, 32) and "teacher" not in item
    # zoom 1 without jitter is a plain crop of the planes
    ir, _ = pairs.planes(0)
    crop = D.ZoomCrops(pairs, [1.0])[(0, 5)]["ir"][0].numpy()
    hits = [(y, x) for y in range(ir.shape[0] - 31) for x in range(ir.shape[1] - 31) if np.allclose(ir[y : y + 32, x : x + 32], crop, atol=1e-5)]
    assert hits
    y, x = hits[0]  # a fixed gamma of 2 squares every pixel of the same crop
    squared = D.ZoomCrops(pairs, [1.0], (2.0, 2.0))[(0, 5)]["ir"][0].numpy()
    np.testing.assert_allclose(squared, ir[y : y + 32, x : x + 32] ** 2, atol=1e-5)

    class Targets:
        planes = [2 * pairs.planes(i)[1] for i in range(len(pairs))]

    frame = D.WholeFrames(pairs, 8, Targets())[(0, 1)]
    assert frame["ir"].shape == (1, 48, 64)
    torch.testing.assert_close(frame["teacher"], 2 * frame["vis"])


def test_a_student_checkpoint_is_not_a_teacher(tmp_path, data):
    student_ckpt = tmp_path / "student.pt"
    save_checkpoint(student_ckpt, model_payload(D.Student("s"), "student", {"size": "s"}))
    with pytest.raises(UserError, match="is not a teacher checkpoint"):
        D.distill(student_ckpt, data, _recipe(tmp_path), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_recipe_errors_are_one_line(tmp_path, data, teacher_ckpt):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nsize = "xl"\n')
    with pytest.raises(UserError, match="model.size"):
        D.distill(teacher_ckpt, data, bad, tmp_path / "run", progress=False)
    two = _write(tmp_path, "two.toml", _recipe(tmp_path).read_text().replace("batch_size = 1", "batch_size = 2"))
    with pytest.raises(UserError, match="finetune.batch_size"):
        D.distill(teacher_ckpt, data, two, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_killed_run_resumes_to_the_same_student(tmp_path, data, teacher_ckpt):
    recipe = _recipe(tmp_path, steps=8, finetune=4)
    reference = D.distill(teacher_ckpt, data, recipe, tmp_path / "ref", progress=False)

    def kill_at(n):
        def hook(step, _):
            if step == n:
                raise Interrupted

        return (hook,)

    run = tmp_path / "run"
    with pytest.raises(Interrupted):  # killed in phase 1 after its step-4 checkpoint
        D.distill(teacher_ckpt, data, recipe, run, progress=False, hooks=kill_at(5))
    with pytest.raises(UserError, match="--resume"):
        D.distill(teacher_ckpt, data, recipe, run, progress=False)
    with pytest.raises(Interrupted):  # resumed, phase 1 completes, killed in phase 2 after its step-2 checkpoint
        D.distill(teacher_ckpt, data, recipe, run, resume=True, progress=False, hooks=kill_at(3))
    final = D.distill(teacher_ckpt, data, recipe, run, resume=True, progress=False)
    a, b = torch.load(reference, weights_only=True), torch.load(final, weights_only=True)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, atol=0, rtol=0)


def test_interrupted_teacher_pass_resumes_where_it_stopped(tmp_path, data, teacher_ckpt, monkeypatch):
    """Issue 9.5: --resume after an interrupt in the teacher-target pass computes only the missing frames."""
    from edgefusion.training.target_cache import SCALE, TargetStore, frame_key

    recipe = _recipe(tmp_path, steps=2, finetune=2)
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
    assert D.distill(teacher_ckpt, data, recipe, tmp_path / "run", resume=True, progress=False).is_file()
    pairs = PairCrops(data, DataConfig(cache=False))
    assert len(resumed) == len(pairs) - 2  # only the frames the interrupted pass had not stored

    # the cache holds the teacher's own whole-frame outputs (computed here independently)
    monkeypatch.setattr(TorchFuser, "fuse_planes", real)
    teacher, _ = load_model(teacher_ckpt)
    cache = TargetStore(tmp_path / "run" / D.CACHE_DIR, sha256_file(teacher_ckpt))  # D.WHOLE_FRAME entries
    for i, pair in enumerate(pairs.pairs):
        expected = TorchFuser(teacher, "t").fuse_planes(*pairs.planes(i))
        np.testing.assert_allclose(cache.get(frame_key(pair.name, pair.ir, pair.vis), D.WHOLE_FRAME.key), expected, atol=0.5 / SCALE + 1e-6)


TINY_PIXEL_TEACHER = """
[train]
steps = 3
batch_size = 2
checkpoint_every = 2
amp = "off"
[data]
crop = 32
[model]
width = 4
downsamples = 1
res_blocks = 1
style_dim = 2
mlp_width = 8
[objective]
kind = "pixel"
"""


def test_pipeline_runs_both_stages_then_skips_them(tmp_path, data):
    from edgefusion.training.pipeline import run_pipeline

    teacher_recipe = _write(tmp_path, "teacher.toml", TINY_PIXEL_TEACHER)
    stages = _write(tmp_path, "pipeline.toml", f'[stages]\nteacher = "{teacher_recipe}"\nstudent = "{_recipe(tmp_path, steps=4, finetune=2)}"\n')
    final = run_pipeline(data, stages, tmp_path / "run", progress=False)
    teacher_final = tmp_path / "run" / "teacher" / "teacher.pt"
    assert final == tmp_path / "run" / "student" / "student.pt"
    assert load_model(final)[1]["metadata"]["teacher"]["sha256"] == sha256_file(teacher_final)
    stamps = [p.stat().st_mtime_ns for p in (teacher_final, final)]
    assert run_pipeline(data, stages, tmp_path / "run", progress=False) == final  # both complete: nothing reruns
    assert [p.stat().st_mtime_ns for p in (teacher_final, final)] == stamps
    final.unlink()  # student incomplete (last.pt remains): needs --resume, the teacher is still skipped
    with pytest.raises(UserError, match="--resume"):
        run_pipeline(data, stages, tmp_path / "run", progress=False)
    assert run_pipeline(data, stages, tmp_path / "run", resume=True, progress=False) == final
    assert teacher_final.stat().st_mtime_ns == stamps[0]


def test_cli_rejects_a_non_teacher_in_one_line(tmp_path, data, capsys):
    from edgefusion.cli import main

    student_ckpt = tmp_path / "student.pt"
    save_checkpoint(student_ckpt, model_payload(D.Student("s"), "student", {"size": "s"}))
    code = main(["train", "student", "--teacher", str(student_ckpt), "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(_recipe(tmp_path))])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "is not a teacher checkpoint" in err
    assert not (tmp_path / "run").exists()
    assert main(["train"]) == 2 and "--data DIR and --out RUN_DIR" in capsys.readouterr().err
