"""Issue 9.3: every failure is one line on stderr and exit 2, also when writing fails.

Disk full is simulated two ways: a write that raises ENOSPC (in process), and
a real kernel refusal through ``RLIMIT_FSIZE`` in a child process (EFBIG, the
same code path: an ``OSError`` from the writer). Output paths that cannot work
are refused before the long work starts (the work functions are replaced by
ones that fail the test if reached). Stale temporaries of SIGKILLed writers
are removed by the next writer.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgefusion.cli import main
from edgefusion.errors import UserError, describe_os_error
from edgefusion.io.atomic import atomic_path, pid_alive, remove_stale, work_folder, write_text
from edgefusion.io.images import read_image, write_image
from edgefusion.io.outputs import check_output_path
from edgefusion.resources import SAMPLES

CROP = (slice(100, 148), slice(60, 124))  # 48 x 64: fast
ROOT = Path(__file__).resolve().parents[1]


def _child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def pair(tmp_path):
    """One small real pair: (ir file, vis file) and the dataset folder holding it."""
    root = tmp_path / "data"
    for sub in ("ir", "vi"):
        write_image(root / sub / "tno_07.png", read_image(SAMPLES / sub / "tno_07.png")[CROP])
    return root / "ir" / "tno_07.png", root / "vi" / "tno_07.png", root


@pytest.fixture
def afile(tmp_path):
    path = tmp_path / "afile"
    path.write_text("not a folder")
    return path


def one_line_error(capsys, argv, code=2) -> str:
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert err.startswith("edgefusion: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name)


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# --- the message --------------------------------------------------------------------------------

def test_describe_os_error_names_path_and_reason():
    exc = OSError(errno.ENOSPC, "No space left on device")
    assert describe_os_error(exc, "out/a.png", "cannot write") == "cannot write out/a.png: No space left on device"
    named = PermissionError(errno.EACCES, "Permission denied", "/x/y")
    assert describe_os_error(named) == "cannot access /x/y: Permission denied"
    assert describe_os_error(OSError("odd")) == "cannot access: odd"


def test_cli_turns_any_os_error_into_one_line(monkeypatch, capsys, pair):
    import edgefusion.commands.fuse as fuse_command

    def boom(args):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", "some/where")

    monkeypatch.setattr(fuse_command, "run", boom)
    ir, vis, _ = pair
    err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", "x.png", "--method", "max"])
    assert err == "edgefusion: cannot access some/where: Is a directory\n"


# --- disk full ----------------------------------------------------------------------------------

def test_fuse_into_a_full_disk(monkeypatch, capsys, pair, tmp_path):
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", enospc)
    ir, vis, _ = pair
    out = tmp_path / "out" / "fused.png"
    err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", out, "--method", "max"])
    assert f"cannot write {out}: No space left on device" in err
    assert not out.exists() and leftovers(tmp_path / "out") == []


def test_eval_grid_into_a_full_disk_names_the_grid_folder(monkeypatch, capsys, pair, tmp_path):
    from PIL import Image

    monkeypatch.setattr(Image.Image, "save", enospc)
    grid = tmp_path / "grid"
    err = one_line_error(capsys, ["eval", "--data", pair[2], "--method", "max", "--grid", grid])
    assert f"cannot write {grid}{os.sep}tno_07.png: No space left on device" in err
    assert not grid.exists() and leftovers(tmp_path) == []


def test_zip_bundle_into_a_full_disk(monkeypatch, tmp_path):
    import zipfile

    from runtime_models import make_bundle

    model = tmp_path / "model.onnx"
    model.write_bytes(b"0" * 64)
    monkeypatch.setattr(zipfile.ZipFile, "write", enospc)
    with pytest.raises(UserError, match=r"cannot write .*b\.zip: No space left on device"):
        make_bundle(tmp_path / "out" / "b", model, as_zip=True)
    assert not (tmp_path / "out" / "b.zip").exists() and leftovers(tmp_path / "out") == []


def test_full_work_folder_points_at_tmpdir(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(UserError, match=r"cannot write work folder .*edgefusion-test-.*No space left on device \(set TMPDIR"):
        with work_folder("edgefusion-test-") as work:
            (work / "model_data.c").write_text("x")
            enospc()
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_write_failure_is_an_os_error_not_torch_noise(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from edgefusion.models.checkpoint import save_checkpoint

    monkeypatch.setattr(Path, "write_bytes", enospc)
    with pytest.raises(UserError, match=r"cannot write .*c\.pt: No space left on device"):
        save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def test_a_copy_into_a_full_output_names_the_output(tmp_path):
    """shutil's copies name the source first and the full destination second: the error is about the output."""
    src, out = tmp_path / "model.onnx", tmp_path / "out" / "model.onnx"
    src.write_bytes(b"onnx")
    with pytest.raises(UserError) as info:
        with atomic_path(out) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(tmp))
    assert str(info.value) == f"cannot write {out}: No space left on device"
    with pytest.raises(OSError):  # reading the source failed: not about the output
        with atomic_path(out) as tmp:
            raise OSError(errno.EIO, "Input/output error", str(src), None, str(tmp))
    assert list((tmp_path / "out").iterdir()) == []


