"""The README's main job: fuse, quantize, benchmark, report, for the embedded default or the user's own student and pairs.

Steps (by default on the package's own model and data, nothing else needed):

0. before any work: open the student (``model``: a shipped model's name or a
   student checkpoint, loaded as every command loads models; bundles and other
   models are refused), the LD-Lite weights when available locally
   (``teacher``, else ``../shared/models/ld-lite/final.pt``), and decode every
   pair of ``data`` (default: the sample pairs :data:`edgefusion.resources.SAMPLES`)
   once, checking it can be fused and scored;
1. fuse every pair with the student (PyTorch FP32) -> ``OUT/fused/<name>.png``;
   at most ``show`` pairs, spread evenly over the sorted names, go side by side
   into the report, with LD-Lite beside the student: labelled its teacher when
   the student's provenance says LD-Lite taught it, else a reference;
2. build two OpenVINO bundles of the student, calibrated and validated on the
   same pairs (validation: at most :data:`VAL_PAIRS` of them): the ``x86``
   target (INT8, NNCF) and the ``quantize/x86-fp32.toml`` recipe (FP32
   reference) -> ``OUT/bundles/{x86-int8,x86-fp32}``;
3. score the student, both bundles and the classical baselines on every pair
   with the fusion metrics;
4. benchmark both bundles at 640x480 and 1920x1080 -> ``OUT/latency.png``;
5. write ``OUT/report.html`` (the model's name, SHA-256, architecture and
   provenance, the pairs shown, fused images, metrics table, latency plot)
   and ``OUT/summary.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgefusion import evaluate
from edgefusion.errors import UserError
from edgefusion.fusers import open_fuser
from edgefusion.io.atomic import write_text
from edgefusion.io.images import read_image, write_image
from edgefusion.io.pairs import Pair, find_pairs, naming, read_pair
from edgefusion.models import STUDENT_ARCHITECTURES, shipped
from edgefusion.models.provenance import LD_LITE_LICENCE, LD_LITE_SOURCE, language_objective, warn_if_not_meaningful
from edgefusion.quantize.calibration import select
from edgefusion.resources import SAMPLES, resource_dir
from edgefusion.runtime.frame import PlaneFuser, fuse_arrays

BENCH_SIZES = ((640, 480), (1920, 1080))
#: Untimed frames per size and bundle before the timed ones.
BENCH_WARMUP = 5
BASELINES = ("max", "laplacian")
#: Pairs shown side by side in the report unless ``show`` says otherwise (all pairs are fused and scored).
SHOW = 8
#: Most pairs the quantization validates on, spread over the folder (its accuracy check takes about a second a frame).
VAL_PAIRS = 16
#: What ``--model`` accepts, said when refusing anything else.
TAKES = "the demo takes a student: a shipped model's name (edgefusion models) or a student checkpoint (edgefusion train student)"

#: The LD-Lite column of the side-by-side strips: (its caption label, its fuser).
Column = tuple[str, PlaneFuser]
#: The column's label when LD-Lite taught the student shown, and when it did not.
TEACHER, REFERENCE = "LD-Lite teacher", "LD-Lite (reference)"


@dataclass(frozen=True)
class Student:
    """The student shown: its fuser, its file and what its checkpoint says it is."""

    fuser: Any
    name: str  # the shipped model's name, or the path as given
    path: Path
    sha256: str
    architecture: str
    config: dict
    provenance: dict

    @property
    def label(self) -> str:
        """Short name for captions and table rows: the file's stem (a shipped model's name)."""
        return self.path.stem

    def to_json(self) -> dict:
        """The ``model`` entry of ``summary.json``."""
        return {"name": self.name, "file": str(self.path), "sha256": self.sha256, "architecture": self.architecture,
                "config": self.config, "language_objective": language_objective(self.provenance), "provenance": self.provenance}


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


def open_student(spec: str | None) -> Student:
    """The student named by ``spec`` (None: the shipped default), read as every command reads checkpoints; UserError for
    anything else. Its objective warning is left to :func:`run_demo`, after every input check."""
    from edgefusion.io.digest import sha256_file
    from edgefusion.models.checkpoint import TorchFuser, read_checkpoint
    from edgefusion.models.provenance import provenance_of

    given = spec or shipped.DEFAULT_NAME
    path = Path(shipped.resolve_model_spec(spec))
    if path.is_dir() or path.suffix.lower() == ".zip":
        kind = "folder" if path.is_dir() and not (path / "manifest.json").is_file() else "bundle"
        raise UserError(f"--model {given} is a {kind}; {TAKES}")
    try:
        payload = read_checkpoint(path)
    except UserError as exc:
        raise UserError(f"--model {given}: {exc}; {TAKES}") from None
    if payload["architecture"] not in STUDENT_ARCHITECTURES:
        raise UserError(f"--model {given} holds a {payload['architecture']!r} model; {TAKES}")
    return Student(TorchFuser.from_payload(payload, path, warn=False), shipped.shipped_name(path) or given, path, sha256_file(path),
                   payload["architecture"], payload["config"], provenance_of(payload))


def ld_lite_column(path: Path | None, student: Student) -> Column | None:
    """The LD-Lite column: :data:`TEACHER` when the student's provenance names LD-Lite as its teacher, else :data:`REFERENCE`."""
    if path is None:
        return None
    taught = (student.provenance.get("teacher") or {}).get("architecture") == "ld-lite"
    return (TEACHER if taught else REFERENCE), open_teacher(path)


