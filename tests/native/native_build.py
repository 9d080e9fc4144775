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
from PIL import Image

import edgefusion
from edgefusion import preprocess
from edgefusion.embed import openvino_c_root
from edgefusion.errors import UserError
from edgefusion.resources import SAMPLES

NATIVE = Path(edgefusion.__file__).resolve().parent / "native"
DRIVERS = Path(__file__).resolve().parent
RUNTIME = sorted((NATIVE / "runtime").glob("ef_*.c"))
CORE = [p for p in RUNTIME if p.name != "ef_backend_openvino.c"] + [NATIVE / "src" / "ef_kernels.c"]
INCLUDES = [f"-I{NATIVE / d}" for d in ("include", "src", "runtime", "examples")]
WRAP = "-Wl,--wrap=malloc,--wrap=free,--wrap=calloc,--wrap=realloc"
#: Sources of trivial_backend.c (the runtime with a trivial C backend, no inference engine).
TRIVIAL = [*CORE, NATIVE / "examples" / "pnm.c", DRIVERS / "trivial_backend.c"]
SAMPLE_NAMES = sorted(p.stem for p in (SAMPLES / "ir").glob("*.png"))
BASE_MANIFEST = {
    "schema": 1, "edgefusion_version": "0.2.0", "backend": "openvino", "target": "x86", "precision": "fp32",
    "inputs": [{"name": "ir", "shape": [1, 1, -1, -1], "dtype": "float32"}, {"name": "vis", "shape": [1, 1, -1, -1], "dtype": "float32"}],
    "outputs": [{"name": "maps", "shape": [1, 4, -1, -1], "dtype": "float32"}], "layout": "NCHW", "io_dtype": "float32",
    "value_range": [0.0, 1.0], "stride": 8, "fixed_shape": None, "compose": "runtime",
    "preprocessing": {"thermal_stretch": [0.5, 99.5]},
}
#: stats_encoding.scale of the "v2-encoded" fake bundle (scale[0] != 1, so that the trivial backend's M0 shows it).
ENCODED_STATS_SCALE = (0.5, 2.0, 1.0, 2.0, 5.0, 10.0)
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
ASAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87"}
#: Hostile inputs for the fuzz harnesses' readers, beside their seed corpus (edgefusion/native/fuzz/corpus).
HOSTILE = {
    "manifest": [b"", b"{", b"[" * 5000, b'{"a":"\\u', b'{"a":"\\ud800\\u0041"}', b"-", b"1e999999999", b'"\xff\x00"'],
    "pnm": [b"", b"P5", b"P5\n99999 99999\n255\n", b"P6\n2 2\n255\n\x00", b"P5\n1 1\n65535\n\x01", b"P5 -1 1 255 x",
            b"P5\n#" + b"x" * 1000, b"P5\n1 1\n0\n\x00", b"P6\n16384 16385\n255\n"],
}
#: The fuzz harnesses and the reader sources each one links.
FUZZ_HARNESSES = {"manifest": ("runtime/ef_manifest.c", "runtime/ef_json.c", "runtime/ef_sha256.c"), "pnm": ("examples/pnm.c",)}


def fuzz_corpus_runner(out: Path, harness: str, *flags: str, compiler_path: str | None = None) -> Path:
    """The libFuzzer harness ``harness`` linked with fuzz/run_corpus.c (a plain main over files) into ``out``."""
    sources = [NATIVE / "fuzz" / f"fuzz_{harness}.c", NATIVE / "fuzz" / "run_corpus.c", *(NATIVE / s for s in FUZZ_HARNESSES[harness])]
    return cc(out, sources, *flags, compiler_path=compiler_path)


def fuzz_inputs(harness: str, folder: Path) -> list[Path]:
    """The seed corpus of ``harness`` plus its HOSTILE inputs (written to ``folder``)."""
    files = sorted((NATIVE / "fuzz" / "corpus" / harness).iterdir())
    for i, data in enumerate(HOSTILE[harness]):
        path = folder / f"hostile-{harness}{i}"
        path.write_bytes(data)
        files.append(path)
    return files


def compiler() -> str:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        pytest.skip("no C compiler")
    return cc


def default_isa(compiler_path: str | None = None) -> str:
    """ef_kernels_isa() of src/ef_kernels.c built without -march by ``compiler_path``: "avx2" where the compiler's
    default target has AVX2 (its predefined macros say so), else "portable"."""
    done = run([compiler_path or compiler(), "-dM", "-E", "-x", "c", os.devnull])
    assert done.returncode == 0, done.stderr
    return "avx2" if "#define __AVX2__ 1" in done.stdout else "portable"


def openvino_root() -> Path:
    """The openvino pip package folder with the C API headers and libopenvino_c; skips when absent."""
    try:
        return openvino_c_root()
    except UserError as exc:
        pytest.skip(str(exc))


def openvino_flags() -> list[str]:
    root = openvino_root()
    lib = sorted((root / "libs").glob("libopenvino_c.so*"))[0]
    return [f"-I{root / 'include'}", "-DEF_WITH_OPENVINO", str(NATIVE / "runtime" / "ef_backend_openvino.c"), str(lib),
            f"-Wl,-rpath,{root / 'libs'}"]


def require_sanitizers(work: Path, compiler_path: str | None = None, flags: tuple[str, ...] = SANITIZE, run_probe: bool = False) -> None:
    """Skip when the compiler (default: the system's) cannot link programs with the sanitizer ``flags`` (default
    -fsanitize=address,undefined: no libasan/libubsan), or, with ``run_probe``, when such a program cannot run."""
    probe = work / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    exe = work / "probe"
    done = subprocess.run([compiler_path or compiler(), *flags, str(probe), "-o", str(exe)], capture_output=True, text=True, timeout=120)
    if done.returncode:
        pytest.skip(f"the C compiler cannot build programs with {' '.join(flags)}: {done.stderr.strip()[:200]}")
    if run_probe and subprocess.run([str(exe)], capture_output=True, timeout=60).returncode:
        pytest.skip(f"programs built with {' '.join(flags)} cannot run here")


