"""The device runtime needs numpy, Pillow and one backend only: never torch.

The always-on check runs a subprocess of this environment and inspects
``sys.modules``. The clean-venv checks (on unless ``EDGEFUSION_ISOLATION=0``; they
need the package index) install the runtime the way a device would, once per backend extra::

    python -m pip wheel --no-deps -w WHEELS .
    python -m venv VENV
    VENV/bin/pip install "edgefusion[onnx|openvino|litert] @ file://WHEELS/edgefusion-....whl"
    VENV/bin/python -c "from edgefusion.runtime import Fuser; ..."
    VENV/bin/edgefusion bench --model BUNDLE --size 64x48 --runs 3
    VENV/bin/edgefusion inspect BUNDLE
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


def _backend_bundle(backend: str, root: Path) -> Path:
    """A max(ir, vis) bundle for ``backend``, built with this (full) environment's converters."""
    from runtime_models import make_bundle, max_float_onnx

    onnx_file = max_float_onnx(root / "max.onnx")
    if backend == "onnxruntime":
        return make_bundle(root / "b-ort", onnx_file, stride=8)
    if backend == "openvino":
        ov = pytest.importorskip("openvino")
        ov.save_model(ov.convert_model(str(onnx_file)), str(root / "max.xml"))
        from edgefusion.runtime.bundle import write_bundle

        manifest = {**_manifest_of(make_bundle(root / "tmp-ov", onnx_file, stride=8)), "backend": "openvino"}
        return write_bundle(root / "b-ov", {"model": root / "max.xml", "weights": root / "max.bin"}, manifest)
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")

    class Max(torch.nn.Module):
        def forward(self, ir, vis):
            return torch.maximum(ir, vis)

    sample = torch.rand(1, 1, 48, 64)
    wrapped = litert_torch.to_channel_last_io(Max().eval(), args=[0, 1], outputs=[0]).eval()
    nhwc = sample.permute(0, 2, 3, 1).contiguous()
    litert_torch.convert(wrapped, (nhwc, nhwc.clone())).export(str(root / "max.tflite"))
    return make_bundle(root / "b-litert", root / "max.tflite", backend="litert", layout="NHWC",
                       fixed_shape=[48, 64], stride=1,
                       inputs=[{"name": n, "shape": [1, 48, 64, 1], "dtype": "float32"} for n in ("ir", "vis")],
                       outputs=[{"name": "fused", "shape": [1, 48, 64, 1], "dtype": "float32"}])


def _manifest_of(bundle: Path) -> dict:
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    return {k: v for k, v in manifest.items() if k not in ("files", "sha256")}


EXTRAS = (("onnx", "onnxruntime"), ("openvino", "openvino"), ("litert", "litert"))


@pytest.fixture(scope="module")
def clean_venvs(tmp_path_factory) -> dict[str, Path | BaseException]:
    """One fresh venv per extra with ``edgefusion[EXTRA]`` installed from one wheel; the venvs are built concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("venvs")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "wheels", REPO])
    wheel = next((root / "wheels").glob("edgefusion-*.whl"))

    def build(extra: str) -> Path:
        venv = root / f"venv-{extra}"
        _run([sys.executable, "-m", "venv", venv])
        _run([venv / "bin/pip", "install", "-q", f"edgefusion[{extra}] @ {wheel.as_uri()}"])
        return venv

    def attempt(extra: str) -> Path | BaseException:
        try:
            return build(extra)
        except BaseException as exc:  # reported by the test of that extra
            return exc

    with ThreadPoolExecutor(len(EXTRAS)) as pool:
        return dict(zip((e for e, _ in EXTRAS), pool.map(attempt, (e for e, _ in EXTRAS))))


@pytest.mark.skipif(os.environ.get("EDGEFUSION_ISOLATION") == "0", reason="EDGEFUSION_ISOLATION=0: clean-venv checks (they need the package index) are off")
@pytest.mark.parametrize(("extra", "backend"), EXTRAS)
def test_runtime_in_a_clean_venv_with_one_extra(extra, backend, tmp_path, clean_venvs):
    """``pip install edgefusion[EXTRA]`` alone (its declared dependencies, nothing else) runs a bundle without torch."""
    bundle = _backend_bundle(backend, tmp_path)
    venv = clean_venvs[extra]
    if isinstance(venv, BaseException):
        raise venv
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    listed = {line.split("==")[0].lower() for line in _run([venv / "bin/pip", "list", "--format=freeze"], env=env).stdout.split()}
    assert "edgefusion" in listed and not listed & {"torch", "open-clip-torch", "scipy", "scikit-image", "onnx", "nncf"}
    out = _run([venv / "bin/python", "-c", FUSE_SCRIPT.format(heavy=HEAVY), bundle], env=env, cwd=tmp_path).stdout
    assert "HEAVY []" in out
    _run([venv / "bin/edgefusion", "bench", "--model", bundle, "--size", "64x48", "--runs", "3"], env=env, cwd=tmp_path)
    inspected = _run([venv / "bin/edgefusion", "inspect", bundle], env=env, cwd=tmp_path).stdout
    assert f"backend {backend}" in inspected and "intact" in inspected
    samples = REPO / "edgefusion/assets/samples"
    _run([venv / "bin/edgefusion", "fuse", "--model", bundle, "--ir", samples / "ir/tno_07.png",
          "--vis", samples / "vi/tno_07.png", "-o", tmp_path / "fused.png"], env=env, cwd=tmp_path)
    fused = _run([venv / "bin/python", "-c", "import sys; from edgefusion.io.images import read_image; import numpy as np;"
                  "a, b, f = (read_image(p) for p in sys.argv[1:]); print(int(np.abs(np.maximum(a, b).astype(int) - f).max()))",
                  samples / "ir/tno_07.png", samples / "vi/tno_07.png", tmp_path / "fused.png"], env=env, cwd=tmp_path)
    assert int(fused.stdout.strip()) <= 1
