"""LD-Lite import: reference outputs of the authors reproduced, provenance recorded, bad files one line exit 2."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgefusion import preprocess  # noqa: E402
from edgefusion.cli import main  # noqa: E402
from edgefusion.io.images import read_image  # noqa: E402
from edgefusion.models import build_model  # noqa: E402
from edgefusion.models.checkpoint import TorchFuser, read_checkpoint, save_checkpoint  # noqa: E402
from edgefusion.models.ld_lite import N_PARAMETERS, import_state_dict  # noqa: E402
from edgefusion.models.provenance import provenance_of  # noqa: E402

WEIGHTS_SHA256 = "38099dbf221a951609439692f6693e8283d49e118cb2576906fda9df6ea454ea"  # SHA256SUMS of the shared copy
# fixtures ld_lite_dir (../shared/models/ld-lite) and imported (its edgefusion import): conftest.py


def test_architecture_has_the_authors_parameter_count():
    model = build_model("ld-lite", {})
    assert sum(p.numel() for p in model.parameters()) == N_PARAMETERS
    ir = torch.rand(1, 1, 37, 53)
    with torch.no_grad():
        fused = model(ir, torch.rand(1, 1, 37, 53))
    assert fused.shape == ir.shape  # any size: the decoder's larger output is cropped inside


def test_layer_norm_uses_unbiased_whole_sample_std():
    model = build_model("ld-lite", {})
    norm = model.up[0].norm
    x = torch.tensor([1.0, 2.0, 3.0, 6.0]).reshape(1, 1, 2, 2).repeat(1, 64, 1, 1)
    mean, std = 3.0, float(np.std([1, 2, 3, 6] * 64, ddof=1))  # over all C x H x W values, unbiased
    torch.testing.assert_close(norm(x)[0, 0], ((x[0, 0] - mean) / (std + 1e-5)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", ["1", "2"])
def test_imported_checkpoint_reproduces_the_authors_reference(imported, ld_lite_dir, name):
    """Project preprocessing + color restore; the references truncate 255*rgb, so tolerance 1 gray level."""
    fuser = TorchFuser.load(imported)
    pair = preprocess.prepare_pair(read_image(ld_lite_dir / "ir" / f"{name}.png"), read_image(ld_lite_dir / "vi" / f"{name}.png"))
    rgb = preprocess.restore_color(fuser.fuse_planes(pair.ir, pair.vis_y), pair.vis_cbcr)
    reference = read_image(ld_lite_dir / "reference" / f"{name}.png").astype(np.int16)
    if rgb.ndim == 2:  # gray visible input: the authors wrote gray as three equal channels
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    diff = np.abs(preprocess.to_uint8(rgb).astype(np.int16) - reference)
    assert diff.max() <= 1 and diff.mean() < 0.6


def test_provenance_is_recorded(imported):
    payload = read_checkpoint(imported)
    assert payload["architecture"] == "ld-lite"
    prov = provenance_of(payload)
    assert prov["licence"] == "Apache-2.0" and prov["language_objective_meaningful"] is True
    assert prov["source"]["sha256"] == WEIGHTS_SHA256
    assert prov["source"]["commit"].startswith("75a322b") and "wyhlaowang/LD-Lite" in prov["source"]["repository"]
    assert "not trained here" in prov["objective"]


def test_bad_weights_are_one_line_exit_2(ld_lite_dir, tmp_path, capsys):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((ld_lite_dir / "final.pt").read_bytes()[:5000])
    other = tmp_path / "other.pt"
    state = torch.load(ld_lite_dir / "final.pt", map_location="cpu", weights_only=True)
    state["decoder.model_up.10.weight"] = torch.zeros(1, 16, 5, 5)
    torch.save(state, other)
    not_dict = tmp_path / "list.pt"
    torch.save([1, 2], not_dict)
    for bad in (truncated, other, not_dict, tmp_path / "missing.pt"):
        out = tmp_path / "out.pt"
        assert main(["import", "ld-lite", str(bad), "--out", str(out), "--allow-modified"]) == 2  # past the SHA-256 check
        err = capsys.readouterr().err.strip()
        assert err.startswith("edgefusion: ") and "\n" not in err and "Traceback" not in err
        assert not out.exists()
    with pytest.raises(ValueError, match="shape"):
        import_state_dict(state)


def test_checkpoint_round_trip_keeps_outputs(imported, tmp_path):
    payload = read_checkpoint(imported)
    save_checkpoint(tmp_path / "copy.pt", payload)
    a, b = TorchFuser.load(imported), TorchFuser.load(tmp_path / "copy.pt")
    ir, vis = np.random.default_rng(0).random((2, 24, 40), dtype=np.float32)
    np.testing.assert_array_equal(a.fuse_planes(ir, vis), b.fuse_planes(ir, vis))


@pytest.fixture(scope="module")
def random_ld_lite(tmp_path_factory):
    """An LD-Lite checkpoint with random weights (no shared data needed) and two small real pairs."""
    from edgefusion.io.images import write_image
    from edgefusion.models.checkpoint import model_payload
    from edgefusion.resources import SAMPLES

    root = tmp_path_factory.mktemp("ldfirst")
    torch.manual_seed(1)
    ckpt = root / "teacher-ld.pt"
    save_checkpoint(ckpt, model_payload(build_model("ld-lite", {}), "ld-lite", {}, {"stage": "teacher", "objective": "random test weights"}))
    for name in ("tno_07", "tno_19"):
        for sub in ("ir", "vi"):
            write_image(root / "data" / sub / f"{name}.png", read_image(SAMPLES / sub / f"{name}.png")[100:148, 60:124])
    return ckpt, root / "data"


def test_ld_lite_is_a_first_class_model(random_ld_lite, tmp_path, capsys):
    """fuse --model, eval --model and export --format onnx all take an LD-Lite checkpoint."""
    ckpt, data = random_ld_lite
    assert main(["fuse", "--ir", str(data / "ir"), "--vis", str(data / "vi"), "-o", str(tmp_path / "fused"), "--model", str(ckpt)]) == 0
    assert sorted(p.name for p in (tmp_path / "fused").iterdir()) == ["tno_07.png", "tno_19.png"]
    assert read_image(tmp_path / "fused" / "tno_07.png").shape[:2] == (48, 64)
    assert main(["eval", "--data", str(data), "--model", str(ckpt), "--json", str(tmp_path / "m.json")]) == 0
    assert (tmp_path / "m.json").is_file()
    pytest.importorskip("onnxruntime")
    assert main(["export", "--model", str(ckpt), "--format", "onnx", "--shape", "48x64", "--out", str(tmp_path / "ld.onnx")]) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
