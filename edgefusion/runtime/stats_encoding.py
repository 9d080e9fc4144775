"""How a bundle's model takes the frame statistics: raw, or encoded (manifest ``stats_encoding``).

A model whose ``stats`` input is an integer tensor (``--target arm:int8-io``)
sees it in steps of 1/255 over [0, 1], one scale for all six values (the
quantizer types every input alike). Raw stds (~0.05-0.3) and gradients
(~0.01-0.08) lose too much there, so such bundles take the statistics
ENCODED, per value::

    encoded[i] = stats[i] * scale[i]        (the model divides by scale inside)

Manifest: ``"stats_encoding": {"scale": [6 positive numbers]}``; absent: raw
statistics (every bundle written before, every float-I/O bundle). Any other
key is refused, so that a later encoding is never run as this one. The
runtimes (this package's :class:`~edgefusion.runtime.backends.Backend`, the C
runtime's ``ef_fuse``) apply the encoding; integer quantization then
saturates values beyond [0, 1].

numpy-free and torch-free (the bundle reader imports it).
"""

from __future__ import annotations

import json
from typing import Any

from edgefusion.errors import UserError

#: Number of frame statistics (:data:`edgefusion.runtime.frame_stats.N_STATS`).
N_STATS = 6
#: Scale of integer-I/O bundles, for [mean_ir, std_ir, mean_vis, std_vis, grad_ir, grad_vis]:
#: means stay in [0, 1]; a std of values in [0, 1] is at most 0.5 (x2 keeps all of it); gradients
#: x5 reach 0.2, 2.4x the largest of TNO, RoadScene, MSRS, M3FD, LLVIP and train (0.082).
#: (The model's own STATS_SCALE x4 for stds clips 0.25: TNO reaches 0.34, 30 dB after int8.)
INTEGER_IO_SCALE = (1.0, 2.0, 1.0, 2.0, 5.0, 5.0)
#: Largest scale accepted (float32's largest finite value: the runtimes encode in float32).
MAX_SCALE = 3.4e38


def entry(scale: tuple[float, ...]) -> dict[str, list[float]]:
    """The manifest ``stats_encoding`` value of ``scale``."""
    return {"scale": [float(s) for s in scale]}


def stats_scale(encoding: Any, where: str = "bundle", takes_stats: bool = True) -> tuple[float, ...] | None:
    """The per-value scale of a manifest ``stats_encoding`` value (None: absent, raw statistics);
    UserError naming ``where`` for anything but ``{"scale": [6 numbers in (0, MAX_SCALE]]}``, or for
    an encoding of a model that does not ``takes_stats``."""
    if encoding is None:
        return None
    if not takes_stats:
        raise UserError(f"{where}: stats_encoding is given but the model takes no stats input")
    if not isinstance(encoding, dict) or set(encoding) != {"scale"}:
        raise UserError(f"{where}: unsupported stats_encoding {json.dumps(encoding)[:120]}; this edgefusion reads {{\"scale\": [{N_STATS} numbers]}}")
    scale = encoding["scale"]
    if not (isinstance(scale, list) and len(scale) == N_STATS and all(_positive(s) for s in scale)):
        raise UserError(f"{where}: stats_encoding.scale must be {N_STATS} finite numbers > 0, got {json.dumps(scale)[:120]}")
    return tuple(float(s) for s in scale)


def _positive(value: Any) -> bool:
    """A JSON number in (0, MAX_SCALE] (NaN and infinities fail the comparison)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_SCALE
