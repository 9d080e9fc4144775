"""Export edgefusion models to ONNX and check the exported graph's operators.

Every exported graph follows the model I/O contract of :mod:`edgefusion.preprocess`:
inputs ``ir`` and ``vis`` (1 x 1 x H x W float32 in [0, 1]), output ``fused``
(1 x 1 x H x W); models that take the frame statistics (v2 students, see
:func:`edgefusion.models.checkpoint.input_names`) have a third input ``stats``
(1 x 6 float32, fixed shape). With ``dynamic=True`` H and W are symbolic multiples of the
model's ``stride`` attribute (1 when absent); callers pad frames with
:func:`edgefusion.preprocess.pad_to_multiple`. The stride is stored in the
model's metadata under ``edgefusion.stride``. Export uses the torch.export-based
exporter (``torch.onnx.export(..., dynamo=True)``), opset 18 by default.

:data:`STUDENT_OPS` is the operator set that quantizes to INT8 and converts to
OpenVINO, TFLite/LiteRT and TensorRT without fallbacks; :func:`check_ops`
walks a graph (including subgraphs) against it.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edgefusion.errors import UserError
from edgefusion.io.atomic import atomic_path

OUTPUT_NAME = "fused"
DEFAULT_OPSET = 18
STRIDE_KEY = "edgefusion.stride"

#: ONNX operators allowed in an edge (student) graph.
STUDENT_OPS = frozenset(
    {
        "Conv",
        "Relu",
        "Clip",
        "Sigmoid",
        "Add",
        "Sub",
        "Mul",
        "Concat",
        "Slice",
        "Resize",
        "AveragePool",
        "ReduceMean",
        "DepthToSpace",
        "Constant",
        "Identity",
        # the frame-statistics path of v2 students (tiny (1, 6) -> (1, C) tensors, kept float)
        "Gather",
        "Unsqueeze",
        "Reshape",
        "Div",
        "Gemm",
        "MatMul",
    }
)


def example_inputs(model, shape: tuple[int, int], channels_last: bool = False) -> tuple:
    """Random example inputs of one frame for ``model``'s inputs: planes (1, 1, H, W) (or (1, H, W, 1)), stats (1, 6)."""
    import torch

    from edgefusion.models.checkpoint import input_names
    from edgefusion.runtime.frame_stats import N_STATS

    plane = (1, *shape, 1) if channels_last else (1, 1, *shape)
    return tuple(torch.rand(1, N_STATS) if name == "stats" else torch.rand(*plane) for name in input_names(model))


