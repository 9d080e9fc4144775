"""Manifest ``stats_encoding`` (edgefusion/runtime/stats_encoding.py): parsing, and the encoding the runtime applies.

Hand values: stats [0.4, 0.11, 0.6, 0.2, 0.03, 0.31] times scale [1, 2, 1, 2, 5, 5] are
[0.4, 0.22, 0.6, 0.4, 0.15, 1.55]; in int8 with scale 1/255 and zero point -128 that is
rint(x * 255) - 128 = rint([102, 56.1, 153, 102, 38.25, 395.25]) - 128 = [-26, -72, 25, -26, -90, 127 (saturated)].
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgefusion.errors import UserError
from edgefusion.runtime.backends.base import Backend, IOSpec
from edgefusion.runtime.stats_encoding import INTEGER_IO_SCALE, entry, stats_scale

STATS = np.array([[0.4, 0.11, 0.6, 0.2, 0.03, 0.31]], dtype=np.float32)
SCALE = [1, 2, 1, 2, 5, 5]
INT8_IO = {name: {"scale": 1 / 255, "zero_point": -128} for name in ("ir", "vis", "stats", "fused")}
V2 = ("ir", "vis", "stats")


class Recording(Backend):
    """A backend that keeps the native tensors it is fed and returns a zero output."""

    name = "recording"

    def _infer(self, inputs, out=None):
        self.fed = inputs
        return np.zeros(inputs[0].shape, dtype=self.io.np_dtype)


def _fed_stats(**io) -> np.ndarray:
    backend = Recording(IOSpec.create(inputs=V2, **io))
    planes = np.zeros((1, 1, 8, 8), np.float32)
    backend.run(planes, planes, stats=STATS)
    return backend.fed[2]


def test_int8_stats_are_encoded_then_quantized_by_hand_values():
    fed = _fed_stats(io_dtype="int8", io_quantization=INT8_IO, stats_encoding={"scale": SCALE})
    assert fed.dtype == np.int8 and fed.tolist() == [[-26, -72, 25, -26, -90, 127]]
    # decoding (what the model does inside) gives the statistics back within half an int8 step of each value
    decoded = (fed.astype(np.float64) + 128) / 255 / np.array(SCALE)
    np.testing.assert_array_less(np.abs(decoded - STATS)[0, :5], 0.5 / 255 / np.array(SCALE[:5]) + 1e-7)
    assert decoded[0, 5] == pytest.approx(1 / 5)  # beyond the encoded range [0, 1]: saturated, never wrapped


def test_raw_int8_stats_keep_the_old_coarse_steps():
    fed = _fed_stats(io_dtype="int8", io_quantization=INT8_IO)  # a bundle without stats_encoding (written before it existed)
    assert fed.tolist() == [[-26, -100, 25, -77, -120, -49]]  # rint([102, 28.05, 153, 51, 7.65, 79.05]) - 128


def test_float_stats_are_encoded_when_the_manifest_says_so():
    np.testing.assert_allclose(_fed_stats(stats_encoding={"scale": SCALE}), [[0.4, 0.22, 0.6, 0.4, 0.15, 1.55]], rtol=1e-6)
    np.testing.assert_array_equal(_fed_stats(), STATS)


def test_parse_and_manifest_entry():
    from edgefusion.runtime import frame_stats, stats_encoding

    assert stats_encoding.N_STATS == frame_stats.N_STATS  # numpy-free copy of the count
    assert stats_scale(None) is None
    assert stats_scale({"scale": SCALE}) == (1.0, 2.0, 1.0, 2.0, 5.0, 5.0)
    assert stats_scale(entry(INTEGER_IO_SCALE)) == INTEGER_IO_SCALE
    assert json.loads(json.dumps(entry(INTEGER_IO_SCALE))) == {"scale": [1.0, 2.0, 1.0, 2.0, 5.0, 5.0]}


@pytest.mark.parametrize("encoding", [
    {"scale": SCALE, "offset": [0] * 6}, {"sqrt": SCALE}, [1] * 6, "scale", {"scale": SCALE[:5]}, {"scale": [1, 2, 1, 2, 5, 0]},
    {"scale": [1, 2, 1, 2, 5, -5]}, {"scale": [1, 2, 1, 2, 5, "5"]}, {"scale": [1, 2, 1, 2, 5, True]},
    {"scale": [1, 2, 1, 2, 5, float("nan")]}, {"scale": [1, 2, 1, 2, 5, float("inf")]}, {"scale": [1, 2, 1, 2, 5, 1e39]},
])
def test_unknown_or_malformed_encodings_are_refused_in_one_line(encoding):
    with pytest.raises(UserError, match="stats_encoding") as info:
        stats_scale(encoding, "bundle b")
    assert str(info.value).startswith("bundle b: ") and "\n" not in str(info.value)
    with pytest.raises(UserError, match="stats_encoding"):
        IOSpec.create(inputs=V2, stats_encoding=encoding)


def test_an_encoding_needs_a_stats_input(tmp_path):
    from runtime_models import make_bundle

    from edgefusion.runtime.bundle import load_bundle

    with pytest.raises(UserError, match="takes no stats input"):
        IOSpec.create(stats_encoding={"scale": SCALE})
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(UserError, match="stats_encoding is given but the model takes no stats input"):
        make_bundle(tmp_path / "v1", model, stats_encoding={"scale": SCALE})  # inputs ir, vis
    assert load_bundle(make_bundle(tmp_path / "raw", model, inputs=list(V2))).stats_encoding is None
    assert load_bundle(make_bundle(tmp_path / "enc", model, inputs=list(V2), stats_encoding={"scale": SCALE})).stats_encoding == {"scale": SCALE}
