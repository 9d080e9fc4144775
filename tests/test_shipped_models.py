"""Shipped models by name, their listing, provenance warnings and provenance in C arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgefusion.cli import main
from edgefusion.models import provenance
from edgefusion.errors import UserError
from edgefusion.models.shipped import DEFAULT_NAME, MODELS_DIR, SHIPPED, canonical_name, resolve_model_spec
from edgefusion.resources import DEFAULT_MODEL


def test_names_and_aliases_resolve_to_package_files(tmp_path, monkeypatch):
    assert Path(resolve_model_spec(None)) == DEFAULT_MODEL == MODELS_DIR / f"{DEFAULT_NAME}.pt"
    assert Path(resolve_model_spec("pixel")) == MODELS_DIR / "student-s.pt"
    assert Path(resolve_model_spec("student-s")) == MODELS_DIR / "student-s.pt"
    for other in ("max", "laplacian", "run/student.pt", "bundle/"):
        assert resolve_model_spec(other) == other
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pixel").mkdir()  # a folder of that name (e.g. a fine-tune's run folder) does not hide the model ...
    assert Path(resolve_model_spec("pixel")) == MODELS_DIR / "student-s.pt"
    (tmp_path / "pixel" / "manifest.json").write_text("{}")  # ... a bundle folder does, as does a file
    assert resolve_model_spec("pixel") == "pixel"
    (tmp_path / "default").write_bytes(b"x")
    assert resolve_model_spec("default") == "default"
    for empty in ("", " "):
        with pytest.raises(UserError, match="an empty model name"):
            resolve_model_spec(empty)
    assert canonical_name("default") == "student-ld" and canonical_name("nope") is None


def test_every_shipped_model_exists_with_a_path_free_record():
    for name in SHIPPED:
        pt, record = MODELS_DIR / f"{name}.pt", MODELS_DIR / f"{name}.json"
        if name == "student-ld" and not pt.is_file():
            continue  # written by the release step; checked below once shipped
        text = record.read_text(encoding="utf-8")
        data = json.loads(text)
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text
        assert data["file"] == pt.name and "provenance" in data
        assert isinstance(data["provenance"].get("language_objective_meaningful"), (bool, type(None)))


def test_models_command_lists_provenance(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "student-s" in out and "aliases: pixel" in out and "language objective meaningful: False" in out
    assert main(["models", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records["student-s"]["provenance"]["language_objective_meaningful"] is False


def test_pixel_model_warns_once_when_used(capsys, monkeypatch):
    pytest.importorskip("torch")
    from edgefusion.fusers import open_fuser

    monkeypatch.setattr(provenance, "_WARNED", set())
    open_fuser("pixel")
    open_fuser("pixel")
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "not trained with a meaningful language-driven objective" in err


def test_c_array_carries_provenance():
    from edgefusion.embed.c_arrays import SOURCE, bundle_c_arrays

    prov = {"objective": "x */ y", "licence": "Apache-2.0", "attribution": "LD-Lite authors"}
    manifest = {"backend": "onnxruntime", "precision": "int8", "files": {"model": "model.onnx"},
                "sha256": {"model.onnx": "0" * 64}, "model": {"provenance": prov}}
    text = bundle_c_arrays(manifest, {"model.onnx": bytes(range(20))})[SOURCE].decode("ascii")
    assert "/* licence: Apache-2.0 */" in text and "LD-Lite authors" in text and "x * / y" in text


def test_grid_strip_with_extra_panels():
    from edgefusion.evaluate import grid_strip

    a = np.zeros((6, 5), np.uint8)
    two = grid_strip(a, a, a)
    four = grid_strip(a, a, a, more=(np.full((6, 5, 3), 9, np.uint8),))
    assert four.shape[0] == 6 and four.shape[1] == two.shape[1] + (four.shape[1] - two.shape[1])
    assert four.shape[1] == 4 * 5 + 3 * (two.shape[1] - 15) // 2
    assert (four[:, -5:] == 9).all()
