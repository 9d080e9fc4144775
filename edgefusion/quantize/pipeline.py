"""``edgefusion quantize``: student checkpoint -> converted, quantized, checked bundle for one target.

Steps: load the target profile and the student; cover-crop calibration and
validation pairs to the target shape (:mod:`.calibration`); export FP32 ONNX
(:func:`edgefusion.convert.onnx.export_onnx`) and convert it for the backend;
check the FP32 conversion against PyTorch on a validation frame; quantize;
run the INT8 model through the device runtime
(:func:`edgefusion.runtime.backends.open_backend`) on every validation frame;
compare with PyTorch FP32 (:mod:`.accuracy`) and apply the gate; write the
bundle (:func:`edgefusion.runtime.bundle.write_bundle`). A failed gate raises
:class:`~edgefusion.errors.GateError` and writes nothing, unless ``force``.

v2 students (architecture ``student-ctx``) take a third input ``stats``: every
step (PyTorch reference, conversion check, calibration, validation) feeds each
frame's statistics of the whole pair (:class:`.calibration.Frame`), and the
manifest's ``inputs`` lists ``ir``, ``vis``, ``stats``. With integer I/O the
model takes them encoded (:mod:`edgefusion.runtime.stats_encoding`): the
exported graph decodes them (:func:`decoding_stats`), calibration and the
runtime encode them, the manifest records ``stats_encoding``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefusion import __version__, metrics, preprocess
from edgefusion.embed.c_arrays import bundle_c_arrays
from edgefusion.errors import UserError
from edgefusion.models import STUDENT_ARCHITECTURES
from edgefusion.quantize import accuracy
from edgefusion.quiet import quiet
from edgefusion.quantize.calibration import Frame, calibration_pairs, dataset_pairs, load_frames, select
from edgefusion.models.provenance import provenance_of, warn_if_not_meaningful
from edgefusion.models.shipped import resolve_model_spec
from edgefusion.resources import DEFAULT_MODEL, SAMPLES
from edgefusion.io.atomic import work_folder
from edgefusion.io.digest import sha256_file
from edgefusion.runtime.bundle import check_bundle_output, write_bundle
from edgefusion.runtime.stats_encoding import INTEGER_IO_SCALE, entry, stats_scale
from edgefusion.targets import Target

#: Minimum PSNR (dB) of an FP32 conversion against PyTorch before it is trusted.
CONVERSION_MIN_PSNR_DB = 60.0
#: Modules every target keeps in float for an architecture, on top of the target's ``keep_float``.
#: student-ctx: the stems and the 1/4-resolution conv, whose input holds raw features next to
#: features normalized by the frame statistics (ranges far apart in one per-tensor-quantized
#: tensor). LD-Lite student at the default shapes, worst of 4 frames, INT8 vs FP32 without / with:
#: jetson 38.5 / 57.2 dB (gate failed / passed), x86 44.6 / 66.4, arm 49.5 / 60.6, onnx 45.6 / 61.7 dB
#: (an early student). The first 1/8-resolution conv (27 MACs/pixel), whose output takes the
#: context vector: shipped student-ld, jetson at 1080x1920 44.9 dB quantized / 50.5 dB float.
FLOAT_MODULES = {"student-ctx": ("stem_ir", "stem_vis", "quarter", "eighth_in")}


@dataclass
class Converted:
    """A backend model: bundle files by role, its I/O layout and quantization description."""

    files: dict[str, Path]
    layout: str
    quantization: dict
    run_backend: str  # backend that runs it for the accuracy check
    output: str = "fused"  # or "maps": an analyze-only model, composed by the runtime
    io_dtype: str = "float32"  # or "int8"/"uint8": integer I/O with io_quantization {name: {scale, zero_point}}
    io_quantization: dict | None = None
    run_device: str | None = None  # open_backend's device for the check; "reference": Q/DQ arithmetic (see tensorrt)
    inputs: tuple[str, ...] = ("ir", "vis")  # or ("ir", "vis", "stats") for v2 students
    stats_encoding: dict | None = None  # manifest stats_encoding: the model takes encoded stats


def load_student(path: str | Path):
    """(model, checkpoint dict) of a student checkpoint; UserError for any other model."""
    from edgefusion.models.checkpoint import load_model

    path = Path(path)
    model, payload = load_model(path)
    if payload.get("architecture") not in STUDENT_ARCHITECTURES:
        raise UserError(f"{path} holds a {payload.get('architecture')!r} model; edge targets need a student checkpoint (edgefusion train student)")
    return model, payload


def check_shape(target: Target, model) -> None:
    """UserError when the target shape is not a multiple of the model stride, or smaller than the model
    (its ``min_size``) or the accuracy check (the textbook SSIM window) takes."""
    h, w = target.shape
    stride = int(getattr(model, "stride", 1))
    if h % stride or w % stride:
        raise UserError(f"target {target.name}: shape {h}x{w} (HxW) must be a multiple of the model stride {stride} for the {target.backend} backend")
    side = max(int(getattr(model, "min_size", 1)), metrics.TEXTBOOK_SSIM_WINDOW)
    if h < side or w < side:
        smallest = -(-side // stride) * stride
        raise UserError(f"target {target.name}: shape {h}x{w} (HxW) is too small; quantize needs at least {smallest}x{smallest} "
                        f"({side} pixels a side for the model and the accuracy check's SSIM, in multiples of the model stride {stride})")


def torch_outputs(model, frames: list[Frame]) -> list[np.ndarray]:
    """PyTorch FP32 outputs, (1, 1, H, W) float32 each (v2 students get each frame's stats)."""
    import torch

    from edgefusion.models.checkpoint import input_names

    names = input_names(model)
    with torch.no_grad():
        return [model(*(torch.from_numpy(v) for v in f.inputs(names).values())).numpy() for f in frames]


def analyze_only(model):
    """The student's low-resolution ``analyze(ir, vis[, stats]) -> maps`` as a module (for ``compose = "runtime"``)."""
    import torch

    from edgefusion.models.checkpoint import input_names

    if not hasattr(model, "analyze"):
        raise UserError(f"{type(model).__name__} has no analyze network; compose = \"runtime\" needs a student")

    class AnalyzeOnly(torch.nn.Module):
        stride = model.stride
        inputs = input_names(model)

        def __init__(self) -> None:
            super().__init__()
            self.student = model

        def forward(self, ir, vis, stats=None):
            return self.student.analyze(ir, vis) if stats is None else self.student.analyze(ir, vis, stats)

    return AnalyzeOnly().eval()


def decoding_stats(model, scale: tuple[float, ...]):
    """``model(ir, vis, stats)`` as a module that takes ``stats * scale`` (encoded) and divides by ``scale`` first."""
    import torch

    class DecodingStats(torch.nn.Module):
        stride = model.stride
        inputs = model.inputs

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)

        def forward(self, ir, vis, stats):
            return self.model(ir, vis, stats / self.scale)

    return DecodingStats().eval()


