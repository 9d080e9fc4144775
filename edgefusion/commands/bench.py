"""``edgefusion bench``: latency of deployment bundles, and on-device budget checks.

``--size`` takes WIDTHxHEIGHT (``640x480,1920x1080``). ``--compare`` adds
more bundles to one table. ``--target NAME --check`` benchmarks at the
profile's latency shape and exits with code 4 when p90 is over the profile's
budget; on a machine that is not the target (environment variable
``EDGEFUSION_ON_DEVICE`` does not name it) the check is skipped with the reason.
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
               "(elsewhere the check is skipped; exit 4 when p90 is over budget).",
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
    parser.add_argument("--check", action="store_true", help="compare p90 at the target's shape with its budget (exit 4 when over)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefusion import bench
    from edgefusion.errors import UserError

    if args.check and not args.target:
        raise UserError("--check needs --target NAME")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    target = None
    if args.target:
        from edgefusion.targets import load_target

        target = load_target(args.target)
    if args.check:
        if not bench.on_device(target.name):
            print(f"edgefusion: skipped latency check for {target.name}: this machine is not declared as the target "
                  f"(set {bench.ON_DEVICE_ENV}={target.name.partition(':')[0]} on the device)", file=sys.stderr)
            return 0
        height, width = target.latency_shape
        sizes = [(width, height)]
    else:
        sizes = bench.parse_sizes(args.size)
    if not args.model:
        raise UserError("give a bundle with --model BUNDLE")
    bundles = [args.model, *args.compare]
    results = []
    from edgefusion.progress import progress_bar

    with progress_bar(total=len(bundles) * len(sizes), desc="bench", unit="size") as bar:
        for bundle in bundles:
            results.append(bench.bench_bundle(bundle, sizes, args.runs, args.warmup, args.threads, args.device,
                                              progress=lambda text: bar.set_postfix_str(text)))
            bar.update(len(sizes))
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