def test_real_write_refusal_in_a_child_process(pair, tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the PNG write (EFBIG): one line, exit 2, no output, no temporary."""
    resource = pytest.importorskip("resource")
    ir, vis, _ = pair
    out = tmp_path / "fused.png"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512))

    proc = subprocess.run([sys.executable, "-m", "edgefusion", "fuse", "--ir", str(ir), "--vis", str(vis), "-o", str(out), "--method", "max"],
                          capture_output=True, text=True, env=_child_env(), preexec_fn=limit, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"cannot write {out}: File too large" in proc.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_demo_refuses_zero_runs_before_any_work(capsys, tmp_path, monkeypatch):
    import edgefusion.demo as demo

    monkeypatch.setattr(demo, "find_pairs", lambda *a, **k: pytest.fail("the demo started its work"))
    err = one_line_error(capsys, ["demo", "--out", tmp_path / "d", "--runs", "0"])
    assert err == "edgefusion: --runs must be >= 1 and --warmup >= 0, got 0 and 5\n"
    assert not (tmp_path / "d").exists()


def test_train_refuses_a_truncated_pair_before_training(capsys, tmp_path):
    """Every training pair is read before the first step: one line, no run folder (was: a stop
    at the step that first drew the pair, after the CLIP warnings, leaving the run's log)."""
    for sub in ("ir", "vi"):
        for name in ("tno_07.png", "tno_19.png"):
            write_image(tmp_path / "data" / sub / name, read_image(SAMPLES / sub / name)[CROP])
    bad = tmp_path / "data" / "vi" / "tno_19.png"
    bad.write_bytes(bad.read_bytes()[:300])
    err = one_line_error(capsys, ["train", "--data", tmp_path / "data", "--out", tmp_path / "run", "--teacher-config", "teacher-smoke",
                                  "--student-config", "student-smoke", "--device", "cpu"])
    assert err == f"edgefusion: cannot read image {bad}: image file is truncated\n"
    assert not (tmp_path / "run").exists()


# --- output paths checked before the work ---------------------------------------------------------

def test_check_output_path_kinds(tmp_path, afile):
    check_output_path(tmp_path / "new" / "deeper" / "x.json", "JSON")
    check_output_path(tmp_path / "new", "run", "folder")
    with pytest.raises(UserError, match="is a folder, expected a file"):
        check_output_path(tmp_path, "JSON")
    with pytest.raises(UserError, match="is a file, expected a folder"):
        check_output_path(afile, "run", "folder")
    with pytest.raises(UserError, match=f"{afile} is a file, not a folder"):
        check_output_path(afile / "run" / "x", "run", "folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user (root may write anywhere)")
def test_check_output_path_unwritable_parent(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(UserError, match="permission denied"):
        check_output_path(locked / "x.png", "fused image")


def _must_not_run(*args, **kwargs):
    raise AssertionError("the long work started before the output path was checked")


def test_quantize_checks_out_before_any_work(monkeypatch, capsys, tmp_path, afile):
    import edgefusion.quantize.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_student", _must_not_run)
    err = one_line_error(capsys, ["quantize", "--target", "x86", "--out", afile / "bundle"])
    assert f"{afile} is a file, not a folder" in err
    (tmp_path / "X.zip").mkdir()
    err = one_line_error(capsys, ["quantize", "--target", "x86", "--zip", "--out", tmp_path / "X"])
    assert f"{tmp_path / 'X.zip'} is a folder, expected a file" in err


@pytest.mark.parametrize("argv", [
    ["train", "teacher", "--config", "teacher-smoke"],
    ["train", "student", "--teacher", "absent.pt"],
    ["train", "--teacher-config", "teacher-smoke"],
])
def test_train_checks_run_folder_before_any_work(monkeypatch, capsys, pair, afile, argv):
    pytest.importorskip("torch")
    if argv[1] == "teacher":
        pytest.importorskip("open_clip")
    import edgefusion.training.loop as loop

    monkeypatch.setattr(loop, "run_stage", _must_not_run)
    err = one_line_error(capsys, [*argv, "--data", pair[2], "--out", afile / "run", "--device", "cpu"])
    assert f"run output {afile / 'run'}: {afile} is a file, not a folder" in err


def test_export_demo_and_bench_check_outputs_first(monkeypatch, capsys, afile):
    pytest.importorskip("torch")
    import edgefusion.models.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "load_model", _must_not_run)
    assert "is a file, not a folder" in one_line_error(capsys, ["export", "--model", "m.pt", "--format", "onnx", "--out", afile / "m.onnx"])
    assert "demo output" in one_line_error(capsys, ["demo", "--out", afile])
    err = one_line_error(capsys, ["bench", "--model", "absent", "--json", afile / "r.json"])
    assert "JSON output" in err  # refused before the (absent) bundle is even opened



@pytest.fixture
def fifo(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs os.mkfifo")
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def assert_still_fifo(path: Path) -> None:
    import stat

    assert stat.S_ISFIFO(os.stat(path).st_mode), f"{path} was replaced"
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("argv, what", [
    (["eval", "--method", "max", "--json"], "JSON"),
    (["eval", "--method", "max", "--csv"], "CSV"),
    (["bench", "--model", "absent", "--size", "64x64", "--runs", "3", "--json"], "JSON"),
    (["bench", "--model", "absent", "--size", "64x64", "--runs", "3", "--plot"], "plot"),
])
def test_special_file_output_is_refused_first(capsys, pair, fifo, argv, what):
    data = ["--data", pair[2]] if argv[0] == "eval" else []
    err = one_line_error(capsys, [*argv[:1], *data, *argv[1:], fifo])
    assert err == f"edgefusion: {what} output {fifo} is not a regular file (a FIFO)\n"
    assert_still_fifo(fifo)


def test_special_files_refused_by_the_shared_checks(fifo):
    with pytest.raises(UserError, match=r"^run output .* is not a regular file \(a FIFO\)$"):
        check_output_path(fifo, "run", "folder")
    if os.path.exists("/dev/null"):  # only stat()ed: refused before anything is opened
        with pytest.raises(UserError, match=r"^JSON output /dev/null is not a regular file \(a device\)$"):
            check_output_path("/dev/null", "JSON")
    with pytest.raises(UserError, match=r"^output .* is not a regular file \(a FIFO\)$"):
        write_text(fifo, "x")
    assert_still_fifo(fifo)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("which", ["ir folder", "vi folder", "ir file", "vi file", "vi file by symlink"])
def test_fuse_refuses_to_overwrite_an_input(capsys, pair, which):
    ir_file, vis_file, root = pair
    single = "file" in which
    ir, vis = (ir_file, vis_file) if single else (root / "ir", root / "vi")
    target = ir if which.startswith("ir") else vis
    name = "IR" if target == ir else "visible"
    out = target
    if "symlink" in which:
        out = root / "link.png"
        out.symlink_to(target)
    before = _snapshot(root)
    err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", out, "--method", "max"])
    assert err == f"edgefusion: fused output {out} is the {name} input {target}; it would be overwritten\n"
    assert _snapshot(root) == before and leftovers(root) == []


@pytest.mark.parametrize("which", ["ir", "vi", "fused"])
def test_eval_grid_refuses_to_overwrite_an_input_folder(capsys, pair, which):
    """The grid's strips are named after the pairs: into an input folder they would replace its images."""
    ir_file, vis_file, root = pair
    fused = root / "fused"
    write_image(fused / ir_file.name, read_image(ir_file))
    before = _snapshot(root)
    err = one_line_error(capsys, ["eval", "--data", root, "--fused", fused, "--grid", root / which])
    name = {"ir": "IR", "vi": "visible", "fused": "fused"}[which]
    assert err == f"edgefusion: grid output {root / which} is the {name} input {root / which}; it would be overwritten\n"
    assert _snapshot(root) == before


def test_import_refuses_to_overwrite_its_weights(capsys, tmp_path):
    weights = tmp_path / "final.pt"
    weights.write_bytes(b"the authors' file")
    err = one_line_error(capsys, ["import", "ld-lite", weights, "--out", weights])
    assert err == f"edgefusion: checkpoint output {weights} is the weights input {weights}; it would be overwritten\n"
    assert weights.read_bytes() == b"the authors' file"


@pytest.mark.parametrize("argv, what", [
    (["export", "--model", "default", "--format", "onnx", "--shape", "100000x100000", "--out", "{tmp}/x.onnx"], "--shape 100000x100000"),
    (["quantize", "--target", "onnx", "--shape", "100000x100000", "--out", "{tmp}/Q"], "--shape 100000x100000"),
    (["bench", "--model", "absent", "--size", "100000x100000"], "--size 100000x100000"),
])
def test_huge_frame_shapes_are_refused_like_huge_images(monkeypatch, capsys, tmp_path, argv, what):
    from PIL import Image  # read_image refuses images over Pillow's limit: the same limit

    if argv[0] == "export":
        import edgefusion.models.checkpoint as checkpoint

        monkeypatch.setattr(checkpoint, "load_model", _must_not_run)
    if argv[0] == "quantize":
        import edgefusion.quantize.pipeline as pipeline

        monkeypatch.setattr(pipeline, "load_student", _must_not_run)
    err = one_line_error(capsys, [a.format(tmp=tmp_path) for a in argv])
    assert err == f"edgefusion: {what} is too large: 10000000000 pixels, at most {Image.MAX_IMAGE_PIXELS} (the input image limit)\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["--calib", "--val"])
def test_quantize_with_mismatched_pairs_prints_only_the_error(pair, tmp_path, bad):
    """No calibration note and no progress bar before the error: stderr (a pipe) holds exactly one line."""
    ir, vis, good = pair
    mismatched = tmp_path / "mismatched"
    write_image(mismatched / "ir" / "tno_07.png", read_image(ir))
    write_image(mismatched / "vi" / "tno_07.png", read_image(vis)[:40])
    folders = {"--calib": good, "--val": good, bad: mismatched}
    out = tmp_path / "bundle"
    argv = ["quantize", "--target", "x86", "--shape", "48x64", "--calib", folders["--calib"], "--val", folders["--val"], "--out", out]
    proc = subprocess.run([sys.executable, "-m", "edgefusion", *map(str, argv)], capture_output=True, text=True, env=_child_env(), timeout=300)
    assert proc.returncode == 2, proc.stderr
    named = f"{mismatched / 'ir' / 'tno_07.png'} + {mismatched / 'vi' / 'tno_07.png'}"
    assert proc.stderr == f"edgefusion: {named}: IR and visible sizes differ: IR 64x48, visible 64x40 (WxH)\n"
    assert not out.exists() and leftovers(tmp_path) == []

# --- checkpoints with the right tag and bad fields --------------------------------------------------

@pytest.fixture(scope="module")
def tiny_teacher_payload():
    pytest.importorskip("torch")
    from edgefusion.models import build_model
    from edgefusion.models.checkpoint import model_payload

    config = {"width": 4, "downsamples": 1, "res_blocks": 1, "style_dim": 2, "mlp_width": 8}
    return model_payload(build_model("teacher", config), "teacher", config)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("state_dict"), "lacks 'state_dict'"),
    (lambda p: p.pop("architecture"), "lacks 'architecture'"),
    (lambda p: p.update(state_dict=[1, 2]), "'state_dict' must be a dict, got list"),
    (lambda p: p.update(config="wide"), "'config' must be a dict, got str"),
    (lambda p: p["state_dict"].update({"extra": 3}), "state_dict entry 'extra' is not a named tensor"),
    # 200000 channels would be terabytes: refused by comparing shapes on the meta device, nothing allocated
    (lambda p: p["config"].update(width=200000), "the config makes it [200000, 1, 3, 3]"),
])
def test_bad_checkpoint_fields_are_one_line(capsys, tmp_path, pair, tiny_teacher_payload, change, message):
    import copy

    from edgefusion.models.checkpoint import save_checkpoint

    payload = copy.deepcopy(tiny_teacher_payload)
    change(payload)
    save_checkpoint(tmp_path / "bad.pt", payload)
    ir, vis, _ = pair
    err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "o.png", "--model", tmp_path / "bad.pt"])
    assert message in err


