"""Per-sample input gain/offset for distilling a gain/offset-invariant teacher (``[distill] gain_offset``).

Each training crop gets, per input plane independently, ``x' = clip(a * x + b, 0, 1)``
with a gain ``a`` in ``[gmin, gmax]`` and an offset ``b`` in ``[-omax, omax]``; the
teacher target is kept as it is. That is a correct label only for a teacher whose
output does not change under a per-plane gain/offset of its inputs (LD-Lite:
reflection pad, conv, then instance norm; see :data:`INVARIANT_ATTRIBUTE`).

Clipping would break that invariance exactly where it matters (IR highlights), so
:meth:`GainOffset.draw` only returns pairs that keep the whole frame inside [0, 1]:
``a`` is lowered to at most ``1 / (hi - lo)`` and ``(1 + omax) / hi`` and ``b`` is
clamped to ``[-a * lo, 1 - a * hi]`` (``lo``, ``hi``: the plane's whole-frame min and
max). With ``gmin <= 1 <= gmax`` the result stays in ``[gmin, gmax] x [-omax, omax]``;
a frame that already spans [0, 1] only gets contrast reductions with a brightening.
Without clipping the whole-frame statistics of the transformed frame follow exactly
(:func:`transform_stats`): means ``a * m + b``, std and gradient ``a * s``, ``a * g``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgefusion.errors import UserError

#: Class attribute a teacher module sets to True to declare gain/offset invariance of its inputs.
INVARIANT_ATTRIBUTE = "gain_offset_invariant"


@dataclass(frozen=True)
class GainOffset:
    """Ranges of the per-plane gain ``a`` (``gmin <= 1 <= gmax``) and offset ``b`` (``|b| <= omax``)."""

    gmin: float
    gmax: float
    omax: float

    @classmethod
    def parse(cls, values: list[float]) -> "GainOffset | None":
        """``[gmin, gmax, omax]`` -> GainOffset; ``[]`` -> None (off); UserError otherwise."""
        if not values:
            return None
        if len(values) != 3 or not (0.0 < values[0] <= 1.0 <= values[1] <= 4.0 and 0.0 <= values[2] <= 0.5):
            raise UserError(f"distill.gain_offset must be [gmin, gmax, omax] with 0 < gmin <= 1 <= gmax <= 4 and 0 <= omax <= 0.5, got {values}")
        return cls(*(float(v) for v in values))

    def draw(self, gen: np.random.Generator, lo: float, hi: float) -> tuple[float, float]:
        """(a, b) for a plane whose whole frame spans ``[lo, hi]``, keeping it inside [0, 1] (module doc)."""
        a, b = gen.uniform(self.gmin, self.gmax), gen.uniform(-self.omax, self.omax)
        if hi > lo:
            a = min(a, 1.0 / (hi - lo))
        if hi > 0:
            a = min(a, (1.0 + self.omax) / hi)
        b = min(max(b, -a * lo), 1.0 - a * hi)
        return float(a), float(b)


def apply(plane, a: float, b: float):
    """``clip(a * plane + b, 0, 1)`` of a numpy array or torch tensor."""
    return (plane * a + b).clip(0.0, 1.0)


def transform_stats(stats: np.ndarray, ir_ab: tuple[float, float], vis_ab: tuple[float, float]) -> np.ndarray:
    """:func:`~edgefusion.runtime.frame_stats.frame_stats` of the transformed frame from those of the original.

    Exact when nothing clips (what :meth:`GainOffset.draw` guarantees) and ``a > 0``.
    """
    (a_ir, b_ir), (a_vis, b_vis) = ir_ab, vis_ab
    m_ir, s_ir, m_vis, s_vis, g_ir, g_vis = (float(v) for v in stats)
    return np.array([a_ir * m_ir + b_ir, a_ir * s_ir, a_vis * m_vis + b_vis, a_vis * s_vis, a_ir * g_ir, a_vis * g_vis], dtype=np.float32)
