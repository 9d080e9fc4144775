"""Damaged or wrong models are refused at load time: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_ld_lite import WEIGHTS_SHA256  # noqa: E402
from test_output_errors import one_line_error  # noqa: E402

from edgefusion.cli import main  # noqa: E402
from edgefusion.io.digest import sha256_file  # noqa: E402
from edgefusion.io.images import read_image, write_image  # noqa: E402
from edgefusion.models import shipped  # noqa: E402
from edgefusion.resources import DEFAULT_MODEL, SAMPLES  # noqa: E402


def write_pair(root: Path, height: int, width: int, name: str = "tno_07") -> Path:
    """A dataset folder (``ir/``, ``vi/``) holding one sample pair cropped to ``height`` x ``width``."""
    for sub in ("ir", "vi"):
        write_image(root / sub / f"{name}.png", read_image(SAMPLES / sub / f"{name}.png")[100:100 + height, 60:60 + width])
    return root


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory) -> Path:
    return write_pair(tmp_path_factory.mktemp("pair"), 24, 32)


def poisoned(path: Path, key: str, value: float) -> Path:
    """A copy of the shipped student at ``path`` with tensor ``key`` filled with ``value``."""
    payload = torch.load(DEFAULT_MODEL, map_location="cpu", weights_only=True)
    payload["state_dict"][key].fill_(value)
    torch.save(payload, path)
    return path


# --- 1. non-finite weights ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_fuse_refuses_non_finite_weights(tmp_path, small_pair, capsys, value):
    ckpt = poisoned(tmp_path / "bad.pt", "quarter.weight", value)
    out = tmp_path / "fused.png"
    err = one_line_error(capsys, ["fuse", "--ir", small_pair / "ir" / "tno_07.png", "--vis", small_pair / "vi" / "tno_07.png", "-o", out, "--model", ckpt])
    assert f"{ckpt}: weight quarter.weight holds NaN or Inf" in err
    assert not out.exists()


def test_every_command_refuses_non_finite_weights(tmp_path, small_pair, capsys):
    ckpt = poisoned(tmp_path / "nan.pt", "quarter.weight", float("nan"))
    commands = {
        "eval": ["eval", "--data", small_pair, "--model", ckpt],
        "export": ["export", "--model", ckpt, "--format", "onnx", "--out", tmp_path / "x.onnx"],
        "quantize": ["quantize", "--model", ckpt, "--target", "onnx", "--out", tmp_path / "bundle"],
    }
    for argv in commands.values():
        assert "weight quarter.weight holds NaN or Inf" in one_line_error(capsys, argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt"]


def authors_state_dict() -> dict:
    """A state dict with the authors' LD-Lite keys (random weights)."""
    from edgefusion.models.ld_lite import LDLite, _authors_key_map

    ours = LDLite().state_dict()
    return {theirs: ours[key].clone() for theirs, key in _authors_key_map().items()}


def test_import_refuses_non_finite_weights(tmp_path, capsys):
    state = authors_state_dict()
    state["decoder.model_up.10.weight"][0, 0, 0, 0] = float("nan")
    weights = tmp_path / "final.pt"
    torch.save(state, weights)
    out = tmp_path / "teacher.pt"
    err = one_line_error(capsys, ["import", "ld-lite", weights, "--out", out, "--allow-modified"])
    assert f"{weights}: weight " in err and "holds NaN or Inf" in err
    assert not out.exists()


# --- 2. files that differ from the published or shipped ones ---------------------------------------

LD_LITE = Path(__file__).resolve().parents[2] / "shared" / "models" / "ld-lite" / "final.pt"


