"""ONNX Runtime's ``reference`` device computes what a Q/DQ graph specifies, on any CPU.

The jetson target's accuracy gate runs its Q/DQ ONNX this way (TensorRT, not
ONNX Runtime, runs it on the device). The model here is the pattern TensorRT
gets: Q/DQ on the activation, int8 per-channel weights, float bias, Q/DQ on
the output, with values chosen so that a u8s8 kernel that sums pairs of
products in int16 (x86 without VNNI) would saturate: activations near +127
(uint8 255 after ONNX Runtime's int8 -> uint8 shift) and weights of +-127.
The expectation is computed in float64 numpy from the ONNX operator
definitions (round half to even, saturate to [-128, 127]).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

X_SCALE, Y_SCALE = 1.0 / 127, 8.0 / 127
H, W = 12, 16


def _weights() -> tuple[np.ndarray, np.ndarray]:
    """int8 weights (1, 2, 3, 3) of magnitude 127 (mostly positive) and their per-channel scale."""
    rng = np.random.default_rng(0)
    w = np.where(rng.random((1, 2, 3, 3)) < 0.8, 127, -127).astype(np.int8)
    return w, np.array([0.5 / 127], np.float32)


def _qdq_model(path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    w, w_scale = _weights()
    inits = [
        numpy_helper.from_array(np.array(X_SCALE, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(Y_SCALE, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(1, np.int8), "w_zero"),
        numpy_helper.from_array(np.array([-0.25], np.float32), "bias"),
    ]
    nodes = [
        helper.make_node("Concat", ["ir", "vis"], ["x"], axis=1),
        helper.make_node("QuantizeLinear", ["x", "x_scale", "zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"], axis=0),
        helper.make_node("Conv", ["x_dq", "w_dq", "bias"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "zero"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "zero"], ["fused"]),
    ]
    plane = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, H, W])  # noqa: E731
    graph = helper.make_graph(nodes, "qdq", [plane("ir"), plane("vis")], [plane("fused")], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _quantize(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.round(x / scale), -128, 127) * scale  # np.round: half to even, as QuantizeLinear


def _expected(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    w, w_scale = _weights()
    x = _quantize(np.concatenate([ir, vis], axis=1)[0].astype(np.float64), X_SCALE)
    x = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    kernel = w[0].astype(np.float64) * float(w_scale[0])
    y = sum(kernel[c, i, j] * x[c, i : i + H, j : j + W] for c in range(2) for i in range(3) for j in range(3)) - 0.25
    return _quantize(y, Y_SCALE)[None, None]


def test_reference_device_runs_qdq_graphs_exactly(tmp_path):
    from edgefusion.runtime.backends import open_backend

    rng = np.random.default_rng(1)
    ir = rng.uniform(0.9, 1.0, (1, 1, H, W)).astype(np.float32)  # int8 ~115..127: saturating pairs in u8s8
    vis = rng.uniform(0.0, 1.0, (1, 1, H, W)).astype(np.float32)
    engine = open_backend("onnxruntime", {"model": _qdq_model(tmp_path / "qdq.onnx")}, device="reference", threads=1)
    assert "reference" in engine.provider
    out = engine.run_raw(ir, vis)  # not clipped to [0, 1]
    expected = _expected(ir, vis)
    # float32 accumulation may move a value sitting on a rounding boundary by one output step, no more
    steps = np.abs(out.astype(np.float64) - expected) / Y_SCALE
    assert steps.max() <= 1 + 1e-6 and np.mean(steps > 0.5) <= 0.01
    assert np.abs(expected).max() > 30 * Y_SCALE  # tens of output steps: not trivially small
