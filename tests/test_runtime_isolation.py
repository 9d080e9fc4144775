"""The device runtime needs numpy, Pillow and one backend only: never torch.

The always-on check runs a subprocess of this environment and inspects
``sys.modules``. The clean-venv check (``EDGEFUSION_ISOLATION=1``, needs
PyPI access, ~30 s) installs the runtime the way a device would::

    python -m pip wheel --no-deps -w WHEELS .
    python -m venv VENV
    VENV/bin/pip install --no-deps WHEELS/edgefusion-*.whl numpy pillow onnxruntime
    VENV/bin/python -c "from edgefusion.runtime import Fuser; ..."
    VENV/bin/edgefusion bench --model BUNDLE --size 64x48 --runs 3
    VENV/bin/edgefusion fuse --model BUNDLE --ir IR.png --vis VIS.png -o OUT.png
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "open_clip", "onnx", "nncf", "litert_torch", "scipy", "skimage", "matplotlib")

needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert result.returncode == 0, f"{cmd[:3]} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def max_bundle(tmp_path_factory):
    pytest.importorskip("onnx")
    from runtime_models import make_bundle, max_float_onnx

    root = tmp_path_factory.mktemp("iso")
    return make_bundle(root / "maxb", max_float_onnx(root / "max.onnx"), stride=8)


FUSE_SCRIPT = """
import sys
import numpy as np
import edgefusion.runtime
from edgefusion.runtime import Fuser
f = Fuser.open(sys.argv[1], threads=1)
rng = np.random.default_rng(0)
ir, vis = rng.integers(0, 256, (2, 37, 45), dtype=np.uint8)
assert (f.fuse(ir, vis) == np.maximum(ir, vis)).all()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print("HEAVY", heavy)
"""


def test_importing_the_runtime_does_not_import_torch():
    code = "import sys, edgefusion.runtime, edgefusion.bench, edgefusion.report; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,)
    assert _run([sys.executable, "-c", code]).stdout.strip() == "[]"


@needs_ort
def test_fusing_with_a_bundle_loads_no_training_stack(max_bundle):
    out = _run([sys.executable, "-c", FUSE_SCRIPT.format(heavy=HEAVY), max_bundle]).stdout
    assert "HEAVY []" in out


@pytest.mark.skipif(os.environ.get("EDGEFUSION_ISOLATION") != "1", reason="set EDGEFUSION_ISOLATION=1 to build a clean venv (needs PyPI)")
def test_runtime_in_a_clean_venv(max_bundle, tmp_path):
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO])
    _run([sys.executable, "-m", "venv", venv])
    wheel = next(wheels.glob("edgefusion-*.whl"))
    _run([venv / "bin/pip", "install", "-q", "--no-deps", wheel, "numpy", "pillow", "onnxruntime"])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    listed = _run([venv / "bin/pip", "list", "--format=freeze"], env=env).stdout.lower()
    assert "torch" not in listed and "edgefusion" in listed
    out = _run([venv / "bin/python", "-c", FUSE_SCRIPT.format(heavy=HEAVY), max_bundle], env=env, cwd=tmp_path).stdout
    assert "HEAVY []" in out
    _run([venv / "bin/edgefusion", "bench", "--model", max_bundle, "--size", "64x48", "--runs", "3"], env=env, cwd=tmp_path)
    samples = REPO / "edgefusion/assets/samples"
    _run([venv / "bin/edgefusion", "fuse", "--model", max_bundle, "--ir", samples / "ir/tno_07.png",
          "--vis", samples / "vi/tno_07.png", "-o", tmp_path / "fused.png"], env=env, cwd=tmp_path)
    assert (tmp_path / "fused.png").stat().st_size > 0