def test_weights_only_refusal_gives_no_unsafe_advice(capsys, tmp_path, pair):
    torch = pytest.importorskip("torch")
    torch.save({"format": "edgefusion-checkpoint/1", "thing": __import__("fractions").Fraction(1, 3)}, tmp_path / "evil.pt")
    ir, vis, _ = pair
    err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "o.png", "--model", tmp_path / "evil.pt"])
    assert "safe (weights-only) load refuses" in err
    advice = err.replace(str(tmp_path / "evil.pt"), "")
    assert "weights_only" not in advice and "False" not in advice and "trust" not in advice



def _shipped_head(size: int) -> bytes:
    from edgefusion.resources import DEFAULT_MODEL

    return DEFAULT_MODEL.read_bytes()[:size]


@pytest.mark.parametrize("content, reason", [
    (lambda: _shipped_head(1000), "the file is truncated (a zip archive cut short)"),
    (lambda: _shipped_head(30000), "the file is truncated (a zip archive cut short)"),  # torch: OSError EINVAL, no name
    (lambda: bytes(range(7, 256)) * 40, "not a checkpoint (not the zip archive that torch.save writes)"),
    (lambda: b"", "the file is empty"),
    (lambda: b"\x80\x02garbage", "not a checkpoint (its data is no valid pickle: Unsupported operand 103)"),
])
def test_damaged_checkpoint_names_file_and_reason(capsys, tmp_path, pair, content, reason):
    pytest.importorskip("torch")
    model = tmp_path / "t.pt"
    model.write_bytes(content())
    ir, vis, _ = pair
    out = tmp_path / "o.png"
    err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", out, "--model", model])
    assert err == f"edgefusion: cannot read checkpoint {model}: {reason}\n"
    assert not out.exists()

