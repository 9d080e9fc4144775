"""Tiny local models for the runtime tests: exported per test session, each in well under a second.

``TinyFuser`` is two 3x3 convolutions (receptive field 5x5, radius 2): small
enough that tiles with an overlap of 16 pixels reproduce the untiled output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_fuser(seed: int = 0):
    import torch
    from torch import nn

    class TinyFuser(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(2, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 1, 3, padding=1)

        def forward(self, ir, vis):
            return torch.sigmoid(self.b(torch.relu(self.a(torch.cat([ir, vis], dim=1)))))

    torch.manual_seed(seed)
    return TinyFuser().eval()


def export_onnx(model, path: Path, height: int = 32, width: int = 48, dynamic: bool = True) -> Path:
    """ONNX with inputs ir, vis and output fused (NCHW float32), dynamic H and W when ``dynamic``."""
    import torch

    x = torch.rand(1, 1, height, width)
    shapes = None
    if dynamic:
        h, w = torch.export.Dim("h", min=2, max=8192), torch.export.Dim("w", min=2, max=8192)
        shapes = {"ir": {2: h, 3: w}, "vis": {2: h, 3: w}}
    torch.onnx.export(model, (x, x.clone()), str(path), input_names=["ir", "vis"], output_names=["fused"],
                      dynamo=True, dynamic_shapes=shapes, optimize=True, verbose=False)
    import onnx

    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=False)  # one self-contained file
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    return path


def torch_reference(model, ir: np.ndarray, vis: np.ndarray, stats: np.ndarray | None = None) -> np.ndarray:
    """``model(ir, vis[, stats])`` on NCHW numpy arrays (stats (1, 6) for v2 students), as numpy."""
    import torch

    tensors = [torch.from_numpy(a) for a in (ir, vis, stats) if a is not None]
    with torch.no_grad():
        return model(*tensors).numpy()


def max_model_onnx(path: Path, dtype: str, scale: float, zero_point: int) -> Path:
    """Integer-I/O ONNX: fused = Q(max(DQ(ir), DQ(vis))) with one (scale, zero_point) for all tensors."""
    import onnx
    from onnx import TensorProto, helper

    elem = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}[dtype]
    np_type = {"uint8": np.uint8, "int8": np.int8}[dtype]
    inits = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor("zp", elem, [], np.array([zero_point], dtype=np_type).tobytes(), raw=True),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["ir", "scale", "zp"], ["ir_f"]),
        helper.make_node("DequantizeLinear", ["vis", "scale", "zp"], ["vis_f"]),
        helper.make_node("Max", ["ir_f", "vis_f"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "scale", "zp"], ["fused"]),
    ]
    dims = [1, 1, "h", "w"]
    graph = helper.make_graph(
        nodes, "max_q",
        [helper.make_tensor_value_info(n, elem, dims) for n in ("ir", "vis")],
        [helper.make_tensor_value_info("fused", elem, dims)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def max_float_onnx(path: Path) -> Path:
    """Float ONNX computing fused = max(ir, vis) at any shape: an exact, independent expectation."""
    import onnx
    from onnx import TensorProto, helper

    dims = [1, 1, "h", "w"]
    graph = helper.make_graph(
        [helper.make_node("Max", ["ir", "vis"], ["fused"])], "max",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("ir", "vis")],
        [helper.make_tensor_value_info("fused", TensorProto.FLOAT, dims)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(path))
    return path


def make_bundle(out: Path, model: Path, backend: str = "onnxruntime", as_zip: bool = False, weights: Path | None = None, **fields) -> Path:
    """A bundle around one model file (and its ``weights`` file, e.g. OpenVINO's .bin), through the shared bundle writer."""
    from edgefusion import __version__
    from edgefusion.runtime.bundle import write_bundle

    manifest = {
        "schema": 1, "edgefusion_version": __version__, "backend": backend, "target": "test", "precision": "fp32",
        "inputs": [{"name": n, "shape": [1, 1, "H", "W"], "dtype": "float32"} for n in ("ir", "vis")],
        "outputs": [{"name": "fused", "shape": [1, 1, "H", "W"], "dtype": "float32"}],
        "layout": "NCHW", "io_dtype": "float32", "value_range": [0, 1], "stride": 1, "fixed_shape": None,
        "color": "ycbcr-bt601", "preprocessing": {"thermal_stretch": [0.5, 99.5]},
    }
    manifest.update(fields)
    return write_bundle(out, {"model": model} | ({"weights": weights} if weights else {}), manifest, as_zip=as_zip)


def perturbed_student(path: Path, seed: int, metadata: dict | None = None, architecture: str = "student"):
    """A student ``s`` whose weights are the initialization plus N(0, 0.1) noise, saved as a checkpoint at ``path``.

    The untrained student is exactly max(ir, vis); the noise gives the maps real
    spatial structure, so conversions and quantization are exercised on a non-trivial model.
    ``architecture`` ``student-ctx`` gives a v2 student (inputs ir, vis, stats).
    """
    import torch

    from edgefusion.models import build_model
    from edgefusion.models.checkpoint import model_payload, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(architecture, {"size": "s"}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_checkpoint(path, model_payload(model, architecture, {"size": "s"}, metadata))
    return model