def backend_outputs(model: Converted, frames: list[Frame]) -> list[np.ndarray]:
    """Fused outputs (NCHW float32) of ``model`` run by the device runtime; ``maps`` models are composed
    by the runtime's numpy composition (:class:`edgefusion.runtime.compose.Composer`)."""
    from edgefusion.progress import progress
    from edgefusion.runtime.backends import open_backend

    engine = open_backend(
        model.run_backend, model.files, layout=model.layout, io_dtype=model.io_dtype, io_quantization=model.io_quantization,
        output=model.output, inputs=model.inputs, stats_encoding=model.stats_encoding, device=model.run_device,
    )
    frames_bar = progress(frames, desc=f"running {model.run_backend}", unit="frame", leave=False, enabled=len(frames) > 1)
    if model.output == "fused":
        return [engine.run(**f.inputs(model.inputs)).copy() for f in frames_bar]
    return [compose_maps(engine.run_raw(**f.inputs(model.inputs)), f) for f in frames_bar]


def compose_maps(maps: np.ndarray, frame: Frame) -> np.ndarray:
    """Fused (1, 1, H, W) output of NCHW ``maps`` (1, 4, H/4, W/4) for ``frame``, by the runtime's composition."""
    from edgefusion.runtime.compose import Composer

    fused = np.empty_like(frame.ir)
    Composer(*frame.ir.shape[2:])(frame.ir[0, 0], frame.vis[0, 0], np.ascontiguousarray(maps[0], dtype=np.float32), fused[0, 0])
    return fused