def check_show(show: int) -> None:
    """UserError unless at least one pair is to be shown."""
    if show < 1:
        raise UserError(f"--show must be >= 1, got {show}")


#: What a demo writes at the top of its folder (beside ``fused/`` and ``bundles/``).
OUTPUT_FILES = ("report.html", "summary.json", "latency.png")


def clear_outputs(out: Path) -> None:
    """Remove an earlier demo's report files and fused images from ``out``, so a folder reused for other pairs or another
    model never mixes two runs (the bundles are replaced whole by the quantizer)."""
    for name in OUTPUT_FILES:
        (out / name).unlink(missing_ok=True)
    for image in (out / "fused").glob("*.png"):
        image.unlink()


def check_pairs(pairs: list[Pair], student: Student, column: Column | None, shown: list[str]) -> None:
    """Decode every pair once, before any work; UserError naming the pair when it cannot be read, scored or fused
    by the student (and, for the ``shown`` pairs, by the LD-Lite column)."""
    from edgefusion.models.checkpoint import check_min_size
    from edgefusion.progress import progress

    for pair in progress(pairs, desc="checking pairs", unit="pair", leave=False):
        ir, _ = read_pair(pair)
        fusers = [student.fuser] + ([column[1]] if column and pair.name in shown else [])
        with naming(pair):
            evaluate.check_scorable(ir, "the demo")
            for fuser in fusers:
                check_min_size(fuser.model, *ir.shape[:2], f"model {fuser.name}")


def side_by_side(name: str, ir: np.ndarray, vis: np.ndarray, fused: np.ndarray, label: str, column: Column | None) -> tuple[str, np.ndarray]:
    """(caption, strip): IR | visible (| LD-Lite) | the student's output, of one pair."""
    if column is None:
        return f"{name}: IR | visible | fused ({label})", evaluate.grid_strip(ir, vis, fused)
    caption, fuser = column
    return f"{name}: IR | visible | {caption} | {label} (student)", evaluate.grid_strip(ir, vis, fuse_arrays(fuser, ir, vis), more=(fused,))


