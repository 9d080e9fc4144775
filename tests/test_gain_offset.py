"""Per-crop input gain/offset for distillation: hand values, no clipping by construction, stats of the transformed frame."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion.errors import UserError
from edgefusion.runtime.frame_stats import frame_stats
from edgefusion.training.gain_offset import GainOffset, apply, transform_stats


def test_apply_hand_values():
    x = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_allclose(apply(x, 1.2, -0.1), [0.0, 0.2, 0.5, 1.0], atol=1e-7)  # -0.1 and 1.1 clip
    np.testing.assert_allclose(apply(x, 0.5, 0.1), [0.1, 0.225, 0.35, 0.6], atol=1e-7)


def test_parse_off_and_refusals():
    assert GainOffset.parse([]) is None
    assert GainOffset.parse([0.7, 1.3, 0.1]) == GainOffset(0.7, 1.3, 0.1)
    for bad in ([0.7, 1.3], [1.1, 1.3, 0.1], [0.7, 0.9, 0.1], [0.0, 1.0, 0.1], [0.7, 1.3, -0.1], [0.7, 1.3, 0.6]):
        with pytest.raises(UserError, match="gain_offset"):
            GainOffset.parse(bad)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.2, 0.6), (0.0, 0.3), (0.9, 1.0), (0.5, 0.5), (0.0, 0.0)])
def test_draw_keeps_the_frame_inside_0_1_and_the_ranges(lo, hi):
    go, gen = GainOffset(0.7, 1.3, 0.1), np.random.default_rng(1)
    draws = np.array([go.draw(gen, lo, hi) for _ in range(400)])
    a, b = draws[:, 0], draws[:, 1]
    assert (a >= 0.7).all() and (a <= 1.3).all() and (np.abs(b) <= 0.1 + 1e-12).all()
    assert (a * lo + b >= -1e-12).all() and (a * hi + b <= 1 + 1e-12).all()
    assert a.std() > 0 and (b.std() > 0 or hi == lo == 0.0)  # still random
    if (lo, hi) == (0.0, 1.0):  # a full-range frame: contrast down, brightness up only
        assert (a <= 1).all() and (b >= 0).all() and (b <= 1 - a + 1e-12).all()
    if (lo, hi) == (0.2, 0.6):  # room both ways: gains above 1 and darkening offsets do occur
        assert (a > 1.1).any() and (b < -0.05).any()


def test_transform_stats_are_the_stats_of_the_transformed_frame():
    gen = np.random.default_rng(2)
    ir = gen.uniform(0.1, 0.7, (24, 40)).astype(np.float32)
    vis = gen.uniform(0.3, 0.8, (24, 40)).astype(np.float32)
    ir_ab, vis_ab = (1.25, -0.05), (0.8, 0.1)
    expected = frame_stats(apply(ir, *ir_ab), apply(vis, *vis_ab))
    np.testing.assert_allclose(transform_stats(frame_stats(ir, vis), ir_ab, vis_ab), expected, rtol=1e-5, atol=1e-6)