def check_conversion(what: str, model: Converted, frame: Frame, reference: np.ndarray) -> float:
    """PSNR of a converted FP32 model vs PyTorch on ``frame``; UserError below :data:`CONVERSION_MIN_PSNR_DB`."""
    (out,) = backend_outputs(model, [frame])
    psnr = accuracy.psnr_db(reference[0, 0], out[0, 0])
    if psnr < CONVERSION_MIN_PSNR_DB:
        raise UserError(f"{what} conversion disagrees with PyTorch on {frame.name}: PSNR {psnr:.1f} dB < {CONVERSION_MIN_PSNR_DB:g} dB; not written")
    return psnr


def convert_fp32(model, target: Target, work: Path, check: tuple[Frame, np.ndarray]) -> tuple[Converted, float]:
    """FP32 model files for ``target`` in ``work``, checked against PyTorch; (converted, PSNR dB)."""
    from edgefusion.convert.onnx import check_ops, export_onnx
    from edgefusion.models.checkpoint import input_names

    fixed = target.fixed_shape
    output = "maps" if target.compose == "runtime" else "fused"
    exported = analyze_only(model) if output == "maps" else model
    inputs = input_names(model)
    encoding = entry(INTEGER_IO_SCALE) if target.io_dtype != "float32" and "stats" in inputs else None  # stats quantized in 1/255 steps
    if encoding:
        exported = decoding_stats(exported, INTEGER_IO_SCALE)
    if target.backend == "litert":
        from edgefusion.convert.litert import export_tflite

        path = export_tflite(exported, work / "model_fp32.tflite", fixed)
        converted = Converted({"model": path}, "NHWC", {}, "litert", output, inputs=inputs, stats_encoding=encoding)
    else:
        onnx_path = export_onnx(exported, work / "model_fp32.onnx", shape=target.shape, dynamic=fixed is None)
        check_ops(onnx_path)
        if output == "maps":
            rename_output(onnx_path, "maps")
        if target.backend == "openvino":
            from edgefusion.convert.openvino import onnx_to_openvino, save_openvino

            files = save_openvino(onnx_to_openvino(onnx_path), work / "model_fp32.xml")
            converted = Converted(files, "NCHW", {}, "openvino", output, inputs=inputs)
        else:
            converted = Converted({"model": onnx_path}, "NCHW", {}, "onnxruntime", output, inputs=inputs)
    psnr = check_conversion(f"{target.backend} FP32", converted, *check)
    return converted, psnr


def rename_output(onnx_path: Path, name: str) -> None:
    """Rename the single graph output of an ONNX file in place (``fused`` -> ``maps``)."""
    import onnx

    proto = onnx.load(str(onnx_path))
    old = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
    proto.graph.output[0].name = name
    onnx.save(proto, str(onnx_path))


def quantize_int8(target: Target, fp32: Converted, work: Path, calib: list[Frame], val: list[Frame], refs: list[np.ndarray]) -> Converted:
    """The INT8 model files of ``fp32`` for ``target``."""
    if target.backend == "openvino":
        import openvino as ov

        from edgefusion.convert.openvino import save_openvino
        from edgefusion.quantize.openvino import quantize_openvino

        def passes(candidate) -> bool:
            outs = backend_outputs(Converted(save_openvino(candidate, work / "probe.xml"), "NCHW", {}, "openvino", fp32.output, inputs=fp32.inputs), val)
            return min(accuracy.psnr_db(r[0, 0], o[0, 0]) for r, o in zip(refs, outs)) >= target.gate.min_psnr_db

        source = ov.Core().read_model(str(fp32.files["model"]))
        model, info = quantize_openvino(
            source, calib, target.quantize_ops, target.keep_float, passes, target.accuracy_control, list(zip(val, refs)), target.gate.min_psnr_db,
            to_fused=compose_maps if fp32.output == "maps" else None,
        )
        return Converted(save_openvino(model, work / "model.xml"), "NCHW", info, "openvino", fp32.output, inputs=fp32.inputs)
    if target.backend == "litert":
        from edgefusion.quantize.litert import io_quantization, quantize_tflite

        path = work / "model.tflite"
        info = quantize_tflite(fp32.files["model"], path, calib, target.keep_float, target.io_dtype, stats_scale(fp32.stats_encoding))
        io_quant = None if target.io_dtype == "float32" else io_quantization(path, target.io_dtype, fp32.output, fp32.inputs)
        return Converted({"model": path}, "NHWC", info, "litert", fp32.output, target.io_dtype, io_quant, inputs=fp32.inputs,
                         stats_encoding=fp32.stats_encoding)
    out = work / "model.onnx"
    if target.backend == "tensorrt":
        from edgefusion.quantize.tensorrt import quantize_for_tensorrt

        info = quantize_for_tensorrt(fp32.files["model"], out, calib, target.quantize_ops, target.keep_float)
        # TensorRT, not ONNX Runtime, runs this model: check the arithmetic its Q/DQ nodes specify, not the host CPU's int8 kernels
        return Converted({"model": out}, "NCHW", info, "onnxruntime", fp32.output, inputs=fp32.inputs, run_device="reference")
    else:
        from edgefusion.quantize.onnxruntime import quantize_qdq

        info = quantize_qdq(fp32.files["model"], out, calib, target.quantize_ops, target.keep_float)
    return Converted({"model": out}, "NCHW", info, "onnxruntime", fp32.output, inputs=fp32.inputs)


