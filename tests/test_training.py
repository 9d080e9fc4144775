"""The generic training engine: schedule, data, checkpoints, exact resume, DDP, and `edgefusion train teacher`."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefusion import cli  # noqa: E402
from edgefusion.resources import resource_dir  # noqa: E402
from edgefusion.training.dataset import PairCrops, StepBatchSampler, augment_crop  # noqa: E402
from edgefusion.training.loop import lr_factor  # noqa: E402
from edgefusion.training.recipe import DataConfig, TrainConfig  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data/ivif/train"
SMOKE = resource_dir("train") / "teacher-smoke.toml"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"training pairs not found at {DATA}")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def main(argv: list[str], monkeypatch) -> int:
    """Run the real CLI entry point with only the train command registered."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("train",))
    return cli.main(argv)


def smoke_recipe(tmp_path: Path, **changes: str) -> Path:
    """The smoke recipe with ``key = value`` lines replaced (keys must be unique in the file)."""
    lines = SMOKE.read_text().splitlines()
    for key, value in changes.items():
        hits = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == key]
        assert len(hits) == 1, key
        lines[hits[0]] = f"{key} = {value}"
    path = tmp_path / "recipe.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# --- schedule and data ------------------------------------------------------------------------------


def test_lr_factor_warmup_then_multistep():
    train = TrainConfig(warmup_steps=4, milestones=[10, 6], gamma=0.1)
    got = [lr_factor(s, train) for s in (0, 1, 3, 4, 5, 6, 9, 10, 50)]
    assert got == pytest.approx([0.25, 0.5, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_step_sampler_is_resumable_and_partitions_ranks():
    ds = _Indexed(10)
    full = list(StepBatchSampler(ds, 3, steps=8, seed=5))
    assert len(full) == 8
    assert list(StepBatchSampler(ds, 3, steps=8, seed=5, start_step=5)) == full[5:]
    assert [i for b in full[:3] for i, _ in b][:10] != list(range(10))  # shuffled
    assert all(0 <= i < 10 for b in full for i, _ in b)
    # every pair once per epoch: the first 9 items of the stream are distinct
    assert len({i for b in full[:3] for i, _ in b}) == 9
    assert full != list(StepBatchSampler(ds, 3, steps=8, seed=6))
    # two ranks: disjoint pairs within an epoch, distinct augmentation seeds
    r0 = StepBatchSampler(ds, 2, steps=2, seed=5, rank=0, world=2).batch_at(0)
    r1 = StepBatchSampler(ds, 2, steps=2, seed=5, rank=1, world=2).batch_at(0)
    assert not {i for i, _ in r0} & {i for i, _ in r1}
    assert len({s for _, s in r0 + r1}) == 4


def test_augment_without_jitter_is_a_plain_crop():
    planes = torch.rand(2, 40, 50)
    cfg = DataConfig(crop=12, scale_jitter=0.0, rotate_deg=0.0, shear_deg=0.0, translate=0.0, hflip=0.0)
    crop = augment_crop(planes, cfg, torch.Generator().manual_seed(3))
    windows = planes.unfold(1, 12, 1).unfold(2, 12, 1)  # (2, 29, 39, 12, 12)
    err = (windows - crop[:, None, None]).abs().amax(dim=(0, 3, 4))
    assert err.min() < 1e-5


def test_augment_is_seeded_and_shares_geometry():
    base = torch.rand(1, 60, 70)
    planes = torch.cat([base, 1 - base])
    cfg = DataConfig(crop=16, rotate_deg=10.0, shear_deg=5.0, hflip=0.5, vflip=0.5)
    a = augment_crop(planes, cfg, torch.Generator().manual_seed(11))
    b = augment_crop(planes, cfg, torch.Generator().manual_seed(11))
    c = augment_crop(planes, cfg, torch.Generator().manual_seed(12))
    assert a.shape == (2, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a[1], 1 - a[0], atol=1e-5)


def test_augment_pads_images_smaller_than_the_crop():
    crop = augment_crop(torch.rand(2, 10, 12), DataConfig(crop=32), torch.Generator().manual_seed(0))
    assert crop.shape == (2, 32, 32) and 0.0 <= crop.min() and crop.max() <= 1.0


@needs_data
def test_pair_crops_on_real_pairs():
    ds = PairCrops(DATA, DataConfig(crop=48))
    assert len(ds) > 100
    item = ds[(0, 7)]
    assert item["ir"].shape == (1, 48, 48) and item["vis"].shape == (1, 48, 48)
    assert torch.equal(ds[(0, 7)]["vis"], item["vis"]) and 0 in ds._cache


# --- runs --------------------------------------------------------------------------------------------


def _read_log(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


@needs_data
def test_smoke_run_writes_checkpoints_and_log(tmp_path, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", "teacher", "--data", str(DATA), "--config", str(SMOKE), "--out", str(run), "--device", "cpu"], monkeypatch) == 0
    assert {p.name for p in run.iterdir()} >= {"teacher.pt", "last.pt", "log.csv"}
    final = torch.load(run / "teacher.pt", weights_only=True)
    last = torch.load(run / "last.pt", weights_only=True)
    assert "training" not in final and last["training"]["step"] == 6
    meta = final["metadata"]
    assert meta["language_objective_meaningful"] is False and meta["stage"] == "teacher"
    assert meta["recipe"]["clip"]["model"] == "edgefusion-tiny-clip"
    rows = _read_log(run / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"total", "similarity", "global_direction", "patch_direction", "regularizer", "patch_kept"} <= set(rows[0])
    from edgefusion.models.checkpoint import TorchFuser

    fused = TorchFuser.load(run / "teacher.pt").fuse_planes(np.random.rand(37, 45).astype(np.float32), np.random.rand(37, 45).astype(np.float32))
    assert fused.shape == (37, 45)
    # a second run into the same folder without --resume is refused, nothing overwritten
    before = (run / "teacher.pt").read_bytes()
    assert main(["train", "teacher", "--data", str(DATA), "--config", str(SMOKE), "--out", str(run)], monkeypatch) == 2
    assert (run / "teacher.pt").read_bytes() == before


def test_whole_smoke_pipeline_runs_both_stages(tmp_path, monkeypatch, capsys):
    """The README's first training command: teacher-smoke then student-smoke, on the package samples."""
    pytest.importorskip("open_clip")
    from edgefusion.io.digest import sha256_file
    from edgefusion.resources import SAMPLES

    run = tmp_path / "run"
    argv = ["train", "--data", str(SAMPLES), "--out", str(run), "--teacher-config", "teacher-smoke", "--student-config", "student-smoke", "--device", "cpu"]
    assert main(argv, monkeypatch) == 0
    student = torch.load(run / "student" / "student.pt", weights_only=True)
    assert student["architecture"] == "student"
    assert student["metadata"]["teacher"]["sha256"] == sha256_file(run / "teacher" / "teacher.pt")
    recipe = student["metadata"]["student_recipe"]
    assert recipe["train"]["steps"] == 6 and recipe["finetune"]["steps"] == 4  # train/student-smoke.toml, not the 15-min recipe
    assert [int(r["step"]) for r in _read_log(run / "student" / "crops" / "log.csv")] == list(range(1, 7))
    assert [int(r["step"]) for r in _read_log(run / "student" / "log.csv")] == list(range(1, 5))
    err = capsys.readouterr().err
    assert f"phase 1 (crops) {run / 'student' / 'crops' / 'log.csv'}" in err  # where the logs are is said


def test_train_usage_does_not_require_a_stage(monkeypatch, capsys):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("train",))
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--data", "d", "--out", "o"])
    assert args.stage is None and args.func.__name__ == "run_pipeline"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    assert usage.startswith("usage: edgefusion train --data DIR --out RUN_DIR")
    assert "edgefusion train {teacher,student}" in usage and "STAGE ..." not in usage.splitlines()[0]
    assert "student-smoke" in text  # the first run to try
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "student", "--help"])
    assert capsys.readouterr().out.startswith("usage: edgefusion train student [-h] --teacher CKPT")


def _teacher_run(recipe_path: Path, run_dir: Path, resume: bool = False, stop_at: int | None = None):
    from edgefusion.training import teacher
    from edgefusion.training.loop import Interrupted, run_stage
    from edgefusion.training.recipe import load_recipe

    recipe = load_recipe(recipe_path, teacher.SECTIONS)
    stage = teacher.build_teacher_stage(recipe, DATA, teacher.check_weights(recipe))

    def kill(step, _scalars):
        if step == stop_at:
            raise Interrupted(step)

    try:
        run_stage(stage, recipe, run_dir, resume=resume, hooks=(kill,), progress=False)
    except Interrupted:
        return None
    return stage.model


@needs_data
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path):
    recipe = smoke_recipe(tmp_path, steps="5", checkpoint_every="2", batch_size="2", log_every="2")
    full = _teacher_run(recipe, tmp_path / "full")
    assert _teacher_run(recipe, tmp_path / "killed", stop_at=3) is None  # dies after step 3; last.pt holds step 2
    assert torch.load(tmp_path / "killed/last.pt", weights_only=True)["training"]["step"] == 2
    resumed = _teacher_run(recipe, tmp_path / "killed", resume=True)
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la = torch.load(tmp_path / "full/last.pt", weights_only=True)["training"]
    lb = torch.load(tmp_path / "killed/last.pt", weights_only=True)["training"]
    for key, value in la["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg_sq"], lb["optimizer"]["state"][key]["exp_avg_sq"])
    assert torch.equal(la["rng"][0]["torch"], lb["rng"][0]["torch"])
    assert _read_log(tmp_path / "full/log.csv") == _read_log(tmp_path / "killed/log.csv")


