"""Damaged or wrong models are refused at load time: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from test_output_errors import one_line_error  # noqa: E402

from edgefusion.io.images import read_image, write_image  # noqa: E402
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
    err = one_line_error(capsys, ["import", "ld-lite", weights, "--out", out])
    assert f"{weights}: weight " in err and "holds NaN or Inf" in err
    assert not out.exists()