def _final_fp32(fp32: Converted, work: Path) -> Converted:
    """Rename FP32 files to the bundle's names (``model.*``)."""
    files = {}
    for role, path in fp32.files.items():
        dest = work / ("model" + path.suffix)
        path.replace(dest)
        files[role] = dest
    return Converted(files, fp32.layout, {"method": "none (fp32)"}, fp32.run_backend, fp32.output, inputs=fp32.inputs)


def tensor_specs(target: Target, inputs: tuple[str, ...] = ("ir", "vis"), io_quantization: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Manifest ``inputs``/``outputs``; -1 marks a dynamic dimension (inputs: multiples of the stride).

    ``compose = "runtime"`` models output ``maps``: 4 channels at 1/4 resolution.
    v2 models also take ``stats`` (1 x 6; float32 unless ``io_quantization`` quantizes it).
    """
    h, w = target.fixed_shape or (-1, -1)

    def spec(name: str, channels: int, scale: int) -> dict:
        hh, ww = (h // scale, w // scale) if h > 0 else (-1, -1)
        shape = [1, channels, hh, ww] if target.layout == "NCHW" else [1, hh, ww, channels]
        return {"name": name, "shape": shape, "dtype": target.io_dtype}

    output = spec("maps", 4, 4) if target.compose == "runtime" else spec("fused", 1, 1)
    specs = [spec("ir", 1, 1), spec("vis", 1, 1)]
    if "stats" in inputs:
        from edgefusion.runtime.frame_stats import N_STATS

        stats_dtype = target.io_dtype if "stats" in (io_quantization or {}) else "float32"
        specs.append({"name": "stats", "shape": [1, N_STATS], "dtype": stats_dtype})
    return specs, [output]


def _stderr(message: str) -> None:
    print(f"edgefusion: {message}", file=sys.stderr)


def run_quantize(
    target: Target,
    out: Path,
    model_path: Path | None = None,
    calib_dir: Path | None = None,
    val_dir: Path | None = None,
    force: bool = False,
    as_zip: bool = False,
    c_array: bool = False,
    log=print,
    warn=_stderr,
    max_val: int | None = None,
) -> tuple[Path, dict]:
    """Build the bundle of ``target`` at ``out``; returns (bundle path, accuracy report).

    ``log`` gets progress lines, ``warn`` the one-line note on the calibration frames (stderr by default);
    ``max_val``: validate on at most that many pairs, spread over the folder (default: every pair).
    """
    if target.precision == "fp16":
        raise UserError(f"target {target.name}: fp16 bundles are not built by edgefusion quantize (use int8 or fp32; TensorRT picks FP16 for float layers itself)")
    check_bundle_output(out, as_zip)  # before minutes of work
    model_path = Path(resolve_model_spec(model_path))
    if model_path.parent == DEFAULT_MODEL.parent and not model_path.is_file():
        raise UserError(f"the shipped student {model_path} is missing from this installation; pass --model CKPT")
    model, payload = load_student(model_path)
    float_modules = tuple(m for m in FLOAT_MODULES.get(payload["architecture"], ()) if m not in target.keep_float)
    target = dataclasses.replace(target, keep_float=tuple(target.keep_float) + float_modules)
    stride = int(getattr(model, "stride", 1))
    check_shape(target, model)
    if target.compose == "runtime" and stride % 4:
        raise UserError(f"target {target.name}: compose = \"runtime\" needs a model stride that is a multiple of 4, got {stride}")
    calib_pairs, note = calibration_pairs(calib_dir, target.calibration_samples, target.name, SAMPLES)
    val_pairs = dataset_pairs(val_dir or SAMPLES, "validation")
    if max_val is not None:
        val_pairs = select(val_pairs, max_val)
    calib = load_frames(calib_pairs, target.shape, "calibration frames")
    val = load_frames(val_pairs, target.shape, "validation frames")
    warn_if_not_meaningful(provenance_of(payload), model_path.name)  # notes only once every frame loaded:
    if target.precision == "int8":  # a bad --calib/--val is the only line
        warn(note)
    refs = torch_outputs(model, val)
    with work_folder("edgefusion-quantize-") as work:
        log(f"converting {model_path.name} for {target.backend} ({target.precision}, {'fixed ' + 'x'.join(map(str, target.shape)) if target.fixed_shape else 'dynamic shape'})")
        with quiet():  # third-party notes a user cannot act on (edgefusion.quiet)
            fp32, conversion_psnr = convert_fp32(model, target, work, (val[0], refs[0]))
            if target.precision == "int8":
                log(f"quantizing on {len(calib)} calibration frame(s)")
                final = quantize_int8(target, fp32, work, calib, val, refs)
            else:
                final = _final_fp32(fp32, work)
            outs = backend_outputs(final, val)
        frames = [accuracy.Outputs(f.ir[0, 0], f.vis[0, 0], r[0, 0], o[0, 0]) for f, r, o in zip(val, refs, outs)]
        report = accuracy.compare(frames)
        report["gate"] = accuracy.gate_summary(report, target.gate)
        if target.precision == "int8" and not final.quantization.get("int8_layers"):
            report["gate"]["failures"].append("no layer is left in INT8 (the model is effectively float)")
            report["gate"]["passed"] = False
        report["fp32_conversion_psnr_db"] = round(conversion_psnr, 3)
        report["checked_with"] = final.run_backend + (f" ({final.run_device})" if final.run_device else "")
        if not report["gate"]["passed"] and not force:
            accuracy.raise_gate(target.name, report["gate"]["failures"])
        manifest = build_manifest(target, stride, model_path, payload, final.quantization, report, len(calib), final.io_quantization, final.inputs,
                                  final.stats_encoding)
        path = write_bundle(out, final.files, manifest, as_zip=as_zip, derive=bundle_c_arrays if c_array else None)
    return path, report


def build_manifest(
    target: Target, stride: int, model_path: Path, payload: dict, quantization: dict, report: dict, n_calib: int,
    io_quantization: dict | None = None, model_inputs: tuple[str, ...] = ("ir", "vis"), stats_encoding: dict | None = None,
) -> dict:
    """The manifest of a bundle (every key but ``files`` and ``sha256``); ``io_quantization`` for integer I/O;
    ``model_inputs`` the model's input names (``stats`` for v2 students); ``stats_encoding`` when it takes them encoded."""
    inputs, outputs = tensor_specs(target, model_inputs, io_quantization)
    quantization = dict(quantization)
    if target.precision == "int8":
        quantization.setdefault("calibration_frames", n_calib)
    manifest = {
        "schema": 1,
        "edgefusion_version": __version__,
        "backend": target.backend,
        "target": target.name,
        "precision": target.precision,
        "inputs": inputs,
        "outputs": outputs,
        "layout": target.layout,
        "io_dtype": target.io_dtype,
        "value_range": [0.0, 1.0],
        "stride": stride,
        "fixed_shape": list(target.fixed_shape) if target.fixed_shape else None,
        "compose": target.compose,
        "color": {"fuse": "BT.601 luma Y", "chroma": "restored from the visible image's CbCr"},
        "preprocessing": {"thermal_stretch": [preprocess.DEFAULT_STRETCH.low, preprocess.DEFAULT_STRETCH.high]},
        "model": {
            "file": model_path.name,
            "sha256": sha256_file(model_path),
            "architecture": payload.get("architecture"),
            "config": payload.get("config", {}),
            "training": payload.get("metadata", {}),
            "provenance": provenance_of(payload),
        },
        "quantization": quantization,
        "accuracy": report,
        "latency_budget": {"shape": list(target.latency_shape), "p90_ms": target.latency_p90_ms},
    }
    if io_quantization is not None:
        manifest["io_quantization"] = io_quantization
    if stats_encoding is not None:
        manifest["stats_encoding"] = stats_encoding
    return manifest
