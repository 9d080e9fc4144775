"""``edgefusion bench``: latency of deployment bundles, and on-device budget checks.

``--size`` takes WIDTHxHEIGHT (``640x480,1920x1080``). ``--compare`` adds
more bundles to one table. ``--target NAME --check`` benchmarks at the
profile's latency shape and exits with code 4 when p90 is over the profile's
budget. It measures only on the target (``EDGEFUSION_ON_DEVICE`` names it,
or this host is the target's platform: x86/onnx on x86-64 Linux); elsewhere
it exits with code 5 saying why, or 0 with ``--skip-ok``.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="latency benchmark of bundles; on-device budget checks",
        description=__doc__.splitlines()[0].replace("``", ""),
        epilog="Budget check on the device: EDGEFUSION_ON_DEVICE=jetson edgefusion bench --target jetson --check --model BUNDLE "
               "(exit 4 when p90 is over budget; elsewhere nothing is measured: exit 5, or 0 with --skip-ok). "
               "On an x86-64 Linux host, edgefusion bench --target x86 --check measures this host.",
    )
    parser.add_argument("--model", metavar="BUNDLE", help="deployment bundle (folder or .zip)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="BUNDLE", help="more bundles to benchmark in the same table")
    parser.add_argument("--size", default="640x480,1920x1080", metavar="WxH[,WxH]", help="frame sizes, width x height (default 640x480,1920x1080)")
    parser.add_argument("--runs", type=int, default=50, metavar="N", help="timed frames per size (default 50)")
    parser.add_argument("--warmup", type=int, default=5, metavar="K", help="untimed frames before timing (default 5)")
    parser.add_argument("--threads", type=int, metavar="T", help="CPU threads for the backend (default: the backend's choice)")
    parser.add_argument("--device", metavar="D", help="backend device/provider (e.g. cuda, GPU, 0; default CPU)")
    parser.add_argument("--json", metavar="FILE", help="write all results and the environment as JSON")
    parser.add_argument("--plot", metavar="FILE", help="write a latency-vs-resolution PNG (needs matplotlib)")
    parser.add_argument("--target", metavar="NAME", help="target profile (name or .toml) whose latency budget --check uses")
    parser.add_argument("--check", action="store_true",
                        help="compare p90 at the target's shape with its budget (exit 4 when over, 5 when not on the target; "
                             "without --model the shipped student is quantized for the target first)")
    parser.add_argument("--skip-ok", action="store_true", help="with --check: exit 0 instead of 5 when this machine is not the target")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import contextlib

    from edgefusion import bench
    from edgefusion.errors import SkippedError, UserError
    from edgefusion.io.outputs import check_output_file

    if args.check and not args.target:
        raise UserError("--check needs --target NAME")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    check_output_file(args.json, "JSON")
    check_output_file(args.plot, "plot")
    target = None
    if args.target:
        from edgefusion.targets import load_target

        target = load_target(args.target)
    if args.check:
        plan = bench.check_plan(target.name)
        if not plan.measure:
            message = f"skipped latency check for {target.name}, nothing was measured: {plan.reason}"
            if args.skip_ok:
                print(f"edgefusion: {message} (accepted: --skip-ok)", file=sys.stderr)
                return 0
            raise SkippedError(f"{message}; exit {SkippedError.exit_code} (--skip-ok accepts a skip)")
        print(f"edgefusion: measuring {target.name}: {plan.reason}", file=sys.stderr)
        height, width = target.latency_shape
        sizes = [(width, height)]
    else:
        sizes = bench.parse_sizes(args.size)
    if not args.model and not args.check:
        raise UserError("give a bundle with --model BUNDLE")
    with contextlib.ExitStack() as stack:
        model = args.model or build_check_bundle(target, stack)
        results = measure([model, *args.compare], sizes, args)
    print(bench.format_table(results))
    if args.json:
        from edgefusion.io.atomic import write_text

        write_text(args.json, json.dumps({"results": [r.to_json() for r in results]}, indent=2) + "\n")
    if args.plot:
        bench.plot_latency(results, args.plot)
    if args.check:
        if results[0].environment.get("target") not in (None, target.name, target.name.partition(":")[0]):
            print(f"edgefusion: note: bundle was built for target {results[0].environment['target']!r}, checking against {target.name}", file=sys.stderr)
        print(bench.check_budget(target, results[0].sizes[0]))
    return 0


def build_check_bundle(target, stack) -> str:
    """The shipped student quantized for ``target`` in a work folder (kept open by ``stack``), for a --check without --model."""
    from edgefusion.io.atomic import work_folder
    from edgefusion.quantize.pipeline import run_quantize

    work = stack.enter_context(work_folder("edgefusion-bench-"))
    print(f"edgefusion: no --model: quantizing the shipped student for {target.name} to measure it", file=sys.stderr)
    path, _ = run_quantize(target, work / "bundle", log=lambda text: print(text, file=sys.stderr))
    return str(path)


def measure(bundles: list[str], sizes: list[tuple[int, int]], args: argparse.Namespace) -> list:
    """Benchmark results of every bundle at every size, with a progress bar."""
    from edgefusion import bench
    from edgefusion.progress import progress_bar

    results = []
    with progress_bar(total=len(bundles) * len(sizes), desc="bench", unit="size") as bar:
        for bundle in bundles:
            results.append(bench.bench_bundle(bundle, sizes, args.runs, args.warmup, args.threads, args.device,
                                              progress=lambda text: bar.set_postfix_str(text)))
            bar.update(len(sizes))
    return results
