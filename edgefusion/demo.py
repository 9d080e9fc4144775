"""The README's main job on the embedded default: fuse, quantize, benchmark, report.

Steps (all on the package's own data, nothing else needed):

1. fuse the sample pairs (:data:`edgefusion.resources.SAMPLES`) with the
   shipped student checkpoint (PyTorch FP32) -> ``OUT/fused/<name>.png``;
   when the LD-Lite teacher's weights are available locally (``teacher``,
   else ``../shared/models/ld-lite/final.pt``), also with the teacher, shown
   beside the student;
2. build two OpenVINO bundles of the student: the ``x86`` target (INT8,
   NNCF) and the ``quantize/x86-fp32.toml`` recipe (FP32 reference) ->
   ``OUT/bundles/{x86-int8,x86-fp32}``;
3. score the student, both bundles and the classical baselines on the
   samples with the fusion metrics;
4. benchmark both bundles at 640x480 and 1920x1080 -> ``OUT/latency.png``;
5. write ``OUT/report.html`` (fused images, metrics table, latency plot)
   and ``OUT/summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgefusion import evaluate
from edgefusion.errors import UserError
from edgefusion.fusers import open_fuser
from edgefusion.runtime.frame import fuse_arrays
from edgefusion.io.atomic import write_text
from edgefusion.io.images import write_image
from edgefusion.io.pairs import find_pairs, read_pair
from edgefusion.resources import DEFAULT_MODEL, SAMPLES, resource_dir

BENCH_SIZES = ((640, 480), (1920, 1080))
#: Untimed frames per size and bundle before the timed ones.
BENCH_WARMUP = 5
BASELINES = ("max", "laplacian")


def find_teacher(spec: str | Path | None = None) -> Path | None:
    """``spec``, else the LD-Lite weights in ``../shared/models/ld-lite/`` (of the working directory or the checkout), else None."""
    if spec:
        return Path(spec)
    for root in (Path.cwd().parent, Path(__file__).resolve().parents[2]):
        candidate = root / "shared" / "models" / "ld-lite" / "final.pt"
        if candidate.is_file():
            return candidate
    return None


def open_teacher(path: Path):
    """A fuser of an imported LD-Lite checkpoint or of the authors' raw LD-Lite weights; UserError for any other model."""
    from edgefusion.models.checkpoint import FORMAT, TorchFuser, model_from_payload
    from edgefusion.models.imports import import_ld_lite

    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not loadable: the importer reports why in one line
        payload = None
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        if payload.get("architecture") != "ld-lite":
            raise UserError(f"--teacher {path} holds a {payload.get('architecture')!r} model; the demo's teacher is LD-Lite "
                            "(the authors' final.pt or its 'edgefusion import ld-lite' checkpoint)")
        return TorchFuser.from_payload(payload, path)  # read once: the payload above
    return TorchFuser(model_from_payload(import_ld_lite(path), str(path)), "LD-Lite")


def run_demo(out: Path, runs: int = 30, log=print, teacher: str | Path | None = None) -> dict:
    """Run the whole product on the embedded default; returns the summary written to ``summary.json``."""
    from edgefusion.bench import bench_bundle, check_runs, plot_latency
    from edgefusion.quantize.pipeline import run_quantize
    from edgefusion.report import write_report
    from edgefusion.targets import load_target

    check_runs(runs, BENCH_WARMUP)
    out = Path(out)
    teacher_path = find_teacher(teacher)
    teacher_fuser = open_teacher(teacher_path) if teacher_path else None
    pairs = find_pairs(SAMPLES)
    student = open_fuser(DEFAULT_MODEL)
    log(f"1/5 fusing {len(pairs)} sample pairs with the shipped student{' and the LD-Lite teacher' if teacher_fuser else ''} -> {out / 'fused'}")
    strips, student_fused = [], {}
    for pair in pairs:
        ir, vis = read_pair(pair)
        fused = student_fused[pair.name] = fuse_arrays(student, ir, vis)
        write_image(out / "fused" / f"{pair.name}.png", fused)
        if teacher_fuser is None:
            strips.append((f"{pair.name}: IR | visible | fused ({DEFAULT_MODEL.stem})", evaluate.grid_strip(ir, vis, fused)))
        else:
            taught = fuse_arrays(teacher_fuser, ir, vis)
            strips.append((f"{pair.name}: IR | visible | LD-Lite teacher | {DEFAULT_MODEL.stem} (student)", evaluate.grid_strip(ir, vis, taught, more=(fused,))))

    log("2/5 quantizing for the x86 target (OpenVINO INT8) and building the FP32 reference bundle")
    bundles = {
        "x86-int8": load_target("x86"),
        "x86-fp32": load_target(str(resource_dir("quantize") / "x86-fp32.toml")),
    }
    for name, target in bundles.items():
        # the calibration note goes to the demo's log: the demo has no --calib to act on it
        indented = lambda m: log(f"    {m}")  # noqa: E731
        run_quantize(target, out / "bundles" / name, model_path=DEFAULT_MODEL, log=indented, warn=indented)

    log("3/5 scoring student, bundles and baselines on the samples")
    fused_by = {f"{DEFAULT_MODEL.stem} (PyTorch FP32)": lambda pair, ir, vis: student_fused[pair.name]}  # fused in step 1
    specs = {f"{name} bundle": str(out / "bundles" / name) for name in bundles}
    specs.update({f"{name} (classical)": name for name in BASELINES})
    for label, spec in specs.items():
        fused_by[label] = lambda pair, ir, vis, f=open_fuser(spec): fuse_arrays(f, ir, vis)
    metric_rows = []
    for label, fused_for in fused_by.items():
        result = evaluate.evaluate(pairs, fused_for, progress=False)
        metric_rows.append({"method": label, **{k: round(v, 4) for k, v in result.mean.items()}})

    log(f"4/5 benchmarking both bundles at {', '.join(f'{w}x{h}' for w, h in BENCH_SIZES)} ({runs} runs each)")
    latency = [bench_bundle(out / "bundles" / name, BENCH_SIZES, runs=runs, warmup=BENCH_WARMUP) for name in bundles]
    plot_latency(latency, out / "latency.png")

    log(f"5/5 writing {out / 'report.html'}")
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text(encoding="utf-8"))
    notes = f"Model: {DEFAULT_MODEL.name}. {meta['how_trained']['summary']} {meta.get('provenance', {}).get('attribution', '')} " + (
        f"Teacher shown: LD-Lite ({teacher_path.name})." if teacher_fuser else
        "LD-Lite teacher not shown: its weights were not found (../shared/models/ld-lite/final.pt); pass --teacher PATH.")
    write_report(out / "report.html", "edgefusion demo: shipped student on the TNO samples",
                 images=strips, metrics=metric_rows, latency=latency, notes=notes)
    summary = {
        "metrics": metric_rows,
        "latency": [r.to_json() for r in latency],
        "report": str(out / "report.html"),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