def cc(out: Path, sources: list[Path], *flags: str, compiler_path: str | None = None) -> Path:
    """Compile and link C99 ``sources`` (and libraries) into the executable or library ``out`` with ``compiler_path``
    (default: the system compiler); fails the test with the compiler output."""
    cmd = [compiler_path or compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", *INCLUDES, *map(str, sources), *flags, "-lm", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode:
        pytest.fail(f"compile failed: {' '.join(cmd)}\n{done.stderr}")
    return out


def cmake_build(source: Path, folder: Path, *options: str, build_options: tuple[str, ...] = ()) -> None:
    """Configure the CMake project ``source`` in ``folder`` with ``options`` and build it; skips without cmake,
    fails the test with the tools' output."""
    if not shutil.which("cmake"):
        pytest.skip("cmake not found")
    for cmd in (["cmake", "-S", source, "-B", folder, *options], ["cmake", "--build", folder, *build_options]):
        done = run(cmd, timeout=600)
        if done.returncode:
            pytest.fail(f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


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


def trivial_fused(pair: preprocess.PreparedPair, m0: float) -> np.ndarray:
    """What trivial_backend.c makes of a prepared pair whose map M0 is ``m0`` (M1 = M2 = 1/2, M3 = 0): fused luma
    ``m0 + (ir + vis) / 2`` clipped to [0, 1], the visible colour restored, uint8 (numpy, independent of the C code)."""
    return preprocess.to_uint8(preprocess.restore_color(np.clip(m0 + 0.5 * pair.ir + 0.5 * pair.vis_y, 0, 1), pair.vis_cbcr))


def write_pair(folder: Path, name: str, ir: np.ndarray, vis: np.ndarray) -> tuple[Path, Path]:
    """``ir`` as ``folder``/NAME-ir.pgm and ``vis`` as NAME-vis.pgm (gray) or .ppm (RGB) (:func:`write_pnm`); the two paths."""
    paths = folder / f"{name}-ir.pgm", folder / f"{name}-vis.{'ppm' if vis.ndim == 3 else 'pgm'}"
    write_pnm(paths[0], ir)
    write_pnm(paths[1], vis)
    return paths


def write_pnm(path, image: np.ndarray) -> None:
    """Binary PGM/PPM written by hand (16-bit big-endian), independent of the C reader."""
    maxval = 65535 if image.dtype == np.uint16 else 255
    magic = b"P6" if image.ndim == 3 else b"P5"
    data = image.astype(">u2").tobytes() if maxval > 255 else image.tobytes()
    path.write_bytes(magic + f"\n{image.shape[1]} {image.shape[0]}\n{maxval}\n".encode() + data)


def read_image(path) -> np.ndarray:
    image = Image.open(path)
    return np.asarray(image).astype(np.uint16) if image.mode.startswith("I") else np.asarray(image)


def analyze_model(path, with_stats: bool):
    """A small analysis network (ONNX -> OpenVINO IR): maps = conv1x1(avgpool4([ir, vis])) (+ stats @ U)."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper

    rng = np.random.default_rng(3)
    weight = rng.uniform(-0.8, 0.8, (4, 2, 1, 1)).astype(np.float32)
    bias = np.array([0.1, 0.6, 0.5, 0.3], np.float32)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()), helper.make_tensor("b", TensorProto.FLOAT, [4], bias)]
    nodes = [helper.make_node("Concat", ["ir", "vis"], ["x"], axis=1),
             helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Conv", ["p", "w", "b"], ["m" if with_stats else "maps"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, "h", "w"]) for n in ("ir", "vis")]
    if with_stats:
        u = rng.uniform(-1, 1, (6, 4)).astype(np.float32)
        inits += [helper.make_tensor("u", TensorProto.FLOAT, u.shape, u.ravel()), helper.make_tensor("shape", TensorProto.INT64, [4], [1, 4, 1, 1])]
        nodes += [helper.make_node("MatMul", ["stats", "u"], ["s4"]), helper.make_node("Reshape", ["s4", "shape"], ["s"]),
                  helper.make_node("Add", ["m", "s"], ["maps"])]
        inputs.append(helper.make_tensor_value_info("stats", TensorProto.FLOAT, [1, 6]))
    output = helper.make_tensor_value_info("maps", TensorProto.FLOAT, [1, 4, "h4", "w4"])
    model = helper.make_model(helper.make_graph(nodes, "analyze", inputs, [output], initializer=inits), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path.with_suffix(".onnx")))
    ov.save_model(ov.convert_model(str(path.with_suffix(".onnx"))), str(path), compress_to_fp16=False)
    return path, path.with_suffix(".bin")


def fusing_model(path):
    """A full model (compose = model): fused = sigmoid(conv3x3([ir, vis])), ONNX -> OpenVINO IR."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper

    weight = np.random.default_rng(5).uniform(-1, 1, (1, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Concat", ["ir", "vis"], ["x"], axis=1),
             helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Sigmoid", ["c"], ["fused"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, "h", "w"]) for n in ("ir", "vis")]
    output = helper.make_tensor_value_info("fused", TensorProto.FLOAT, [1, 1, "h", "w"])
    graph = helper.make_graph(nodes, "fuse", inputs, [output], initializer=[helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel())])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path.with_suffix(".onnx")))
    ov.save_model(ov.convert_model(str(path.with_suffix(".onnx"))), str(path), compress_to_fp16=False)
    return path, path.with_suffix(".bin")