# --- corrupt video: FFmpeg's own lines are silenced ---------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="opencv not installed")
def test_corrupt_video_is_exactly_one_line(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 16)
    env = {k: v for k, v in _child_env().items() if not k.startswith("OPENCV_")}
    proc = subprocess.run([sys.executable, "-m", "edgefusion", "fuse", "--ir", str(bad), "--vis", str(bad), "-o", str(tmp_path / "o.mp4"),
                           "--method", "max"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"edgefusion: cannot open IR video {bad} (corrupt, truncated or an unsupported codec)"]


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="opencv not installed")
@pytest.mark.parametrize("suffix", [".mp4", ".avi", ".mkv"])  # truncated: unreadable, no frame index, an estimated count
def test_video_into_a_full_disk_is_refused(tmp_path, suffix):
    """OpenCV's writer ignores failed writes; RLIMIT_FSIZE truncates the video in a child: one line, exit 2, nothing left."""
    resource = pytest.importorskip("resource")
    rng = np.random.default_rng(0)
    for role in ("ir", "vi"):  # noise frames: ~10 KB each even compressed, 12 of them
        for i in range(12):
            write_image(tmp_path / role / f"{i:02d}.png", rng.integers(0, 256, (96, 128), dtype=np.uint8))
    out = tmp_path / f"fused{suffix}"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    proc = subprocess.run([sys.executable, "-m", "edgefusion", "fuse", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vi"), "-o", str(out),
                           "--method", "max"], capture_output=True, text=True, env=_child_env(), preexec_fn=limit, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"edgefusion: cannot write {out}: the written video holds "), proc.stderr
    assert proc.stderr.endswith(" of its 12 frames (disk full, or a codec that could not encode them?)\n")
    assert "Traceback" not in proc.stderr and not out.exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="opencv not installed")