def fuse_pairs(pairs: list[Pair], student: Student, folder: Path, shown: list[str], column: Column | None) -> list[tuple[str, np.ndarray]]:
    """Fuse every pair with the student into ``folder/<name>.png``; returns the side-by-side strips of the ``shown`` pairs."""
    from edgefusion.progress import progress

    strips = []
    for pair in progress(pairs, desc="fusing", unit="pair", leave=False):
        ir, vis = read_pair(pair)
        fused = fuse_arrays(student.fuser, ir, vis)
        write_image(folder / f"{pair.name}.png", fused)
        if pair.name in shown:
            strips.append(side_by_side(pair.name, ir, vis, fused, student.label, column))
    return strips


def bundle_targets() -> dict:
    """The demo's bundles by folder name: the x86 INT8 target and its FP32 reference recipe."""
    from edgefusion.targets import load_target

    return {"x86-int8": load_target("x86"), "x86-fp32": load_target(str(resource_dir("quantize") / "x86-fp32.toml"))}


def build_bundles(folder: Path, targets: dict, student: Student, data: Path | None, log) -> tuple[int, list[str]]:
    """Quantize the student into each of ``targets`` (:func:`bundle_targets`) on the pairs of ``data`` (None: the samples).

    Returns the validation frames and the bundles that miss their accuracy gate, one line each: the demo builds
    them anyway (a report on a student that quantizes badly is what its owner needs to see; their manifests say
    so, as ``quantize --force`` writes them).
    """
    from edgefusion.quantize.pipeline import run_quantize

    def indented(message: str) -> None:  # the calibration note goes to the demo's log: the demo has no --calib to act on it
        log(f"    {message}")

    missed = []
    for name, target in targets.items():
        _, accuracy = run_quantize(target, folder / name, model_path=student.path, calib_dir=data, val_dir=data,
                                   log=indented, warn=indented, max_val=VAL_PAIRS, force=True)
        if not accuracy["gate"]["passed"]:
            missed.append(f"{name} misses the accuracy gate of target {target.name}: {'; '.join(accuracy['gate']['failures'])}")
            indented(f"WARNING: {missed[-1]}")
    return accuracy["frames"], missed


def score_pairs(pairs: list[Pair], fused_dir: Path, bundles_dir: Path, bundles: list[str], label: str) -> list[dict]:
    """Mean metrics over every pair: the student (its outputs in ``fused_dir``), each of the ``bundles`` (folder names
    in ``bundles_dir``) and the classical baselines."""
    fused_by = {f"{label} (PyTorch FP32)": lambda pair, ir, vis: read_image(fused_dir / f"{pair.name}.png")}  # fused in step 1
    specs = {f"{name} bundle": str(bundles_dir / name) for name in bundles}
    specs.update({f"{name} (classical)": name for name in BASELINES})
    for method, spec in specs.items():
        fused_by[method] = lambda pair, ir, vis, f=open_fuser(spec): fuse_arrays(f, ir, vis)
    return [{"method": method, **{k: round(v, 4) for k, v in evaluate.evaluate(pairs, fused_for, progress=False).mean.items()}}
            for method, fused_for in fused_by.items()]


def model_lines(student: Student) -> list[str]:
    """The report's Model section: name, file, SHA-256, architecture, how it was trained, provenance."""
    prov = student.provenance
    teacher = prov.get("teacher") or {}
    lines = [f"model: {student.name} ({student.path})", f"SHA-256: {student.sha256}",
             f"architecture: {student.architecture} {json.dumps(student.config)}", f"language objective: {language_objective(prov)}",
             f"objective: {prov.get('objective', 'unknown')}"]
    summary = shipped.describe(student.label).get("how_trained", {}).get("summary") if shipped.shipped_name(student.path) else None
    if summary:
        lines.append(f"how trained: {summary}")
    if teacher:
        lines.append(f"teacher: {teacher.get('architecture', '?')} (SHA-256 {teacher.get('sha256', '?')})")
    lines.append(f"licence: {prov.get('licence', 'project licence')}")
    if prov.get("attribution"):
        lines.append(f"attribution: {prov['attribution']}")
    return lines


