"""Bare ``edgefusion train`` forwards the teacher's weight options and fails fast on missing weights."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="training needs the train extra")
pytest.importorskip("open_clip", reason="training needs the train extra")

from edgefusion.cli import main  # noqa: E402
from edgefusion.io.images import write_image  # noqa: E402


@pytest.fixture
def tiny_dataset(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    for sub in ("ir", "vi"):
        write_image(tmp_path / "data" / sub / "a.png", rng.integers(0, 256, (40, 48), dtype=np.uint8))
    return tmp_path / "data"


def test_pipeline_passes_vgg_weights_to_the_teacher_and_writes_nothing(capsys, tiny_dataset, tmp_path):
    import torch

    clip_file = tmp_path / "clip.pt"
    torch.save({"unused": torch.zeros(1)}, clip_file)
    out = tmp_path / "run"
    code = main(["train", "--data", str(tiny_dataset), "--out", str(out), "--clip-weights", str(clip_file),
                 "--vgg-weights", str(tmp_path / "missing-vgg19.pth")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "missing-vgg19.pth" in err[0]  # the override reached the teacher stage (the recipe names no such file)
    assert not out.exists()


def test_pipeline_without_clip_weights_names_what_it_looked_for(capsys, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "CLIP weights" in err and "--clip-weights" in err
    assert not out.exists()
