"""Latency benchmark of deployment bundles (``edgefusion bench``); numpy + the bundle's backend only.

For each frame size (W x H) a fresh :class:`~edgefusion.runtime.Fuser` is
opened (``init_ms``: bundle verification + model load), one frame is fused
(``first_inference_ms``), ``warmup`` frames are discarded and ``runs`` frames
are timed end to end through :meth:`Fuser.fuse` (uint8 IR + RGB visible in,
uint8 RGB out). Reported per size, in milliseconds: median, p90, p99, mean,
min, max, FPS (1000 / median), and the median split into ``model_ms`` (the
backend call, plus ``compose_ms`` for analyze-only bundles) and
``overhead_ms`` (pre/post-processing: normalization, color, padding, tiling).
``peak_rss_mb`` is the process's peak resident memory after the size ran.

On-target checks (:func:`check_plan`): a machine is a target when
``EDGEFUSION_ON_DEVICE`` names it (comma-separated, e.g. ``jetson`` or
``x86,onnx``; ``*`` for any) or when the host is the target's platform
(:data:`HOST_PLATFORMS`: an x86-64 Linux host is the ``x86`` and ``onnx``
targets). Elsewhere a ``--check`` measures nothing and says so: exit code 5
(:class:`~edgefusion.errors.SkippedError`) unless skips are accepted.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgefusion import __version__
from edgefusion.errors import UserError
from edgefusion.io.images import check_frame_size

ON_DEVICE_ENV = "EDGEFUSION_ON_DEVICE"
DEFAULT_SIZES = ((640, 480), (1920, 1080))


@dataclass
class SizeResult:
    """Latency statistics of one bundle at one frame size (milliseconds unless named otherwise)."""

    width: int
    height: int
    init_ms: float
    first_inference_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    fps: float
    model_ms: float
    compose_ms: float
    overhead_ms: float
    peak_rss_mb: float
    runs: int

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass
class BundleResult:
    """All sizes of one bundle, with the environment they ran in."""

    bundle: str
    name: str
    environment: dict
    sizes: list[SizeResult] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"bundle": self.bundle, "name": self.name, "environment": self.environment,
                "sizes": [{"size": s.size, **asdict(s)} for s in self.sizes]}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``640x480,1920x1080`` (width x height) -> [(640, 480), (1920, 1080)]."""
    sizes = []
    for part in text.split(","):
        w, sep, h = part.strip().lower().partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or int(w) < 1 or int(h) < 1:
            raise UserError(f"--size takes WIDTHxHEIGHT[,WIDTHxHEIGHT...] (e.g. 640x480,1920x1080), got {part.strip()!r}")
        check_frame_size(int(h), int(w), f"--size {int(w)}x{int(h)}")
        sizes.append((int(w), int(h)))
    return sizes


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if platform.system() == "Darwin" else peak / 1024


def environment(fuser, threads: int | None) -> dict:
    """Where a result was measured: backend + version, provider/device, threads, CPU, versions, bundle hash, and what
    ran the frame path around the network (``frame_path``: the C kernels' instruction set or numpy) on how many threads."""
    from edgefusion.runtime import native

    manifest_path = fuser.bundle.root / "manifest.json"
    return {
        "backend": fuser.backend.name,
        "backend_version": fuser.backend.version,
        "device": fuser.provider,
        "threads": threads if threads else "default",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "edgefusion_version": __version__,
        "bundle_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "precision": fuser.manifest["precision"],
        "target": fuser.manifest.get("target"),
        "compose": fuser.manifest.get("compose", "model"),
        "frame_path": native.kernels_isa(),
        "frame_threads": fuser.frame_threads,  # analyze-only bundles; 1 for the others
    }


