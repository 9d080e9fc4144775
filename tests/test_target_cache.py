"""Per-frame teacher target cache: keys, round trip, torn files, and a teacher pass that resumes."""

from __future__ import annotations

import numpy as np
import pytest

from edgefusion.io.images import write_image
from edgefusion.training.target_cache import SCALE, TargetStore, frame_key

DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


def test_round_trip_within_half_a_uint16_step(tmp_path):
    cache = TargetStore(tmp_path, DIGEST_A)
    plane = np.random.default_rng(0).random((7, 9), dtype=np.float32)
    plane[0, 0], plane[0, 1] = 0.0, 1.0
    assert cache.get("f") is None
    stored = cache.put("f", "", plane)
    got = cache.get("f")
    assert got.dtype == np.float32 and got.shape == (7, 9)
    assert np.array_equal(got, stored)
    assert np.abs(got - plane).max() <= 0.5 / SCALE + 1e-7
    assert got[0, 0] == 0.0 and got[0, 1] == 1.0


def test_keys_separate_teacher_frame_and_augmentation(tmp_path):
    a, b = TargetStore(tmp_path, DIGEST_A), TargetStore(tmp_path, DIGEST_B)
    a.put("f", "", np.full((2, 2), 0.25, np.float32))
    assert b.get("f") is None  # another teacher: its own entries
    assert a.get("g") is None and a.get("f", "hflip") is None
    a.put("f", "hflip", np.full((2, 2), 0.75, np.float32))
    assert a.get("f")[0, 0] == pytest.approx(0.25, abs=1e-5) and a.get("f", "hflip")[0, 0] == pytest.approx(0.75, abs=1e-5)
    assert len({a.path("f"), a.path("f", "hflip"), a.path("g"), b.path("f")}) == 4
    assert a.path("f").relative_to(tmp_path).parts[0] == DIGEST_A[:16]


def test_frame_key_follows_file_contents(tmp_path):
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    write_image(ir, np.zeros((3, 3), np.uint8))
    write_image(vis, np.zeros((3, 3), np.uint8))
    before = frame_key("p", ir, vis)
    assert frame_key("p", ir, vis) == before and frame_key("q", ir, vis) != before
    write_image(vis, np.ones((3, 3), np.uint8))
    assert frame_key("p", ir, vis) != before


def test_torn_or_foreign_file_is_a_miss_and_get_or_compute_fills_it(tmp_path):
    cache = TargetStore(tmp_path, DIGEST_A)
    path = cache.path("f")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x93NUMPY torn")
    calls = []

    def compute():
        calls.append(1)
        return np.full((3, 4), 0.5, np.float32)

    value, hit = cache.get_or_compute("f", "", compute)
    assert not hit and calls == [1] and value[0, 0] == pytest.approx(0.5, abs=1e-5)
    value, hit = cache.get_or_compute("f", "", compute)
    assert hit and calls == [1]
    np.save(path, np.zeros((2, 2), np.float64))  # not what put() writes
    assert cache.get("f") is None
