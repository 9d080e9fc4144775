"""Exact resume after a real SIGKILL, and checkpoints that survive a crash mid-write.

The end-to-end test runs ``python -m edgefusion train teacher`` as a child
process, SIGKILLs it once a rolling ``last.pt`` exists, resumes it with
``--resume`` and compares the result with an uninterrupted run of the same
recipe (same seed): model weights bit-identical, same loss log. The unit tests
make the atomic writer fail inside a checkpoint write and check that the
previous ``last.pt`` survives byte for byte and no temporary file is left.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from edgefusion.io.atomic import atomic_path
from edgefusion.io.images import write_image
from edgefusion.models.checkpoint import save_checkpoint
from edgefusion.resources import resource_dir

SMOKE = resource_dir("train") / "teacher-smoke.toml"
STEPS, EVERY = 40, 2  # ~40 ms per step on one core: the kill lands long before the end
RUN_TIMEOUT_S = 120


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Four structured 80×72 pairs (grayscale IR, RGB visible) in ``ir/`` + ``vi/``."""
    root = tmp_path_factory.mktemp("pairs")
    yy, xx = np.mgrid[0:72, 0:80].astype(np.float64)
    rng = np.random.default_rng(7)
    for i in range(4):
        ir = 127 + 90 * np.sin(xx / (4 + i)) * np.cos(yy / 6) + rng.normal(0, 12, xx.shape)
        vis = np.stack([(xx * 3 + yy * i) % 256, (yy * 3 + 40 * i) % 256, (xx + yy) * 1.5 % 256], axis=-1)
        write_image(root / "ir" / f"p{i}.png", ir.clip(0, 255).astype(np.uint8))
        write_image(root / "vi" / f"p{i}.png", vis.astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """The packaged smoke recipe with ``STEPS`` steps and a checkpoint every ``EVERY`` steps."""
    text = SMOKE.read_text()
    for key, value in (("steps", STEPS), ("checkpoint_every", EVERY)):
        lines = [line for line in text.splitlines() if line.split("=")[0].strip() == key]
        assert len(lines) == 1, key
        text = text.replace(lines[0], f"{key} = {value}")
    path = tmp_path_factory.mktemp("recipe") / "recipe.toml"
    path.write_text(text)
    return path


def _train_cmd(data: Path, recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgefusion", "train", "teacher", "--data", str(data), "--config", str(recipe),
            "--out", str(out), "--device", "cpu", *extra]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the child
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the trainer and any data-loader workers
    proc.wait(timeout=30)


def _run(cmd: list[str], log: Path) -> None:
    _wait(_start(cmd, log), log)


def _wait(proc: subprocess.Popen, log: Path) -> None:
    """Wait for a run started by :func:`_start`; it must succeed within ``RUN_TIMEOUT_S``."""
    try:
        code = proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise
    assert code == 0, log.read_text()[-3000:]


def _step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["training"]["step"])


def _kill_at_first_checkpoint(cmd: list[str], run: Path, log: Path) -> None:
    """Start ``cmd`` and SIGKILL it the moment ``run/last.pt`` appears (first written at step EVERY).

    Only ``exists()`` is polled, so the kill follows the first checkpoint
    within milliseconds, STEPS - EVERY steps before the run would end.
    """
    proc = _start(cmd, log)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while time.monotonic() < deadline and proc.poll() is None and not (run / "last.pt").exists():
            time.sleep(0.005)
    finally:
        finished = proc.poll() is not None
        _kill(proc)
    assert not finished, f"the run ended before it could be killed (rc={proc.returncode}):\n{log.read_text()[-3000:]}"
    assert (run / "last.pt").exists(), "no checkpoint appeared before the timeout"


