"""Building the C runtime, its example and test drivers with the system compiler, for the native tests.

Every build goes to a per-session folder; sources live in ``edgefusion/native``
(runtime/, src/, examples/, fuzz/) and ``tests/native``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgefusion

NATIVE = Path(edgefusion.__file__).resolve().parent / "native"
DRIVERS = Path(__file__).resolve().parent / "native"
RUNTIME = sorted((NATIVE / "runtime").glob("ef_*.c"))
CORE = [p for p in RUNTIME if p.name != "ef_backend_openvino.c"] + [NATIVE / "src" / "ef_kernels.c"]
INCLUDES = [f"-I{NATIVE / d}" for d in ("include", "src", "runtime", "examples")]
WRAP = "-Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc"
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def compiler() -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    return cc


def openvino_root() -> Path:
    """The openvino pip package folder with the C API headers and libopenvino_c; skips when absent."""
    try:
        import openvino
    except ImportError:
        pytest.skip("openvino is not installed")
    root = Path(openvino.__file__).resolve().parent
    if not (root / "include" / "openvino" / "c" / "openvino.h").is_file() or not list((root / "libs").glob("libopenvino_c.so*")):
        pytest.skip(f"openvino at {root} lacks its C API (include/openvino/c, libs/libopenvino_c.so)")
    return root


def openvino_flags() -> list[str]:
    root = openvino_root()
    lib = sorted((root / "libs").glob("libopenvino_c.so*"))[0]
    return [f"-I{root / 'include'}", "-DEF_WITH_OPENVINO", str(NATIVE / "runtime" / "ef_backend_openvino.c"), str(lib),
            f"-Wl,-rpath,{root / 'libs'}"]


def cc(out: Path, sources: list[Path], *flags: str) -> Path:
    """Compile and link C99 ``sources`` into the executable or library ``out``; fails the test with the compiler output."""
    cmd = [compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", *INCLUDES, *map(str, sources), *flags, "-lm", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode:
        pytest.fail(f"compile failed: {' '.join(cmd)}\n{done.stderr}")
    return out


def run(cmd: list, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def driver_json(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def frame_stats_reference(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """The contract's 6 frame statistics, written out independently of edgefusion (float64, then float32)."""
    def grad(x):
        gx = np.abs(x[:, 1:] - x[:, :-1]).mean() if x.shape[1] > 1 else 0.0
        gy = np.abs(x[1:, :] - x[:-1, :]).mean() if x.shape[0] > 1 else 0.0
        return gx + gy

    ir, vis = ir.astype(np.float64), vis.astype(np.float64)
    return np.array([ir.mean(), ir.std(), vis.mean(), vis.std(), grad(ir), grad(vis)], np.float32)
