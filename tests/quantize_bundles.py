"""Bundles of a small test student, shared by the quantize tests (fixtures ``student``, ``splits``, ``prebuilt``
and ``built`` in conftest.py, session-scoped: each bundle is quantized once per test session).

The student is a perturbed random-init student; calibration uses two package sample pairs and validation the
other two, at :data:`SHAPE` unless a test asks for another shape.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

SHAPE = "64x96"
#: Built by :func:`prebuild` in one fresh interpreter, in this order: arm first, so that JAX (loaded by
#: ai-edge-quantizer) is in the process when the x86 stage runs (NNCF/OpenVINO fork), as in ``edgefusion demo``.
PREBUILT = (("arm", SHAPE), ("x86", SHAPE), ("onnx", SHAPE), ("jetson", SHAPE), ("arm", "272x360"), ("arm:int8-io", SHAPE))
#: Third-party messages a user cannot act on (edgefusion.quiet), never on the stderr of an edgefusion command.
NOISE = ("CUDA_HOME", "pre-processing before quantization", "experimental_preserve_all_tensors", "os.fork()",
         "absl::InitializeLog", "oneDNN custom operations", "XNNPACK delegate", "Estimated count of arithmetic ops")


def make_splits(root: Path, samples: Path) -> tuple[Path, Path]:
    """(calib, val) folders under ``root``: the first two sample pairs and the other two."""
    names = sorted(p.stem for p in (samples / "ir").glob("*.png"))
    for split, picked in (("calib", names[:2]), ("val", names[2:])):
        for sub in ("ir", "vi"):
            (root / split / sub).mkdir(parents=True)
            for name in picked:
                shutil.copy(samples / sub / f"{name}.png", root / split / sub / f"{name}.png")
    return root / "calib", root / "val"


def quantize_argv(model: Path, splits: tuple[Path, Path], out: Path, target: str, *extra: str) -> list[str]:
    """``edgefusion quantize`` arguments for ``target`` (at :data:`SHAPE` unless ``extra`` has ``--shape``)."""
    calib, val = splits
    shape = [] if "--shape" in extra else ["--shape", SHAPE]
    return ["quantize", "--target", target, "--model", str(model), "--calib", str(calib), "--val", str(val), *shape, "--out", str(out), *extra]


def quantize_cli(model: Path, splits: tuple[Path, Path], out: Path, target: str, *extra: str) -> int:
    """Run ``edgefusion quantize`` in this process; its exit code."""
    from edgefusion.cli import main

    return main(quantize_argv(model, splits, out, target, *extra))


def start_prebuild(model: Path, splits: tuple[Path, Path], root: Path) -> tuple[subprocess.Popen, dict[tuple[str, str], Path], Path]:
    """Start ``edgefusion quantize`` for every bundle of :data:`PREBUILT` in ONE subprocess (in the background).

    Returns (process, bundle folders by (target, shape), its stderr file); :func:`finish_prebuild` waits for it.
    """
    outs = {key: root / f"{key[0].replace(':', '_')}-{key[1]}" for key in PREBUILT}
    calls = [quantize_argv(model, splits, out, target, "--shape", shape) for (target, shape), out in outs.items()]
    code = "import json, sys; from edgefusion.cli import main; sys.exit(max([main(argv) for argv in json.loads(sys.argv[1])]))"
    err = root / "stderr.txt"
    with err.open("w") as handle:  # a file, not a pipe: a full pipe would stall the child
        process = subprocess.Popen([sys.executable, "-c", code, json.dumps(calls)], stdout=subprocess.DEVNULL, stderr=handle)
    return process, outs, err


def finish_prebuild(process: subprocess.Popen, err: Path) -> str:
    """Wait for :func:`start_prebuild`'s process; it must succeed. Returns its stderr."""
    try:
        code = process.wait(timeout=1200)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    text = err.read_text()
    assert code == 0, text[-3000:]
    return text