def flip_byte(source: Path, target: Path, offset: int | None = None) -> Path:
    """A copy of ``source`` with one byte inverted (in the middle by default: inside tensor data)."""
    data = bytearray(source.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


def tensor_data_offset(path: Path) -> int:
    """Offset in a torch zip file of the first byte of its largest tensor (a float32's lowest mantissa byte)."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def test_import_refuses_a_modified_authors_file_unless_allowed(tmp_path, capsys):
    if not LD_LITE.is_file():
        pytest.skip(f"LD-Lite weights not found at {LD_LITE} (../shared/models/ld-lite)")
    weights = flip_byte(LD_LITE, tmp_path / "final.pt", tensor_data_offset(LD_LITE))
    digest = sha256_file(weights)
    out = tmp_path / "teacher.pt"
    err = one_line_error(capsys, ["import", "ld-lite", weights, "--out", out])
    assert f"SHA-256 {digest[:12]}..., expected {WEIGHTS_SHA256[:12]}..." in err and "--allow-modified" in err
    assert not out.exists()
    assert main(["import", "ld-lite", str(weights), "--out", str(out), "--allow-modified"]) == 0
    source = torch.load(out, weights_only=True)["metadata"]["source"]
    assert source["sha256"] == digest and source["modified"] == "yes"


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch) -> Path:
    """The shipped models folder copied to ``tmp_path`` and used in place of the package's."""
    folder = Path(shutil.copytree(shipped.MODELS_DIR, tmp_path / "models"))
    monkeypatch.setattr(shipped, "MODELS_DIR", folder)
    return folder


@pytest.mark.parametrize("spec", ["default", "pixel"])
def test_a_changed_byte_in_a_shipped_model_is_refused(shipped_copy, small_pair, tmp_path, capsys, spec):
    name = shipped.canonical_name(spec)
    model = shipped_copy / f"{name}.pt"
    assert Path(shipped.resolve_model_spec(spec)) == model  # the intact copy verifies
    flip_byte(model, model)
    out = tmp_path / "fused.png"
    err = one_line_error(capsys, ["fuse", "--ir", small_pair / "ir" / "tno_07.png", "--vis", small_pair / "vi" / "tno_07.png", "-o", out, "--model", spec])
    expected = shipped.describe(name)["sha256"]
    assert f"shipped model {model} is damaged or modified: SHA-256 {sha256_file(model)[:12]}..., {name}.json records {expected[:12]}..." in err
    assert not out.exists()


# --- 3. a demo teacher that is not LD-Lite --------------------------------------------------------


def test_demo_refuses_a_teacher_that_is_not_ld_lite(tmp_path, monkeypatch, capsys):
    import edgefusion.demo

    def work_started(*args, **kwargs):
        raise AssertionError("the demo started working before refusing the teacher")

    monkeypatch.setattr(edgefusion.demo, "open_fuser", work_started)
    out = tmp_path / "demo"
    err = one_line_error(capsys, ["demo", "--teacher", DEFAULT_MODEL, "--out", out])
    assert err == f"edgefusion: --teacher {DEFAULT_MODEL} holds a 'student-ctx' model; the demo's teacher is LD-Lite (the authors' final.pt or its 'edgefusion import ld-lite' checkpoint)\n"
    assert not out.exists()


# --- 4. frames smaller than a model or the SSIM window take -----------------------------------------


@pytest.fixture(scope="module")
def small_models(tmp_path_factory) -> dict[str, Path]:
    """Random-init checkpoints of LD-Lite (min 16), of the smoke recipe's teacher (stride 4, min 5) and of the paper
    layout with 0..3 downsamplings."""
    import tomllib

    from edgefusion.models import build_model
    from edgefusion.models.checkpoint import model_payload, save_checkpoint
    from edgefusion.resources import resource_dir

    smoke = tomllib.loads((resource_dir("train") / "teacher-smoke.toml").read_text())["model"]
    root = tmp_path_factory.mktemp("models")
    paths = {}
    paper = [(f"teacher-paper-{d}", "teacher", {**smoke, "layout": "paper", "skips": False, "downsamples": d}) for d in range(4)]
    for name, architecture, config in (("teacher-ld", "ld-lite", {}), ("teacher-smoke", "teacher", smoke), *paper):
        paths[name] = root / f"{name}.pt"
        save_checkpoint(paths[name], model_payload(build_model(architecture, config), architecture, config, {"stage": "teacher"}))
    return paths


@pytest.mark.parametrize("name, side", [("teacher-ld", 16), ("teacher-smoke", 5), ("teacher-paper-0", 4), ("teacher-paper-1", 3),
                                        ("teacher-paper-2", 5), ("teacher-paper-3", 9)])
def test_min_size_is_exact(small_models, name, side):
    from edgefusion.errors import UserError
    from edgefusion.models.checkpoint import TorchFuser

    fuser = TorchFuser.load(small_models[name])
    planes = np.random.default_rng(0).random((2, side, side + 3), dtype=np.float32)
    assert fuser.fuse_planes(*planes).shape == (side, side + 3)
    with pytest.raises(UserError, match=f"model {name} needs frames of at least {side}x{side} pixels, got {side - 1}x{side + 3} "):
        fuser.fuse_planes(*planes[:, 1:])


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5)])
def test_tiny_frames_are_one_line(small_models, tmp_path, capsys, height, width):
    data = write_pair(tmp_path / "data", height, width)
    ir, vis, out = data / "ir" / "tno_07.png", data / "vi" / "tno_07.png", tmp_path / "fused.png"
    for spec, side in ((small_models["teacher-ld"], 16), (small_models["teacher-smoke"], 5)):
        err = one_line_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", out, "--model", spec])
        assert f"model {spec.stem} needs frames of at least {side}x{side} pixels, got {height}x{width} (HxW)" in err
    for how in (["--method", "max"], ["--model", "default"], ["--model", small_models["teacher-ld"]]):
        err = one_line_error(capsys, ["eval", "--data", data, *how])
        assert f"the pair is {width}x{height} (WxH); eval needs at least 7x7 pixels (the SSIM window)" in err
    assert not out.exists()


def test_export_refuses_a_shape_below_the_models_minimum(small_models, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    err = one_line_error(capsys, ["export", "--model", small_models["teacher-ld"], "--format", "onnx", "--shape", "8x8", "--out", out])
    assert err == f"edgefusion: --shape: model {small_models['teacher-ld']} needs frames of at least 16x16 pixels, got 8x8 (HxW)\n"
    assert not out.exists()
