"""Target profiles: built-ins, variants, user profiles and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefusion.errors import UserError
from edgefusion.targets import builtin_names, list_targets, load_target, parse_shape

VALID = """
backend = "onnxruntime"
shape = [64, 96]
[gate]
min_psnr_db = 30
[latency_budget]
shape = [64, 96]
p90_ms = 5
"""


def _profile(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_profiles_cover_the_four_devices():
    assert {"jetson", "x86", "arm", "onnx"} <= set(builtin_names())
    targets = {t.name: t for t in list_targets()}
    assert targets["x86"].backend == "openvino" and targets["x86"].dynamic and targets["x86"].compose == "runtime"
    assert targets["onnx"].backend == "onnxruntime" and targets["onnx"].dynamic
    assert targets["arm"].backend == "litert" and targets["arm"].layout == "NHWC" and targets["arm"].fixed_shape == (480, 640)
    assert targets["jetson"].backend == "tensorrt" and targets["jetson"].fixed_shape == (1080, 1920)
    assert targets["jetson:480p"].fixed_shape == (480, 640) and targets["jetson:480p"].latency_shape == (480, 640)
    assert targets["jetson:480p"].gate == targets["jetson"].gate  # a variant inherits what it does not override
    for t in targets.values():
        assert t.precision == "int8" and t.gate.min_psnr_db > 0 and t.latency_p90_ms > 0 and t.calibration_samples > 0
        assert t.shape[0] % 8 == 0 and t.shape[1] % 8 == 0  # multiples of the student stride


def test_onnx_profile_states_the_measured_int8_slowdown():
    assert "SLOWER" in load_target("onnx").notes


def test_user_profile_by_path(tmp_path):
    target = load_target(_profile(tmp_path, VALID))
    assert (target.name, target.backend, target.shape, target.dynamic, target.layout) == ("mine", "onnxruntime", (64, 96), True, "NCHW")
    assert target.gate.min_psnr_db == 30.0 and target.gate.max_relative_drop == {}
    assert target.with_shape((32, 48)).fixed_shape is None and target.with_shape((32, 48)).shape == (32, 48)


@pytest.mark.parametrize(
    "text, message",
    [
        (VALID + "colour = 1\n", "unknown key"),
        (VALID.replace('"onnxruntime"', '"coreml"'), "coreml"),
        (VALID.replace("[64, 96]", "[64, 0]", 1), "shape must be"),
        (VALID.replace('backend = "onnxruntime"', 'backend = "litert"\ndynamic = true'), "needs a fixed input shape"),
        (VALID.replace('backend = "onnxruntime"', 'backend = "openvino"\nlayout = "NHWC"'), "NHWC layout"),
        (VALID.replace("min_psnr_db = 30", "min_ssim = 0.9"), "missing gate.min_psnr_db"),
        (VALID.replace("p90_ms = 5", ""), "latency_budget needs"),
        (VALID + "calibration_samples = 0\n", "calibration_samples"),
        (VALID.replace('backend = "onnxruntime"', 'backend = "onnxruntime"\ncompose = "gpu"'), "compose = 'gpu' is not one of"),
        ("backend = [", "cannot read target profile"),
        (VALID.replace("min_psnr_db = 30", "min_psnr_db = nan"), r"gate.min_psnr_db must be a finite number, got nan"),
        (VALID.replace("p90_ms = 5", "p90_ms = inf"), r"p90_ms must be a finite number, got inf"),  # a manifest cannot hold it
        (VALID.replace("[64, 96]", "[100000, 100000]", 1), r"mine.toml\): shape 100000x100000 is too large: 10000000000 pixels, at most"),
    ],
)
def test_invalid_profiles_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message) as info:
        load_target(_profile(tmp_path, text))
    assert "\n" not in str(info.value)


def test_unknown_names_and_variants(tmp_path):
    with pytest.raises(UserError, match="unknown target 'pdp11'.*jetson"):
        load_target("pdp11")
    with pytest.raises(UserError, match="no variant 'vga'"):
        load_target("jetson:vga")
    with pytest.raises(UserError, match="target profile not found"):
        load_target(tmp_path / "absent.toml")


def test_parse_shape():
    assert parse_shape("480x640") == (480, 640)
    for bad in ("480", "0x640", "ax640", "480x-1"):
        with pytest.raises(UserError):
            parse_shape(bad)


def test_targets_command_lists_every_profile(capsys):
    from edgefusion.cli import main

    assert main(["targets"]) == 0
    table = capsys.readouterr().out
    for name in ("jetson", "jetson:480p", "x86", "arm", "onnx"):
        assert f"\n{name} " in table
    assert main(["targets", "onnx"]) == 0
    assert "SLOWER" in capsys.readouterr().out
    assert main(["targets", "nope"]) == 2
    assert "edgefusion: unknown target 'nope'" in capsys.readouterr().err