def export_onnx(
    model,
    path: str | Path,
    shape: tuple[int, int] | None = None,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model(ir, vis[, stats]) -> fused`` to ``path`` (written atomically); returns the path.

    ``shape`` is the (H, W) of the example input (a multiple of the stride;
    default 32 strides by 40 strides). With ``dynamic=False`` the graph is
    fixed to that shape, which ``shape`` must then give. What torch logs during
    the export is written only when it succeeds: a failure is the UserError's one line.
    """
    import onnx
    import torch

    from edgefusion.models.checkpoint import input_names

    stride = int(getattr(model, "stride", 1))
    if shape is None:
        if not dynamic:
            raise UserError("a fixed-shape ONNX export needs shape=(H, W)")
        shape = (32 * stride, 40 * stride)
    height, width = (int(v) for v in shape)
    if height <= 0 or width <= 0 or height % stride or width % stride:
        raise UserError(f"export shape {height}x{width} (HxW) must be positive multiples of the model stride {stride}")
    if opset < 17:
        raise UserError(f"ONNX opset {opset} is too old; use 17 or newer")
    names = input_names(model)
    example = example_inputs(model, (height, width))
    dynamic_shapes = None
    if dynamic:
        from torch.export import Dim

        rows, cols = Dim("rows", min=1, max=8192 // stride), Dim("cols", min=1, max=8192 // stride)
        spatial = {2: stride * rows, 3: stride * cols}
        dynamic_shapes = tuple(None if name == "stats" else dict(spatial) for name in names)  # positional, forward order
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), _torch_logs_kept_on_success():
            warnings.filterwarnings("ignore", message=".*shares the same shape constraints.*")
            program = torch.onnx.export(
                model,
                example,
                input_names=list(names),
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                verbose=False,
                optimize=False,  # below, after naming the weight slices
            )
        _name_weight_slices(program.model.graph, {name for name, _ in model.named_parameters()})
        program.optimize()
    except Exception as exc:  # the exporter raises many types; report it as one line
        raise UserError(f"ONNX export of {type(model).__name__} failed: {_first_line(exc.__cause__ or exc)}") from None
    finally:
        model.train(was_training)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {STRIDE_KEY: str(stride)})
    target = Path(path)
    with atomic_path(target) as tmp:
        onnx.save_model(proto, str(tmp))
    return target


@contextmanager
def _torch_logs_kept_on_success() -> Iterator[None]:
    """Hold what torch's log handlers would write during the block; write it only when the block returns normally."""
    held: list[tuple[logging.Handler, logging.LogRecord]] = []
    holders = {handler: _holder(handler, held) for handler in _torch_handlers()}
    for handler, holder in holders.items():
        handler.addFilter(holder)
    try:
        yield
    finally:
        for handler, holder in holders.items():
            handler.removeFilter(holder)
    for handler, record in held:
        handler.handle(record)


def _torch_handlers() -> set[logging.Handler]:
    """The handlers of the ``torch`` logger and of its descendants (torch gives many of them their own)."""
    loggers = logging.Logger.manager.loggerDict.items()
    return {h for name, lg in loggers if isinstance(lg, logging.Logger) and name.split(".")[0] == "torch" for h in lg.handlers}


def _holder(handler: logging.Handler, held: list) -> Callable[[logging.LogRecord], bool]:
    """A filter that appends (``handler``, record) to ``held`` instead of letting ``handler`` write the record."""
    def hold(record: logging.LogRecord) -> bool:
        held.append((handler, record))
        return False

    return hold


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, without terminal colour codes (the exporter adds some)."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines()
    return lines[0] if lines else type(exc).__name__


def _name_weight_slices(graph, parameters: set[str]) -> None:
    """Name each Slice of a parameter ``<parameter>.<slice>`` before constant folding makes it an initializer,
    so that weights a model slices at trace time (e.g. a convolution split over its input channels) still
    belong to the parameter's module for the INT8 quantizers' ``keep_float`` (which match initializer names)."""
    for node in graph:
        source = node.inputs[0] if node.op_type == "Slice" and node.inputs else None
        if source is not None and source.name in parameters:
            node.outputs[0].name = f"{source.name}.{node.outputs[0].name}"


def op_types(model_or_path) -> Counter:
    """Count the operator types of an ONNX model (path or ModelProto), subgraphs included."""
    import onnx

    model = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    counts: Counter = Counter()
    _walk(model.graph, counts)
    return counts


def _walk(graph, counts: Counter) -> None:
    import onnx

    for node in graph.node:
        counts[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"] += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _walk(attr.g, counts)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    _walk(sub, counts)


def check_ops(model_or_path, allowed: Iterable[str] = STUDENT_OPS) -> Counter:
    """Op counts of the model; raises UserError naming every operator outside ``allowed``."""
    counts = op_types(model_or_path)
    extra = sorted(set(counts) - set(allowed))
    if extra:
        raise UserError(f"ONNX graph uses operators outside the allowed set: {', '.join(extra)}")
    return counts


def read_stride(model_or_path) -> int:
    """The stride recorded by :func:`export_onnx` (1 when absent)."""
    import onnx

    model = onnx.load(str(model_or_path), load_external_data=False) if isinstance(model_or_path, (str, Path)) else model_or_path
    props = {p.key: p.value for p in model.metadata_props}
    return int(props.get(STRIDE_KEY, 1))