def column_note(path: Path | None, column: Column | None) -> str:
    """What the LD-Lite column shows, or why it is missing."""
    if column is None:
        return "LD-Lite teacher not shown: its weights were not found (../shared/models/ld-lite/final.pt); pass --teacher PATH."
    role = "this student's teacher" if column[0] == TEACHER else "not this student's teacher, shown for reference"
    return (f"{column[0]} column: LD-Lite ({path.name}), {role}; LD-Lite by the paper's authors ({LD_LITE_SOURCE['repository']}, "
            f"commit {LD_LITE_SOURCE['commit'][:7]}, {LD_LITE_LICENCE}).")


def pairs_note(where: Path, pairs: list[Pair], shown: list[str], val_frames: int) -> str:
    """Which pairs were fused, scored, shown and used by the quantization."""
    return (f"Pairs: all {len(pairs)} of {where} fused (fused/) and scored; side by side: {len(shown)} of them, spread evenly "
            f"over the sorted names: {', '.join(shown)}. The INT8 bundle is calibrated on pairs of this folder and both bundles "
            f"are validated on {val_frames} of them.")


def run_demo(out: Path, runs: int = 30, log=print, teacher: str | Path | None = None, model: str | None = None,
             data: Path | None = None, show: int = SHOW) -> dict:
    """Run the whole product on ``model`` (default: the shipped student) and the pairs of ``data`` (default: the samples);
    returns the summary written to ``summary.json``."""
    from edgefusion.bench import bench_bundle, check_runs, plot_latency
    from edgefusion.report import write_report

    check_runs(runs, BENCH_WARMUP)
    check_show(show)
    out, where = Path(out), Path(data or SAMPLES)
    student = open_student(model)
    teacher_path = find_teacher(teacher)
    column = ld_lite_column(teacher_path, student)
    pairs = find_pairs(where)
    shown = [pair.name for pair in select(pairs, show)]
    check_pairs(pairs, student, column, shown)
    warn_if_not_meaningful(student.provenance, student.path.name)  # only now: a bad input is the only line
    clear_outputs(out)

    log(f"1/5 fusing {len(pairs)} pairs of {where} with {student.name}{f' ({column[0]} beside it)' if column else ''} -> {out / 'fused'}")
    strips = fuse_pairs(pairs, student, out / "fused", shown, column)

    log("2/5 quantizing for the x86 target (OpenVINO INT8) and building the FP32 reference bundle")
    targets = bundle_targets()
    val_frames, missed = build_bundles(out / "bundles", targets, student, data, log)

    log(f"3/5 scoring student, bundles and baselines on the {len(pairs)} pairs")
    metric_rows = score_pairs(pairs, out / "fused", out / "bundles", list(targets), student.label)

    log(f"4/5 benchmarking both bundles at {', '.join(f'{w}x{h}' for w, h in BENCH_SIZES)} ({runs} runs each)")
    latency = [bench_bundle(out / "bundles" / name, BENCH_SIZES, runs=runs, warmup=BENCH_WARMUP) for name in targets]
    plot_latency(latency, out / "latency.png")

    log(f"5/5 writing {out / 'report.html'}")
    title = f"edgefusion demo: {'shipped student' if model is None else student.name} on {'the TNO samples' if data is None else where}"
    write_report(out / "report.html", title, images=strips, metrics=metric_rows, latency=latency, model=model_lines(student),
                 notes=" ".join([pairs_note(where, pairs, shown, val_frames), *(f"{line}." for line in missed), column_note(teacher_path, column)]))
    summary = {
        "model": student.to_json(),
        "pairs": {"folder": str(where), "count": len(pairs), "shown": shown, "validation_frames": val_frames},
        "gates_missed": missed,
        "ld_lite_column": {"file": str(teacher_path), "label": column[0]} if column else None,
        "metrics": metric_rows,
        "latency": [r.to_json() for r in latency],
        "report": str(out / "report.html"),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