def _losses(path: Path) -> list[dict[str, str]]:
    """log.csv rows without the wall-clock column."""
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def _temporaries(folder: Path) -> list[str]:
    """Leftovers of :func:`atomic_path` (``.<stem>.XXXX.tmp<suffix>``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name)


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path, data, recipe):
    run_a, run_b = tmp_path / "killed", tmp_path / "straight"
    straight = _start(_train_cmd(data, recipe, run_b), tmp_path / "b.log")  # independent: runs beside the killed one
    try:
        _kill_at_first_checkpoint(_train_cmd(data, recipe, run_a), run_a, tmp_path / "a1.log")

        # What a SIGKILL leaves: a loadable last.pt at a checkpoint step before the end, no final model.
        # A kill during a write may leave a hidden temporary beside it, never a file under a final name.
        assert not (run_a / "teacher.pt").exists()
        killed_at = _step(run_a / "last.pt")
        assert killed_at >= EVERY and killed_at % EVERY == 0 and killed_at < STEPS
        for path in run_a.iterdir():
            if path.suffix == ".pt" and not path.name.startswith("."):
                torch.load(path, weights_only=True)  # raises on a truncated file
        assert {p.name for p in run_a.iterdir()} - set(_temporaries(run_a)) <= {"last.pt", "log.csv", "tensorboard"}
        logged = [int(r["step"]) for r in _losses(run_a / "log.csv")]
        assert logged[: killed_at] == list(range(1, killed_at + 1))
        # what a kill in the middle of the next checkpoint write leaves: a truncated hidden temporary
        stale = run_a / ".last.killed.tmp.pt"
        stale.write_bytes((run_a / "last.pt").read_bytes()[:1000])

        _run(_train_cmd(data, recipe, run_a, "--resume"), tmp_path / "a2.log")
    except BaseException:
        _kill(straight)
        raise
    _wait(straight, tmp_path / "b.log")

    a = torch.load(run_a / "teacher.pt", weights_only=True)["state_dict"]
    b = torch.load(run_b / "teacher.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and a
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, f"killed at step {killed_at}: resumed weights differ from the uninterrupted run in {differing[:5]}"
    la, lb = (torch.load(r / "last.pt", weights_only=True)["training"] for r in (run_a, run_b))
    assert la["step"] == lb["step"] == STEPS
    for key, state in lb["optimizer"]["state"].items():
        assert torch.equal(la["optimizer"]["state"][key]["exp_avg"], state["exp_avg"])
        assert torch.equal(la["optimizer"]["state"][key]["exp_avg_sq"], state["exp_avg_sq"])
    assert torch.equal(la["rng"][0]["torch"], lb["rng"][0]["torch"])

    rows_a, rows_b = _losses(run_a / "log.csv"), _losses(run_b / "log.csv")
    assert [int(r["step"]) for r in rows_a] == list(range(1, STEPS + 1))  # killed-run rows past the checkpoint were dropped
    assert rows_a == rows_b
    assert float(rows_a[-1]["total"]) > 0  # the compared columns hold real losses


# --- a crash inside a checkpoint write ----------------------------------------------------------------


class _Crash(BaseException):
    """Stands in for a kill: a BaseException, like KeyboardInterrupt or SystemExit."""


def test_atomic_path_error_keeps_the_previous_file(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"previous checkpoint")
    with pytest.raises(_Crash), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"half of the new one")
        raise _Crash
    assert target.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_crash_inside_the_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    save_checkpoint(target, {"training": {"step": 2}, "w": torch.arange(6.0)})
    before = target.read_bytes()
    real_write = Path.write_bytes

    def write_half_then_die(path, data):  # save_checkpoint serializes in memory, then writes the bytes
        real_write(path, data[: len(data) // 2])  # leave a truncated file behind, as a kill mid-write would
        raise _Crash

    monkeypatch.setattr(Path, "write_bytes", write_half_then_die)
    with pytest.raises(_Crash):
        save_checkpoint(target, {"training": {"step": 4}, "w": torch.zeros(6)})
    assert target.read_bytes() == before
    assert torch.load(target, weights_only=True)["training"]["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_training_crash_during_checkpoint_write_resumes(tmp_path, data, recipe, monkeypatch):
    """The loop dies while writing the step-4 checkpoint: last.pt keeps step 2 and --resume finishes."""
    from edgefusion.training import teacher
    from edgefusion.training.loop import run_stage
    from edgefusion.training.recipe import load_recipe

    def stage_and_recipe():
        loaded = load_recipe(recipe, teacher.SECTIONS)
        loaded["train"].steps = 6
        return teacher.build_teacher_stage(loaded, data, teacher.check_weights(loaded)), loaded

    run = tmp_path / "run"
    real_write, calls = Path.write_bytes, []

    def die_on_second_checkpoint(path, data):
        calls.append(path)
        if len(calls) == 2:
            real_write(path, b"PK\x03\x04 truncated")
            raise _Crash
        real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", die_on_second_checkpoint)
    stage, loaded = stage_and_recipe()
    with pytest.raises(_Crash):
        run_stage(stage, loaded, run, progress=False)
    assert _step(run / "last.pt") == 2
    assert _temporaries(run) == [] and not (run / "teacher.pt").exists()

    monkeypatch.setattr(Path, "write_bytes", real_write)
    stage, loaded = stage_and_recipe()
    run_stage(stage, loaded, run, resume=True, progress=False)
    assert _step(run / "last.pt") == 6 and (run / "teacher.pt").is_file()
    assert [int(r["step"]) for r in _losses(run / "log.csv")] == [1, 2, 3, 4, 5, 6]