def test_frames_of_another_size_into_a_video_are_refused(capsys, tmp_path):
    """OpenCV's writer drops frames whose size differs from the first one without a word."""
    for i, shape in enumerate([(24, 32), (24, 32), (16, 32)]):
        for role in ("ir", "vi"):
            write_image(tmp_path / role / f"{i}.png", np.full(shape, 40 * i, np.uint8))
    out = tmp_path / "fused.avi"
    err = one_line_error(capsys, ["fuse", "--ir", tmp_path / "ir", "--vis", tmp_path / "vi", "-o", out, "--method", "max"])
    assert "frame 3 is 32x16, the video's first is 32x24: a video needs frames of one size" in err
    assert not out.exists() and leftovers(tmp_path) == []


# --- stale temporaries of killed writers ----------------------------------------------------------------

def _killed_child(code: str, cwd: Path) -> None:
    """Run ``code`` in a child that SIGKILLs itself at the end (no cleanup can run)."""
    script = textwrap.dedent(code) + "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=_child_env(), timeout=120)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid probing are POSIX")
def test_killed_atomic_writer_leftover_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "fused.png"
    _killed_child(f"""
        from edgefusion.io.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"half a png")
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)
    """, tmp_path)
    stale = leftovers(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(".fused.") and stale[0].endswith(".tmp.png")
    write_image(target, np.zeros((4, 5), np.uint8))
    assert leftovers(tmp_path) == [] and read_image(target).shape == (4, 5)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and pid probing are POSIX")
def test_killed_work_folder_is_removed_by_the_next_one(tmp_path):
    base = tmp_path / "tmp"
    base.mkdir()
    env_code = f"import tempfile\ntempfile.tempdir = {str(base)!r}\n"
    _killed_child(env_code + """
        from edgefusion.io.atomic import work_folder
        with work_folder("edgefusion-quantize-") as work:
            (work / "model.onnx").write_bytes(b"x" * 100)
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)
    """.replace("\n        ", "\n"), tmp_path)
    (stale,) = list(base.iterdir())
    assert stale.name.startswith("edgefusion-quantize-")
    import tempfile

    old, tempfile.tempdir = tempfile.tempdir, str(base)
    try:
        with work_folder("edgefusion-quantize-") as work:
            assert not stale.exists() and work.is_dir()
    finally:
        tempfile.tempdir = old
    assert list(base.iterdir()) == []


def test_live_writers_temporaries_are_kept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / f".fused.{os.getpid()}-abcdefgh.tmp.png"
        theirs = tmp_path / f".fused.{child.pid}-abcdefgh.tmp.png"
        for path in (mine, theirs):
            path.write_bytes(b"in progress")
        assert pid_alive(child.pid)
        assert remove_stale(tmp_path, ".fused.", ".tmp.png") == []
        write_text(tmp_path / "fused.png", "x")
        assert mine.exists() and theirs.exists()
    finally:
        child.kill()
        child.wait()
    assert remove_stale(tmp_path, ".fused.", ".tmp.png") == [theirs]  # now its writer is gone


def test_atomic_path_reports_other_files_unchanged(tmp_path):
    """An OSError about another file inside the block (an input) is not blamed on the output."""
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "out.txt"):
            open(tmp_path / "missing-input.txt").close()
    assert list(tmp_path.iterdir()) == []
