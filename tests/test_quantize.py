"""``edgefusion quantize``: every target's bundle runs on its backend and stays close to PyTorch FP32.

A small random-init student (weights perturbed so the maps vary across the
frame) is quantized on two package sample pairs at 64x96 and validated on the
other two. Expectations are computed here independently: PSNR from the mean
squared error against the PyTorch output, the Q/DQ structure from the ONNX graph.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgefusion.cli import main
from edgefusion.resources import SAMPLES
from edgefusion.runtime.bundle import load_bundle
from edgefusion.targets import load_target

pytest.importorskip("torch")
from quantize_bundles import NOISE, PREBUILT, SHAPE, quantize_cli  # noqa: E402  (fixtures student, splits, prebuilt, built: conftest.py)


@pytest.fixture(scope="module")
def student_v2(tmp_path_factory) -> tuple[Path, object]:
    """A perturbed v2 student (``student-ctx``: inputs ir, vis, stats)."""
    from runtime_models import perturbed_student

    path = tmp_path_factory.mktemp("ckpt") / "ctx.pt"
    return path, perturbed_student(path, seed=0, architecture="student-ctx")


def _quantize(student, splits, out: Path, target: str, *extra: str) -> int:
    return quantize_cli(student[0], splits, out, target, *extra)


def _frames(val: Path):
    from edgefusion.io.pairs import find_pairs
    from edgefusion.quantize.calibration import load_frame

    return [load_frame(p, (64, 96)) for p in find_pairs(val)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _check_bundle_against_torch(bundle_path: Path, student, val: Path, run_backend: str | None = None, device: str | None = None) -> list[float]:
    """PSNR of the bundle vs the PyTorch student per validation frame. v2 students get the statistics the bundle's
    model gets: those of the whole pair through the bare backend, those of the (cropped) frame through the Fuser."""
    from runtime_models import torch_reference

    from edgefusion.runtime import Fuser
    from edgefusion.runtime.backends import open_backend
    from edgefusion.runtime.frame_stats import frame_stats

    bundle = load_bundle(bundle_path)
    m = bundle.manifest
    v2 = bundle.inputs == ("ir", "vis", "stats")
    if run_backend is None:  # the device runtime as users run it (numpy composition for analyze-only bundles)
        fuser = Fuser.open(bundle_path, threads=1)
        run = lambda f: fuser.fuse_planes(f.ir[0, 0], f.vis[0, 0])  # noqa: E731
        stats_of = lambda f: frame_stats(f.ir[0, 0], f.vis[0, 0])[None]  # noqa: E731
    else:
        engine = open_backend(run_backend, bundle.files, layout=m["layout"], io_dtype=m["io_dtype"], io_quantization=m.get("io_quantization"),
                              inputs=bundle.inputs, stats_encoding=bundle.stats_encoding, device=device)
        run = lambda f: engine.run(f.ir, f.vis, stats=f.stats if v2 else None)[0, 0]  # noqa: E731
        stats_of = lambda f: f.stats  # noqa: E731
    return [_psnr(torch_reference(student[1], f.ir, f.vis, stats_of(f) if v2 else None)[0, 0], run(f)) for f in _frames(val)]


@pytest.mark.parametrize("target, backend, files", [
    ("x86", "openvino", {"model": "model.xml", "weights": "model.bin"}),
    ("arm", "litert", {"model": "model.tflite"}),
    ("onnx", "onnxruntime", {"model": "model.onnx"}),
])
def test_target_bundle_runs_on_its_backend_above_the_gate(built, student, splits, target, backend, files):
    out = built(target)
    manifest = load_bundle(out).manifest
    assert (manifest["backend"], manifest["precision"], manifest["files"]) == (backend, "int8", files)
    assert manifest["model"]["architecture"] == "student" and manifest["model"]["training"]["stage"] == "test"
    assert manifest["quantization"]["int8_layers"], "no layer was quantized"
    assert manifest["accuracy"]["gate"]["passed"] and manifest["accuracy"]["frames"] == 2
    gate = load_target(target).gate.min_psnr_db
    psnrs = _check_bundle_against_torch(out, student, splits[1])
    assert min(psnrs) >= gate
    assert manifest["accuracy"]["psnr_db"]["min"] == pytest.approx(min(psnrs), abs=0.05)
    if target == "arm":
        assert manifest["layout"] == "NHWC" and manifest["fixed_shape"] == [64, 96]
        assert manifest["inputs"][0]["shape"] == [1, 64, 96, 1]
    else:
        assert manifest["fixed_shape"] is None and manifest["inputs"][0]["shape"] == [1, 1, -1, -1]
    if target == "x86":  # analyze-only model: the runtime composes the full-resolution result
        assert manifest["compose"] == "runtime" and manifest["outputs"] == [{"name": "maps", "shape": [1, 4, -1, -1], "dtype": "float32"}]
    else:
        assert manifest["compose"] == "model" and manifest["outputs"][0]["name"] == "fused"


def test_jetson_qdq_graph_is_tensorrt_ready_and_accurate(built, student, splits):
    import onnx
    from onnx import numpy_helper

    out = built("jetson")
    bundle = load_bundle(out)
    assert bundle.manifest["backend"] == "tensorrt" and bundle.manifest["fixed_shape"] == [64, 96]
    model = onnx.load(str(bundle.files["model"]))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert all(d.dim_value > 0 for i in model.graph.input for d in i.type.tensor_type.shape.dim)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero = inits[node.input[2]]
            assert zero.dtype == np.int8 and not zero.any(), node.name
    quantized_convs = 0
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        act = producer.get(conv.input[0])
        if act is None or act.op_type != "DequantizeLinear":
            continue
        quantized_convs += 1
        assert producer[act.input[0]].op_type == "QuantizeLinear"  # a Q/DQ pair on the activation
        weight_dq = producer[conv.input[1]]
        weight, scale = inits[weight_dq.input[0]], inits[weight_dq.input[1]]
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],)  # per output channel
        assert len(conv.input) < 3 or conv.input[2] in inits  # float bias, not quantized
    assert quantized_convs >= 5
    # checked as TensorRT computes it (Q/DQ arithmetic), not with the host CPU's int8 kernels
    assert bundle.manifest["accuracy"]["checked_with"] == "onnxruntime (reference)"
    psnrs = _check_bundle_against_torch(out, student, splits[1], run_backend="onnxruntime", device="reference")
    assert min(psnrs) >= load_target("jetson").gate.min_psnr_db


def test_qdq_checker_rejects_asymmetric_graphs(built):
    import onnx

    from edgefusion.convert.tensorrt import check_explicit_quantization

    assert check_explicit_quantization(onnx.load(str(load_bundle(built("jetson")).files["model"]))) == []
    # the onnx target's graph has uint8 asymmetric activations and a dynamic shape
    problems = check_explicit_quantization(onnx.load(str(load_bundle(built("onnx")).files["model"])))
    assert any("zero point" in p for p in problems) and any("dynamic shape" in p for p in problems)


def test_build_engine_without_tensorrt_prints_trtexec_and_adopts_an_engine(tmp_path, built, capsys):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is importable here; the engine build is a device test")
    out = tmp_path / "jetson"
    shutil.copytree(built("jetson"), out)
    capsys.readouterr()
    assert main(["build-engine", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"trtexec --onnx={out}/model.onnx --saveEngine=model.engine" in text and "--engine model.engine" in text
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx"]  # nothing written
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ftrt" + bytes(range(256)))  # binary, as a plan is (TensorRT 8/10 plans start with ftrt)
    assert main(["build-engine", str(out), "--engine", str(engine)]) == 0
    bundle = load_bundle(out)
    assert bundle.manifest["files"] == {"model": "model.engine", "onnx": "model.onnx"}
    assert bundle.files["model"].read_bytes() == engine.read_bytes() and "prebuilt" in bundle.manifest["engine"]["built_with"]
    capsys.readouterr()
    assert main(["build-engine", str(built("onnx"))]) == 2
    assert "build-engine needs a tensorrt bundle" in capsys.readouterr().err


def test_build_engine_writes_the_c_arrays_again_around_the_engine(tmp_path):
    """A --c-array bundle: the arrays embed the engine (and a manifest naming it), not the ONNX they were written with."""
    from edgefusion.embed.c_arrays import bundle_c_arrays
    from edgefusion.runtime.bundle import write_bundle

    (tmp_path / "model.onnx").write_bytes(b"onnx graph")
    manifest = {"edgefusion_version": "0.1.0", "backend": "tensorrt", "target": "jetson", "precision": "int8", "outputs": ["fused"],
                "layout": "NCHW", "io_dtype": "float32", "value_range": [0.0, 1.0], "stride": 8, "fixed_shape": [16, 16]}
    out = write_bundle(tmp_path / "b", {"model": tmp_path / "model.onnx"}, manifest, derive=bundle_c_arrays)
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ftrt" + bytes(range(256)))
    assert main(["build-engine", str(out), "--engine", str(engine)]) == 0
    bundle = load_bundle(out)
    table = _c_array_files(out / "bundle_data.c")
    assert set(table) == {"manifest.json", "model.engine", "model.onnx"} and table["model.engine"] == engine.read_bytes()
    assert json.loads(table["manifest.json"])["files"] == bundle.manifest["files"] == {"model": "model.engine", "onnx": "model.onnx"}


@pytest.mark.parametrize("kind, message", [
    ("empty", "is empty"),
    ("bundle_zip", "is a ZIP archive (a bundle or a PyTorch checkpoint)"),
    ("onnx", "is an ONNX model"),
    ("tflite", "is a TFLite model"),
    ("trtexec_log", "is a text file"),
    ("json", "is a text file"),
])
def test_build_engine_refuses_a_prebuilt_engine_that_is_something_else(tmp_path, built, capsys, kind, message):
    out = tmp_path / "jetson"
    shutil.copytree(built("jetson"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    engine = tmp_path / "model.engine"
    if kind == "bundle_zip":
        shutil.make_archive(str(tmp_path / "bundle"), "zip", out)
        (tmp_path / "bundle.zip").rename(engine)
    elif kind == "onnx":  # the bundle's own model, the file trtexec reads
        shutil.copyfile(out / "model.onnx", engine)
    else:
        engine.write_bytes({"empty": b"", "tflite": b"\x1c\x00\x00\x00TFL3" + bytes(24), "trtexec_log": b"&&&& RUNNING TensorRT.trtexec [TensorRT v100300]\n[I] === Model Options ===\n",
                            "json": b'{"engine": "model.engine"}\n'}[kind])
    capsys.readouterr()
    assert main(["build-engine", str(out), "--engine", str(engine)]) == 2
    err = capsys.readouterr().err
    assert err == f"edgefusion: {engine} {message}, not a serialized TensorRT engine (trtexec --saveEngine writes one)\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the bundle is untouched


def test_impossible_gate_exits_3_without_bundle_and_force_writes_it(tmp_path, student, splits, capsys):
    profile = tmp_path / "strict.toml"
    text = (Path(load_target("onnx").source).read_text()).replace("min_psnr_db = 40.0", "min_psnr_db = 500.0")
    assert "500.0" in text
    profile.write_text(text)
    out = tmp_path / "strict"
    assert _quantize(student, splits, out, str(profile)) == 3
    assert "misses the accuracy gate" in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert _quantize(student, splits, out, str(profile), "--force") == 0
    assert load_bundle(out).manifest["accuracy"]["gate"]["passed"] is False


def _c_array_files(source: Path) -> dict[str, bytes]:
    """{name: bytes} of the files a bundle_data.c holds."""
    text = source.read_text()
    arrays = {m.group(1): bytes(int(v) for v in m.group(2).split(","))
              for m in re.finditer(r"unsigned char EF_ALIGNED (file\d+)\[\] = \{([\d,\s]+)\};", text)}
    return {name: arrays[var][: int(size)] for name, var, size in re.findall(r'\{"([^"]+)", (file\d+), (\d+)u\}', text)}


def test_zip_and_c_array(tmp_path, student, splits):
    out = tmp_path / "fw"
    assert _quantize(student, splits, out, "arm", "--zip", "--c-array") == 0
    bundle = load_bundle(tmp_path / "fw.zip")  # the array sources are hashed by the manifest like every file
    table = _c_array_files(bundle.root / "bundle_data.c")
    model = bundle.manifest["files"]["model"]
    assert set(table) == {"manifest.json", model}
    assert table[model] == bundle.files["model"].read_bytes()
    embedded = json.loads(table["manifest.json"])  # the bundle's manifest, hashing the model files only
    assert embedded["sha256"] == {model: bundle.manifest["sha256"][model]}
    own = ("sha256", "manifest_sha256")  # the embedded manifest has its own file list, so its own seal
    assert {k: v for k, v in embedded.items() if k not in own} == {k: v for k, v in bundle.manifest.items() if k not in own}
    assert "extern const ef_file edgefusion_bundle_files[];" in (bundle.root / "bundle_data.h").read_text()


def test_max_val_validates_on_that_many_of_the_pairs(tmp_path, student, splits):
    from edgefusion.quantize.pipeline import run_quantize
    from edgefusion.resources import resource_dir
    from edgefusion.targets import parse_shape

    target = load_target(str(resource_dir("quantize") / "x86-fp32.toml")).with_shape(parse_shape(SHAPE))
    assert len(list((splits[1] / "ir").iterdir())) == 2
    _, report = run_quantize(target, tmp_path / "b", model_path=student[0], calib_dir=splits[0], val_dir=splits[1], max_val=1,
                             log=lambda m: None, warn=lambda m: None)
    assert report["frames"] == 1 and load_bundle(tmp_path / "b").manifest["accuracy"]["frames"] == 1


@pytest.mark.parametrize("case", ["target", "not_student", "empty_calib", "shape", "tiny_shape", "tiny_fixed_shape"])
def test_bad_input_is_one_line_exit_2_without_bundle(tmp_path, student, splits, capsys, monkeypatch, case):
    from edgefusion.models import provenance

    monkeypatch.setattr(provenance, "_WARNED", set())  # the test model's once-per-process provenance note is due
    out = tmp_path / "out"
    # tiny: 8x8 is one stride; the accuracy check's SSIM (11x11 Gaussian window) needs 11 pixels, 16 in strides
    args = {"target": ["--target", "pdp11"], "shape": ["--shape", "60x90"], "tiny_shape": ["--shape", "8x8"],
            "tiny_fixed_shape": ["--target", "arm", "--shape", "16x8"]}.get(case, [])
    calib = str(splits[0])
    model = str(student[0])
    if case == "not_student":
        junk = tmp_path / "junk.pt"
        junk.write_bytes(b"not a checkpoint")
        model = str(junk)
    if case == "empty_calib":
        (tmp_path / "empty" / "ir").mkdir(parents=True)
        (tmp_path / "empty" / "vi").mkdir()
        calib = str(tmp_path / "empty")
    argv = ["quantize", "--target", "onnx", "--model", model, "--calib", calib, "--val", str(splits[1]), "--shape", SHAPE, "--out", str(out)]
    code = main(argv + args)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edgefusion: ") and err.count("\n") == 1
    assert not out.exists()
    if case.startswith("tiny"):
        assert "too small; quantize needs at least 16x16" in err


def test_teacher_checkpoint_is_not_a_student(tmp_path, student):
    import torch

    from edgefusion.errors import UserError
    from edgefusion.models import register
    from edgefusion.models.checkpoint import model_payload, save_checkpoint
    from edgefusion.quantize.pipeline import load_student

    register("tiny-teacher", lambda config: torch.nn.Conv2d(2, 1, 1))
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, model_payload(torch.nn.Conv2d(2, 1, 1), "tiny-teacher", {}))
    with pytest.raises(UserError, match="edge targets need a student checkpoint"):
        load_student(path)


@pytest.mark.parametrize("target", ["x86", "arm", "onnx"])
def test_fuse_runs_each_bundle_end_to_end(tmp_path, built, student, target):
    from edgefusion.io.images import read_image

    # the arm bundle has a fixed shape: build it for the whole 270x360 frame (padded to 272x360), since the
    # student's whole-frame context makes a tiled frame differ from the whole frame
    out = built(target, "272x360" if target == "arm" else SHAPE)
    ir, vis = SAMPLES / "ir" / "tno_19.png", SAMPLES / "vi" / "tno_19.png"
    fused_path = tmp_path / "fused.png"
    assert main(["fuse", "--model", str(out), "--ir", str(ir), "--vis", str(vis), "-o", str(fused_path)]) == 0
    fused = read_image(fused_path)
    assert fused.shape == read_image(vis).shape[:2] and fused.dtype == np.uint8
    reference = tmp_path / "ref.png"
    assert main(["fuse", "--model", str(student[0]), "--ir", str(ir), "--vis", str(vis), "-o", str(reference)]) == 0
    diff = np.abs(fused.astype(int) - read_image(reference).astype(int))
    assert np.mean(diff) < 1.0  # INT8 bundle vs PyTorch checkpoint, 8-bit levels


def test_quantize_names_its_calibration_frames_and_prints_no_third_party_noise(prebuilt, splits):
    err = prebuilt[1]
    assert [n for n in NOISE if n in err] == []
    names = ", ".join(sorted(p.stem for p in (splits[0] / "ir").iterdir()))
    notes = [line for line in err.splitlines() if "calibrating on" in line]
    assert len(notes) == len(PREBUILT)
    for note, (target, _) in zip(notes, PREBUILT):  # 2 pairs given, every profile asks for more: a warning naming them
        asks = load_target(target).calibration_samples
        assert note == (f"edgefusion: warning: calibrating on 2 of the 2 pair(s) in {splits[0]}: {names}; the {target} profile "
                        f"asks for {asks}: pass --calib DIR with at least {asks} pairs like your scenes")


def test_calibration_note_without_warning_when_the_folder_has_enough_pairs(splits):
    from edgefusion.quantize.calibration import calibration_pairs

    pairs, note = calibration_pairs(splits[0], 1, "t", SAMPLES)
    assert len(pairs) == 1 and note == f"calibrating on 1 of the 2 pair(s) in {splits[0]}: {pairs[0].name}"
    pairs, note = calibration_pairs(None, 4, "t", SAMPLES)
    assert len(pairs) == 4 and note.startswith("calibrating on 4 of the 4 pair(s) in the package samples")


def test_single_pair_fuse_prints_one_line_naming_what_it_wrote(tmp_path, built):
    ir, vis = SAMPLES / "ir" / "tno_19.png", SAMPLES / "vi" / "tno_19.png"
    out = tmp_path / "f.png"
    bundle = built("arm")
    result = subprocess.run([sys.executable, "-m", "edgefusion", "fuse", "--model", str(bundle), "--ir", str(ir), "--vis", str(vis),
                             "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and out.is_file()
    assert result.stderr.splitlines() == [f"wrote {out} (tno_19 fused by {bundle.name} (litert int8 on CPU (ai_edge_litert, XNNPACK)))"]


def test_fuse_refuses_a_tampered_bundle(tmp_path, built, capsys):
    out = tmp_path / "bundle"
    shutil.copytree(built("onnx"), out)
    with open(out / "model.onnx", "ab") as handle:
        handle.write(b"\0")
    ir, vis = SAMPLES / "ir" / "tno_19.png", SAMPLES / "vi" / "tno_19.png"
    capsys.readouterr()
    code = main(["fuse", "--model", str(out), "--ir", str(ir), "--vis", str(vis), "-o", str(tmp_path / "f.png")])
    assert code == 2 and "SHA-256 mismatch for model.onnx" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_accuracy_report_and_gate_with_known_values():
    from edgefusion.quantize.accuracy import Outputs, compare, gate_failures
    from edgefusion.targets import Gate

    rng = np.random.default_rng(0)
    ir, vis = rng.random((2, 48, 64), dtype=np.float32)
    reference = np.clip(0.5 * (ir + vis), 0.1, 0.9).astype(np.float32)
    same = compare([Outputs(ir, vis, reference, reference.copy())])
    assert same["psnr_db"]["min"] == 200.0 and same["ssim"]["min"] == pytest.approx(1.0)
    assert all(entry["relative_drop"] == 0 for entry in same["metrics"].values())
    shifted = compare([Outputs(ir, vis, reference, reference - np.float32(0.01))])
    assert shifted["psnr_db"]["min"] == pytest.approx(40.0, abs=1e-3)  # MSE 1e-4
    sd = shifted["metrics"]["SD"]
    assert sd["relative_drop"] == pytest.approx(0.0, abs=1e-3)  # a constant shift keeps the standard deviation
    assert gate_failures(shifted, Gate(min_psnr_db=39.0)) == []
    failures = gate_failures(shifted, Gate(min_psnr_db=41.0, min_ssim=1.5, max_relative_drop={"SD": -1.0, "XYZ": 0.1}))
    assert len(failures) == 4 and "PSNR 40.00 dB < 41 dB" in failures[0] and "XYZ is not reported" in failures[3]


@pytest.mark.parametrize("reference, candidate, drop", [
    (2.0, 1.5, 0.25), (-2.0, -2.5, 0.25), (4.0, 5.0, -0.25),  # (ref - cand) / |ref|, hand values
    (0.0, 0.0, 0.0), (0.0, 0.3, -1.0), (0.0, -0.3, 1.0),     # a zero reference: the sign, a whole value, never infinite
])
def test_relative_drop_is_finite_with_hand_values(reference, candidate, drop):
    from edgefusion.quantize.accuracy import relative_drop

    assert relative_drop(reference, candidate) == pytest.approx(drop)


def test_a_report_of_flat_frames_is_strict_json():
    """A constant reference (its detail metrics exactly 0) against a textured candidate: the report parses as RFC 8259 JSON."""
    import json

    from edgefusion.quantize.accuracy import Outputs, compare

    flat = np.full((48, 64), 0.5, dtype=np.float32)
    textured = flat + np.float32(0.01) * (np.indices(flat.shape).sum(axis=0) % 2)
    report = compare([Outputs(flat, flat, flat, textured)])
    assert report["metrics"]["SF"]["fp32"] == 0 and report["metrics"]["SF"]["relative_drop"] == -1.0  # the candidate gained detail
    json.loads(json.dumps(report, allow_nan=False), parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))


def test_manifests_are_strict_json():
    from edgefusion.runtime.manifest_seal import sealed_manifest_text

    assert b"Infinity" not in sealed_manifest_text({"accuracy": {"psnr_db": {"min": 200.0}}})
    with pytest.raises(ValueError):
        sealed_manifest_text({"accuracy": {"metrics": {"SF": {"relative_drop": float("-inf")}}}})


def test_cover_crop_keeps_aspect_and_centre():
    from edgefusion.quantize.calibration import cover_crop

    plane = np.tile(np.linspace(0.0, 1.0, 200, dtype=np.float32), (100, 1))  # horizontal ramp, 100x200
    out = cover_crop(plane, (50, 50))  # scale 0.5 -> 50x100, keep the middle 50 columns
    assert out.shape == (50, 50) and out.dtype == np.float32
    assert out[0, 0] == pytest.approx(0.25, abs=0.02) and out[0, -1] == pytest.approx(0.75, abs=0.02)
    assert np.allclose(out, out[0])  # rows stay identical
    up = cover_crop(plane[:10, :20], (40, 40))  # scale 4 -> 40x80, keep the middle 40 columns
    assert up.shape == (40, 40)


def test_openvino_accuracy_control_runs_when_the_plain_result_misses_the_gate(tmp_path, student, splits):
    text = load_target("x86").source.read_text().replace("min_psnr_db = 40.0", "min_psnr_db = 99.0")
    assert "99.0" in text
    profile = tmp_path / "x86-strict.toml"
    profile.write_text(text)
    out = tmp_path / "b"
    code = _quantize(student, splits, out, str(profile), "--force")
    assert code == 0
    quantization = load_bundle(out).manifest["quantization"]
    assert quantization["accuracy_control"] is True and "quantize_with_accuracy_control" in quantization["method"]
    # layers reverted to float by accuracy control are listed as kept float, the rest as INT8
    import torch

    convs = sum(isinstance(m, torch.nn.Conv2d) for m in student[1].modules())  # the analyze network's convolutions
    assert len(quantization["int8_layers"]) + len(quantization["kept_float"]["layers"]) == convs


@pytest.mark.parametrize("target, backend, run_backend", [
    ("x86", "openvino", None),
    ("jetson", "tensorrt", "onnxruntime"),
    ("arm:int8-io", "litert", None),
])
def test_v2_student_bundles_take_stats_and_pass_the_gate(built, student_v2, splits, target, backend, run_backend):
    import onnx

    from edgefusion.io.pairs import find_pairs
    from edgefusion.io.images import read_image
    from edgefusion import preprocess
    from edgefusion.runtime.frame_stats import frame_stats

    out = built(target, model=student_v2)
    bundle = load_bundle(out)
    manifest = bundle.manifest
    assert manifest["backend"] == backend and manifest["model"]["architecture"] == "student-ctx"
    assert bundle.inputs == ("ir", "vis", "stats")
    assert manifest["inputs"][2]["name"] == "stats" and manifest["inputs"][2]["shape"] == [1, 6]
    assert manifest["model"]["provenance"]["architecture"] == "student-ctx"
    assert manifest["accuracy"]["gate"]["passed"] and manifest["quantization"]["int8_layers"]
    if target == "jetson":  # stats stay float: a fixed (1, 6) input with no Q/DQ on it
        model = onnx.load(str(bundle.files["model"]))
        assert [d.dim_value for d in model.graph.input[2].type.tensor_type.shape.dim] == [1, 6]
        assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "stats"]
        # stems and the 1/4-resolution conv stay float (their inputs mix raw and stats-normalized features),
        # so the planes are not quantized and the composition reads them as they are
        assert {"stem_ir", "stem_vis", "quarter", "eighth_in"} <= set(manifest["quantization"]["kept_float"]["modules"])
        assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in ("ir", "vis")]
        assert any(n.op_type == "Mul" and "ir" in n.input for n in model.graph.node)
    if target == "arm:int8-io":  # the statistics are int8 too, with the range [0, 1], encoded: stats * scale
        assert manifest["io_quantization"]["stats"]["scale"] == pytest.approx(1 / 255) and manifest["inputs"][2]["dtype"] == "int8"
        assert manifest["stats_encoding"] == {"scale": [1.0, 2.0, 1.0, 2.0, 5.0, 5.0]}
        _check_int8_stats_fed_by_hand(out, student_v2, splits[1], load_target(target).gate.min_psnr_db)
    else:
        assert "stats_encoding" not in manifest  # float statistics: raw, as before
    psnrs = _check_bundle_against_torch(out, student_v2, splits[1], run_backend=run_backend)
    assert min(psnrs) >= load_target(target).gate.min_psnr_db
    # calibration and validation frames carry the statistics of the whole pair, taken before the resize and crop
    frame = _frames(splits[1])[0]
    pair = find_pairs(splits[1])[0]
    planes = preprocess.prepare_pair(read_image(pair.ir), read_image(pair.vis))
    np.testing.assert_array_equal(frame.stats, frame_stats(planes.ir, planes.vis_y)[None])
    assert planes.ir.shape != frame.ir.shape[2:]


def _check_int8_stats_fed_by_hand(bundle_path: Path, student, val: Path, gate_db: float) -> None:
    """The int8 .tflite fed by hand (planes rint(x * 255) - 128, stats rint(stats * [1, 2, 1, 2, 5, 5] * 255) - 128)
    is within the gate of the PyTorch student on the RAW stats: the graph decodes the encoded statistics."""
    from ai_edge_litert.interpreter import Interpreter
    from runtime_models import torch_reference

    interpreter = Interpreter(str(load_bundle(bundle_path).files["model"]))
    interpreter.allocate_tensors()
    (ir_in, vis_in, stats_in), (fused_out,) = interpreter.get_input_details(), interpreter.get_output_details()
    int8 = lambda x: np.clip(np.rint(x * 255.0) - 128, -128, 127).astype(np.int8)  # noqa: E731
    for frame in _frames(val):
        interpreter.set_tensor(ir_in["index"], int8(frame.ir.transpose(0, 2, 3, 1)))
        interpreter.set_tensor(vis_in["index"], int8(frame.vis.transpose(0, 2, 3, 1)))
        interpreter.set_tensor(stats_in["index"], int8(frame.stats * np.array([1, 2, 1, 2, 5, 5], np.float32)))
        interpreter.invoke()
        fused = (interpreter.get_tensor(fused_out["index"]).astype(np.float32) + 128) / 255.0
        assert _psnr(torch_reference(student[1], frame.ir, frame.vis, frame.stats)[0, 0], fused[0, :, :, 0]) >= gate_db


def test_a_quantized_graph_input_reaches_only_quantized_ops(tmp_path):
    """A conv reading a graph input directly gets a Q/DQ pair on it; the other readers keep the float input."""
    import onnx
    import torch
    from runtime_models import export_onnx

    from edgefusion.quantize.calibration import Frame
    from edgefusion.quantize.onnxruntime import quantize_qdq

    class ConvPlusProduct(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, ir, vis):
            return torch.relu(self.conv(ir)) + ir * vis

    torch.manual_seed(0)
    model = ConvPlusProduct().eval()
    path = export_onnx(model, tmp_path / "m.onnx", 16, 24, dynamic=False)
    rng = np.random.default_rng(0)
    frames = [Frame(f"f{i}", *(rng.random((1, 1, 16, 24), dtype=np.float32) for _ in range(2)), np.zeros((1, 6), np.float32)) for i in range(2)]
    quantize_qdq(path, tmp_path / "q.onnx", frames, ops=("Conv",), symmetric_activations=True)
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    producer = {o: n for n in graph.node for o in n.output}
    conv = next(n for n in graph.node if n.op_type == "Conv")
    dq = producer[conv.input[0]]
    assert dq.op_type == "DequantizeLinear" and producer[dq.input[0]].input[0] == "ir"  # the conv reads quantized ir
    assert next(n for n in graph.node if n.op_type == "Mul").input[:] == ["ir", "vis"]  # the product reads float ir
