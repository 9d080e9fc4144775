"""The sample check of a firmware folder: the package samples as PGM/PPM and the Python runtime's results.

Layout, under ``samples/`` of the firmware folder::

    NAME-ir.pgm  NAME-vis.pgm|ppm     the package sample pairs (TNO, CC BY 4.0; README.md)
    expected/NAME.pgm|ppm             what ``edgefusion fuse --model BUNDLE`` writes for them

The firmware folder's CMake project registers one ctest per expected file:
``fuse_frames`` (the compiled-in bundle) on the pair, then ``pnm_compare`` against the
expected result within 1 gray level. Expected results exist for bundles the C
runtime has a built-in backend for (OpenVINO) when the Python runtime can run them
here; other bundles get the pairs only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgefusion.errors import UserError
from edgefusion.resources import SAMPLES
from edgefusion.runtime.bundle import Bundle

#: Bundle backends the C runtime runs without a custom ef_backend (and so the sample check can run).
BUILTIN_C_BACKENDS = ("openvino",)


def write_sample_check(folder: Path, bundle: Bundle) -> tuple[int, str]:
    """Write ``folder``/samples for ``bundle`` (loaded and verified by the caller).

    Returns the number of expected results written and, when none were, why ("" otherwise).
    """
    from edgefusion.io.images import write_image
    from edgefusion.io.pairs import find_pairs, read_pair

    samples = folder / "samples"
    (samples / "expected").mkdir(parents=True)
    shutil.copyfile(SAMPLES / "README.md", samples / "README.md")
    pairs = {}
    for pair in find_pairs(SAMPLES):
        ir, vis = read_pair(pair)
        for role, image in (("ir", ir), ("vis", vis)):
            write_image(samples / f"{pair.name}-{role}{_suffix(image)}", image)
        pairs[pair.name] = (ir, vis)
    if bundle.backend not in BUILTIN_C_BACKENDS:
        return 0, f"the C runtime has no built-in {bundle.backend} backend: pass your own ef_backend (see include/edgefusion.h)"
    from edgefusion.runtime import Fuser

    try:
        fuser = Fuser.from_bundle(bundle)
    except UserError as exc:
        return 0, f"the Python runtime cannot run the bundle here, so there are no expected results ({exc})"
    for name, (ir, vis) in pairs.items():
        fused = fuser.fuse(ir, vis)
        write_image(samples / "expected" / f"{name}{_suffix(fused)}", fused)
    return len(pairs), ""


def _suffix(image) -> str:
    return ".ppm" if image.ndim == 3 else ".pgm"