@needs_data
def test_resume_refuses_changed_recipe_and_missing_checkpoint(tmp_path, monkeypatch, capsys):
    recipe = smoke_recipe(tmp_path, steps="2", checkpoint_every="1")
    run = tmp_path / "run"
    base = ["train", "teacher", "--data", str(DATA), "--out", str(run), "--device", "cpu"]
    assert main([*base, "--config", str(recipe), "--resume"], monkeypatch) == 2
    assert "no " in capsys.readouterr().err and not run.exists()
    assert main([*base, "--config", str(recipe)], monkeypatch) == 0
    changed = smoke_recipe(tmp_path, steps="2", checkpoint_every="1", lr="1e-3")
    assert main([*base, "--config", str(changed), "--resume"], monkeypatch) == 2
    assert "train.lr" in capsys.readouterr().err


def test_resume_accepts_an_option_the_run_predates_only_while_it_is_off():
    """A run started before a recipe option existed resumes with the option off, not with it on."""
    from edgefusion.errors import UserError
    from edgefusion.training.loop import _check_resume

    class Stage:
        architecture, model_config, arguments = "student-ctx", {"size": "s"}, {}

    payload = {"training": {}, "architecture": "student-ctx", "config": {"size": "s"},
               "metadata": {"recipe": {"distill": {"crop": 160}, "train": {"steps": 10}}}}
    recipe = {"distill": {"crop": 160, "gain_offset": []}, "train": {"steps": 10}}
    _check_resume(payload, Stage, recipe, Path("last.pt"))  # no error
    recipe["distill"]["gain_offset"] = [0.7, 1.3, 0.1]
    with pytest.raises(UserError, match=r"distill\.gain_offset: None -> \[0\.7, 1\.3, 0\.1\]"):
        _check_resume(payload, Stage, recipe, Path("last.pt"))
    recipe["distill"]["gain_offset"] = []
    del recipe["distill"]["crop"]  # an option the current recipe lacks is still a difference
    with pytest.raises(UserError, match=r"distill\.crop"):
        _check_resume(payload, Stage, recipe, Path("last.pt"))