def synthetic_pair(width: int, height: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 gray IR frame and a uint8 RGB visible frame (smooth gradients plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    ir = np.clip((base + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8)
    vis = np.clip((1 - base)[..., None] * 255 + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    return ir, vis


def bench_size(bundle: str | os.PathLike, width: int, height: int, runs: int, warmup: int,
               threads: int | None = None, device: str | None = None) -> tuple[SizeResult, object]:
    """Benchmark one bundle at one size; returns the result and the Fuser used."""
    from edgefusion.runtime import Fuser

    ir, vis = synthetic_pair(width, height)
    start = time.perf_counter()
    fuser = Fuser.open(bundle, threads=threads, device=device)
    init_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    fuser.fuse(ir, vis)
    first_ms = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        fuser.fuse(ir, vis)
    total, model, compose = np.empty(runs), np.empty(runs), np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fuser.fuse(ir, vis)
        total[i] = (time.perf_counter() - start) * 1e3
        model[i] = fuser.timings["backend_ms"]
        compose[i] = fuser.timings["compose_ms"]
    median = float(np.median(total))
    model_ms, compose_ms = float(np.median(model)), float(np.median(compose))
    result = SizeResult(
        width=width, height=height, init_ms=init_ms, first_inference_ms=first_ms, median_ms=median,
        p90_ms=float(np.percentile(total, 90)), p99_ms=float(np.percentile(total, 99)), mean_ms=float(total.mean()),
        min_ms=float(total.min()), max_ms=float(total.max()), fps=1000.0 / median if median > 0 else float("inf"),
        model_ms=model_ms, compose_ms=compose_ms, overhead_ms=float(np.median(total - model - compose)),
        peak_rss_mb=peak_rss_mb(), runs=runs,
    )
    return result, fuser


def check_runs(runs: int, warmup: int) -> None:
    """UserError unless ``runs`` >= 1 timed and ``warmup`` >= 0 untimed frames (checked before long work)."""
    if runs < 1 or warmup < 0:
        raise UserError(f"--runs must be >= 1 and --warmup >= 0, got {runs} and {warmup}")


def bench_bundle(bundle: str | os.PathLike, sizes, runs: int = 50, warmup: int = 5, threads: int | None = None,
                 device: str | None = None, progress=None) -> BundleResult:
    """Benchmark one bundle at every size (``progress(text)`` is called before each size)."""
    check_runs(runs, warmup)
    result = None
    for width, height in sizes:
        if progress:
            progress(f"{bundle} @ {width}x{height}")
        size, fuser = bench_size(bundle, width, height, runs, warmup, threads, device)
        if result is None:
            name = f"{Path(bundle).name} ({fuser.manifest['backend']} {fuser.manifest['precision']})"
            result = BundleResult(bundle=str(bundle), name=name, environment=environment(fuser, threads))
        result.sizes.append(size)
    return result


def format_table(results: list[BundleResult]) -> str:
    """One text table across bundles and sizes."""
    head = ("bundle", "device", "size (WxH)", "init", "first", "median", "p90", "p99", "mean", "min", "max", "FPS",
            "model", "compose", "pre/post", "peak RSS")
    rows = [head]
    for r in results:
        for s in r.sizes:
            rows.append((r.name, r.environment["device"], s.size, *(f"{v:.1f}" for v in (
                s.init_ms, s.first_inference_ms, s.median_ms, s.p90_ms, s.p99_ms, s.mean_ms, s.min_ms, s.max_ms)),
                f"{s.fps:.1f}", f"{s.model_ms:.1f}", f"{s.compose_ms:.1f}", f"{s.overhead_ms:.1f}", f"{s.peak_rss_mb:.0f} MB"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n(times in ms; model = backend call, pre/post = everything else in fuse())"


def latency_png(results: list[BundleResult]) -> bytes:
    """PNG with one panel per frame size: a bar per bundle, stacked model / compose / pre-post median, whisker to p90."""
    import io

    from edgefusion.optional import require

    matplotlib = require("matplotlib", "eval")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({(s.width, s.height) for r in results for s in r.sizes}, key=lambda wh: wh[0] * wh[1])
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.2 + 2.2 * len(sizes) + 0.4 * len(results), 4.5), squeeze=False)
    parts = (("model_ms", "model", "#4c72b0"), ("compose_ms", "compose", "#55a868"), ("overhead_ms", "pre/post", "#c44e52"))
    for ax, (width, height) in zip(axes[0], sizes):
        cells = [(i, r.name, next((s for s in r.sizes if (s.width, s.height) == (width, height)), None)) for i, r in enumerate(results)]
        cells = [(i, name, s) for i, name, s in cells if s is not None]
        bottom = np.zeros(len(cells))
        for key, label, color in parts:
            values = np.array([getattr(s, key) for _, _, s in cells])
            ax.bar(range(len(cells)), values, bottom=bottom, color=color, label=label)
            bottom += values
        p90 = [s.p90_ms for _, _, s in cells]
        ax.errorbar(range(len(cells)), bottom, yerr=[np.zeros(len(cells)), np.maximum(np.array(p90) - bottom, 0)],
                    fmt="none", ecolor="black", capsize=3)
        ax.set_xticks(range(len(cells)), [name for _, name, _ in cells], rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{width}x{height}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("ms per frame (median parts; whisker to p90)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"edgefusion bench ({cpu_model()})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png")
    plt.close(fig)
    return buf.getvalue()


def plot_latency(results: list[BundleResult], path: str | os.PathLike) -> None:
    """Write :func:`latency_png` to ``path`` atomically."""
    from edgefusion.io.atomic import write_bytes

    write_bytes(path, latency_png(results))


#: Targets a host runs natively: target base name -> (operating system, machine names of ``platform.machine()``).
#: The Jetson target needs the Jetson (TensorRT): only ``EDGEFUSION_ON_DEVICE`` declares it.
HOST_PLATFORMS: dict[str, tuple[str, frozenset[str]]] = {
    "x86": ("Linux", frozenset({"x86_64", "amd64"})),
    "onnx": ("Linux", frozenset({"x86_64", "amd64", "aarch64", "arm64"})),
    "arm": ("Linux", frozenset({"aarch64", "arm64"})),
}


def _on_device_value(environ: dict | None) -> str:
    """The ``EDGEFUSION_ON_DEVICE`` setting of ``environ`` (default: this process's), stripped; "" when unset."""
    return (os.environ if environ is None else environ).get(ON_DEVICE_ENV, "").strip()


def on_device(target_name: str, environ: dict | None = None) -> bool:
    """Whether ``EDGEFUSION_ON_DEVICE`` says this machine is ``target_name`` (its base name matches variants)."""
    value = _on_device_value(environ)
    declared = {v.strip() for v in value.split(",") if v.strip()}
    return "*" in declared or target_name in declared or target_name.partition(":")[0] in declared


@dataclass(frozen=True)
class CheckPlan:
    """Whether a latency check of a target can measure here, and why (one line)."""

    measure: bool
    reason: str


def check_plan(target_name: str, environ: dict | None = None, system: str | None = None, machine: str | None = None) -> CheckPlan:
    """Measure when ``EDGEFUSION_ON_DEVICE`` declares the target or the host is its platform; else a skip with the reason."""
    base = target_name.partition(":")[0]
    if on_device(target_name, environ):
        return CheckPlan(True, f"{ON_DEVICE_ENV} declares this machine as {base}")
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    wanted = HOST_PLATFORMS.get(base)
    if wanted is not None and system == wanted[0] and machine in wanted[1]:
        return CheckPlan(True, f"this host ({system} {machine}) is the {base} target's platform")
    value = _on_device_value(environ)
    declared = f"{ON_DEVICE_ENV}={value!r} does not declare it" if value else f"{ON_DEVICE_ENV} is not set"
    return CheckPlan(False, f"this machine ({system} {machine}) is not the {target_name} target and {declared} "
                            f"(on the device: {ON_DEVICE_ENV}={base})")


def budget_verdict(target, result: SizeResult) -> tuple[bool, str]:
    """(p90 within the target's budget, the verdict line)."""
    ok = result.p90_ms <= target.latency_p90_ms
    line = (f"{target.name}: p90 {result.p90_ms:.2f} ms at {result.size} (WxH) vs budget {target.latency_p90_ms:g} ms"
            f" -- {'within budget' if ok else 'over budget'}")
    return ok, line


def check_budget(target, result: SizeResult) -> str:
    """Compare p90 with the target's budget; returns the verdict line or raises BudgetError (exit code 4)."""
    from edgefusion.errors import BudgetError

    ok, line = budget_verdict(target, result)
    if not ok:
        raise BudgetError(line)
    return line


def budget_summary(rows: list[dict]) -> str:
    """A table of latency checks: rows ``{target, size, budget_ms, p90_ms (None when skipped), note}``.

    The verdict column says ``within``, ``OVER`` or ``skipped`` (nothing was
    measured); ``note`` says where it ran or why it was skipped.
    """
    head = ("target", "size (WxH)", "p90 ms", "budget ms", "verdict", "note")
    table = [head]
    for row in rows:
        p90 = row.get("p90_ms")
        verdict = "skipped" if p90 is None else ("within" if p90 <= row["budget_ms"] else "OVER")
        table.append((row["target"], row["size"], "-" if p90 is None else f"{p90:.2f}", f"{row['budget_ms']:g}", verdict, row.get("note", "")))
    widths = [max(len(r[i]) for r in table) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(head[-1]))
    measured = sum(r.get("p90_ms") is not None for r in rows)
    return "\n".join([*lines, f"{measured} of {len(rows)} target(s) measured"])