@needs_data
@pytest.mark.parametrize(
    "extra, looked_for",
    [
        (["--clip-model", "ViT-B-32", "--clip-weights", "openai"], "not in the local cache"),
        (["--clip-model", "ViT-B-32", "--clip-weights", "/nonexistent/clip.safetensors"], "/nonexistent/clip.safetensors"),
        (["--clip-model", "ViT-B-32", "--clip-weights", "no-such-tag"], "not an open_clip tag"),
        (["--clip-model", "ViT-B-32", "--clip-weights", "random", "--vgg-weights", "/nonexistent/vgg19.pth"], "/nonexistent/vgg19.pth"),
    ],
)
def test_missing_weights_fail_fast_without_run_dir(tmp_path, monkeypatch, capsys, extra, looked_for):
    run = tmp_path / "run"
    code = main(["train", "teacher", "--data", str(DATA), "--config", str(resource_dir("train") / "teacher.toml"), "--out", str(run), *extra], monkeypatch)
    err = capsys.readouterr().err.strip()
    assert code == 2 and not run.exists()
    assert err.startswith("edgefusion: ") and "\n" not in err and looked_for in err


def test_bad_data_folder_is_reported_before_anything_is_written(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(["train", "teacher", "--data", str(tmp_path / "none"), "--config", str(SMOKE), "--out", str(run)], monkeypatch) == 2
    assert "dataset folder not found" in capsys.readouterr().err and not run.exists()


@pytest.mark.parametrize("argv, message", [
    (["teacher", "--config", "teacher-smoke", "--vgg-weights", "vgg19.pth"],
     '--vgg-weights: the recipe\'s regularizer is "clip", which uses no VGG19 weights (only regularizer = "vgg19" does)'),
    (["--teacher-config", "teacher-smoke", "--student-config", "student-smoke", "--vgg-weights", "vgg19.pth"],  # the whole pipeline
     '--vgg-weights: the recipe\'s regularizer is "clip", which uses no VGG19 weights (only regularizer = "vgg19" does)'),
    (["teacher", "--config", "teacher-pixel", "--clip-weights", "random", "--vgg-weights", "vgg19.pth"],
     '--clip-weights, --vgg-weights: the recipe\'s objective is "pixel", which uses no CLIP or VGG19 weights'),
])
def test_weight_flags_the_recipe_would_ignore_are_refused(tmp_path, monkeypatch, capsys, argv, message):
    from edgefusion.resources import SAMPLES

    run = tmp_path / "run"
    assert main(["train", *argv, "--data", str(SAMPLES), "--out", str(run), "--device", "cpu"], monkeypatch) == 2
    assert capsys.readouterr().err == f"edgefusion: {message}\n"
    assert not run.exists()


class _PairCheckReached(Exception):
    """Raised by the stand-in bar of the pair check: the test has seen what it needs, the run stops there."""


@pytest.mark.parametrize("command", [
    ["teacher", "--config", "teacher-smoke"],
    ["--teacher-config", "teacher-smoke", "--student-config", "student-smoke"],  # the whole pipeline
    ["student", "--teacher", "teacher.pt", "--config", "student-smoke"],
    ["student", "--teacher", "teacher.pt", "--config", "student-ld-smoke"],  # the v2 student's distillation
])
@pytest.mark.parametrize("rank", [0, 1])
def test_pair_check_bar_shows_on_the_main_rank_only(tmp_path, monkeypatch, command, rank):
    """Under torchrun every rank checks the pairs; only rank 0 may draw the bar, like every other bar of a run."""
    from types import SimpleNamespace

    from edgefusion.resources import SAMPLES
    from edgefusion.training import dataset, ddp, distill, distill_ctx
    from edgefusion.training.gain_offset import INVARIANT_ATTRIBUTE

    bars = []

    def bar(iterable, *, enabled=True, **kw):
        bars.append((kw.get("desc"), enabled))
        raise _PairCheckReached

    monkeypatch.setattr(dataset, "progress", bar)
    monkeypatch.setattr(ddp, "setup", lambda device: ddp.Dist(rank=rank, world=1))  # a rank without a process group
    for module in (distill, distill_ctx):  # a stand-in teacher: the bar comes before any use of it
        monkeypatch.setattr(module, "load_teacher", lambda path, device: (SimpleNamespace(**{INVARIANT_ATTRIBUTE: True}), {}))
    with pytest.raises(_PairCheckReached):
        main(["train", *command, "--data", str(SAMPLES), "--out", str(tmp_path / "run"), "--device", "cpu"], monkeypatch)
    assert bars == [("check pairs", rank == 0)]


def test_pair_of_different_sizes_is_named_before_anything_is_written(tmp_path, monkeypatch, capsys):
    from edgefusion.io.images import write_image

    data = tmp_path / "data"
    for name, vis_height in (("a", 48), ("b", 40)):
        write_image(data / "ir" / f"{name}.png", np.full((48, 64), 100, np.uint8))
        write_image(data / "vi" / f"{name}.png", np.full((vis_height, 64), 150, np.uint8))
    run = tmp_path / "run"
    assert main(["train", "teacher", "--data", str(data), "--config", str(SMOKE), "--out", str(run), "--device", "cpu"], monkeypatch) == 2
    named = f"{data / 'ir' / 'b.png'} + {data / 'vi' / 'b.png'}"
    assert capsys.readouterr().err == f"edgefusion: {named}: IR and visible sizes differ: IR 64x48, visible 64x40 (WxH)\n"
    assert not run.exists()


@needs_data
@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    recipe = smoke_recipe(tmp_path, steps="2", checkpoint_every="1")
    run = tmp_path / "run"
    script = "import edgefusion.cli as c; c.COMMAND_MODULES = ('train',); raise SystemExit(c.main())"
    entry = tmp_path / "entry.py"
    entry.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(entry),
           "train", "teacher", "--data", str(DATA), "--config", str(recipe), "--out", str(run), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["training"]["step"] == 2 and len(last["training"]["rng"]) == 2
    assert (run / "teacher.pt").is_file()
    assert [int(r["step"]) for r in _read_log(run / "log.csv")] == [1, 2]
