"""Real-time student: a low-resolution analysis CNN and a closed-form full-resolution composition.

Design
------
All learned work runs at 1/4 and 1/8 of the input resolution; the full-resolution
part is a fixed formula over single-channel planes (no multi-channel tensor ever
exists at full resolution, which is what made earlier prototypes slow on CPUs).

``analyze(ir, vis) -> maps``
    A stride-4 4x4 convolution (space-to-depth in disguise: it sees every input
    pixel, so it can measure local detail, not only the block mean) reads both
    planes into ``c1`` channels at 1/4 resolution; one 3x3 convolution there,
    a 2x2 average pool to 1/8 resolution with three 3x3 convolutions (``c2``
    channels) plus a whole-frame context vector (global average pool, 1x1
    convolution, ReLU, added to every 1/8 position: the teacher's output
    depends on whole-image statistics through its instance norms and style
    codes, which a local student cannot see otherwise), a nearest x2 resize
    back, a concat with the 1/4 features, a 1x1 and a 3x3 convolution and a
    1x1 head produce four linear maps ``M0..M3`` at 1/4 resolution
    (N x 4 x H/4 x W/4). All activations are ReLU. Because of the context
    vector, a frame fused in tiles differs from the frame fused whole.
``compose(ir, vis, maps) -> fused``
    Each map is upsampled x4 bilinearly (``align_corners=False``, edge
    clamped; implemented as low-res edge replication by slicing + a fixed 3x3
    convolution to 16 phases + depth-to-space, see :class:`Upsample4`) and
    the fused luma is the locally affine formula::

        fused = clip(A0 + A1 * ir + A2 * vis + A3 * relu(ir - vis), 0, 1),  Ak = up4(Mk)

    ``relu(ir - vis)`` lets the student select per pixel (``A2 = A3 = 1`` is the
    pixel maximum); ``A1``/``A2`` above 1 amplify local detail and contrast,
    ``A0`` shifts the local brightness. At initialization the maps are
    (nearly) constant and the student is ``max(ir, vis)``. A runtime can
    compose in one numpy pass from the maps with any exact bilinear x4 resize.

Export and eager execution
--------------------------
While a model is traced for export (:func:`exporting`: ONNX, torch.export /
LiteRT, TorchScript) ``compose`` builds the graph above (fixed conv +
depth-to-space per map, whole frame). In eager PyTorch the same ``up4`` runs
as two separable linear passes (:func:`upsample4`: a linear resize of the
low-res rows' columns, then ``torch.lerp`` of two rows per output row phase;
equal to the conv within float rounding) and, unless autograd records, the frame is
composed in strips of :data:`STRIP_ROWS` low-res rows whose temporaries stay
in the CPU cache (1080p, 1 thread, busy 2-core CPU: ~6.5 ms instead of ~33 ms). Training
(autograd recording) composes the whole crop at once. ``with export_graph():``
runs the export formulation eagerly (:func:`macs_per_pixel` counts it).

Export graph ops: Conv (regular 3x3/1x1, strided 4x4, fixed 3x3), ReLU, AveragePool, ReduceMean (spatial mean),
Resize (nearest, low-res only), Concat, Slice, DepthToSpace, Add, Sub, Mul,
Clip. Channel counts are multiples of 8 inside the network. Inputs must be
padded to a multiple of :attr:`Student.stride` (8).

Cost (multiply-accumulates per full-resolution pixel of convolutions,
counted with ``torch.utils.flop_counter.FlopCounterMode``, see
:func:`macs_per_pixel`): size ``s`` (c1/c2 = 8/16) 228 MACs/pixel, 7,476
parameters, 0.47 GMAC (0.95 GFLOPs) at 1920x1080; size ``m`` (16/32) 768
MACs/pixel, 29,156 parameters, 1.6 GMAC. Of that, the fixed upsampling of
the four maps is 36 MACs/pixel; the rest of the full-resolution composition
is 7 elementwise operations per pixel (not counted above).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from edgefusion.runtime.compose import PHASES

#: Student sizes: (c1 = width at 1/4 resolution, c2 = width at 1/8 resolution).
SIZES: dict[str, tuple[int, int]] = {"s": (8, 16), "m": (16, 32)}

#: Number of per-pixel maps produced by :meth:`Student.analyze`.
N_MAPS = 4
#: Low-res rows per strip of the eager no-grad composition (64 frame rows: a 1080p strip's planes stay in L2).
STRIP_ROWS = 16


_EXPORT_GRAPH: ContextVar[bool] = ContextVar("edgefusion_export_graph", default=False)


def exporting() -> bool:
    """True while torch traces a model for export (torch.export / dynamo ONNX / LiteRT, TorchScript tracing)
    or inside :func:`export_graph`.

    Models then build their export graph (the ops listed in this module's
    docstring, which the INT8 quantizers and converters are tuned for) instead
    of the faster eager formulations of the same math.
    """
    return (
        _EXPORT_GRAPH.get() or torch.compiler.is_compiling() or torch.compiler.is_exporting()
        or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
    )


@contextmanager
def export_graph() -> Iterator[None]:
    """Run students in eager mode with their export graph's ops (cost counting, tests)."""
    token = _EXPORT_GRAPH.set(True)
    try:
        yield
    finally:
        _EXPORT_GRAPH.reset(token)


def _bilinear4_phases() -> torch.Tensor:
    """(16, 1, 3, 3) kernel: phase ``4 * py + px`` of a x4 bilinear upsample (align_corners=False).

    Output pixel ``4j + p`` sits at low-res coordinate ``j + (p + 0.5) / 4 - 0.5``,
    so it mixes neighbours ``j - 1, j`` (p < 2) or ``j, j + 1`` (p >= 2).
    """
    taps = torch.zeros(4, 3, dtype=torch.float64)
    for p in range(4):
        offset = (p + 0.5) / 4 - 0.5
        if offset < 0:
            taps[p, 0], taps[p, 1] = -offset, 1 + offset
        else:
            taps[p, 1], taps[p, 2] = 1 - offset, offset
    kernel = taps[:, None, :, None] * taps[None, :, None, :]  # (py, px, ky, kx)
    return kernel.reshape(16, 1, 3, 3).float()


def _replicate_edge(x: torch.Tensor) -> torch.Tensor:
    """Pad one pixel on every side by edge replication, with slices and concats only."""
    x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
    return torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)


class Upsample4(nn.Module):
    """Exact x4 bilinear upsampling, channel by channel, as fixed conv + depth-to-space.

    The input is edge-padded once at low resolution, then each channel is
    sliced (still at low resolution) and upsampled on its own, so no
    multi-channel tensor is ever formed at full resolution.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", _bilinear4_phases(), persistent=False)
        self.shuffle = nn.PixelShuffle(4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        padded = _replicate_edge(x)
        return [self.shuffle(F.conv2d(padded[:, k : k + 1], self.kernel)) for k in range(x.shape[1])]


def pad_rows(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, h + 2, w): one edge-replicated row above and below (input of :func:`upsample4`)."""
    return torch.cat([maps[:, :, :1], maps, maps[:, :, -1:]], dim=2)


def upsample4(padded: torch.Tensor, j0: int, j1: int) -> torch.Tensor:
    """Frame rows ``4 j0 .. 4 j1`` (N, C, 4 (j1 - j0), 4w) of the x4 bilinear upsampling of maps whose rows are
    edge-padded by :func:`pad_rows`: x4 along the columns of low-res rows ``j0 - 1 .. j1`` (linear resize, edge
    clamped), then each output row phase as one ``lerp`` of two of those rows (:data:`PHASES`)."""
    n, c, _, w = padded.shape
    k = j1 - j0
    rows = padded[:, :, j0 : j1 + 2].reshape(n, c * (k + 2), w)
    wide = F.interpolate(rows, scale_factor=4.0, mode="linear", align_corners=False).view(n, c, k + 2, 4 * w)
    phases = [torch.lerp(wide[:, :, o : o + k], wide[:, :, o + 1 : o + 1 + k], weight) for o, weight in PHASES]
    return torch.stack(phases, dim=3).view(n, c, 4 * k, 4 * w)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class Composition:
    """The closed-form full-resolution composition shared by every student (needs ``self.up``: :class:`Upsample4`)."""

    def compose(self, ir: torch.Tensor, vis: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """fused = clip(A0 + A1*ir + A2*vis + A3*relu(ir - vis), 0, 1) with Ak = bilinear x4 of map k.

        Export graph: :class:`Upsample4`, whole frame; eager: separable
        upsampling, in strips of :data:`STRIP_ROWS` unless autograd records
        (see the module docstring).
        """
        if exporting():
            return _fuse(self.up(maps), ir, vis)
        padded, h = pad_rows(maps), maps.shape[2]
        if torch.is_grad_enabled() and any(t.requires_grad for t in (ir, vis, maps)):  # autograd: one piece
            return _fuse(upsample4(padded, 0, h).split(1, dim=1), ir, vis)
        out = torch.empty_like(ir)
        for j0 in range(0, h, STRIP_ROWS):
            j1 = min(j0 + STRIP_ROWS, h)
            rows = slice(4 * j0, 4 * j1)
            _fuse(upsample4(padded, j0, j1).split(1, dim=1), ir[:, :, rows], vis[:, :, rows], out=out[:, :, rows])
        return out


def _fuse(a: list[torch.Tensor], ir: torch.Tensor, vis: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """clip(a0 + a1*ir + a2*vis + a3*relu(ir - vis), 0, 1) of full-resolution maps ``a`` (N x 1 x H x W each)."""
    a0, a1, a2, a3 = a
    fused = torch.addcmul(torch.addcmul(torch.addcmul(a0, a1, ir), a2, vis), a3, torch.relu(ir - vis))
    return torch.clamp(fused, 0.0, 1.0, out=out)


class Student(Composition, nn.Module):
    """Student fuser ``(ir, vis) -> fused``, all N x 1 x H x W in [0, 1], H and W multiples of :attr:`stride`."""

    stride = 8
    #: Model input names, in ``forward`` order.
    inputs = ("ir", "vis")

    def __init__(self, size: str = "s") -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"unknown student size {size!r}; choose from {', '.join(SIZES)}")
        self.size = size
        c1, c2 = SIZES[size]
        self.stem = nn.Conv2d(2, c1, 4, stride=4)
        self.quarter = _conv(c1, c1)
        self.down = nn.AvgPool2d(2)
        self.eighth = nn.Sequential(_conv(c1, c2), nn.ReLU(), _conv(c2, c2), nn.ReLU(), _conv(c2, c2), nn.ReLU())
        self.context = nn.Conv2d(c2, c2, 1)
        self.merge = nn.Sequential(_conv(c1 + c2, c1, 1), nn.ReLU(), _conv(c1, c1), nn.ReLU())
        self.head = nn.Conv2d(c1, N_MAPS, 1)
        self.up = Upsample4()
        self._init_as_max()

    def _init_as_max(self) -> None:
        """Constant maps A0=0, A1=0, A2=1, A3=1: the untrained student is max(ir, vis)."""
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 1.0]))

    def analyze(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Maps M0..M3 at 1/4 resolution, N x 4 x H/4 x W/4 (see module docstring)."""
        x = torch.relu(self.stem(torch.cat([ir, vis], dim=1)))
        q = torch.relu(self.quarter(x))
        e = self.eighth(self.down(q))
        e = e + torch.relu(self.context(F.adaptive_avg_pool2d(e, 1)))  # whole-frame statistics
        e = F.interpolate(e, scale_factor=2.0, mode="nearest")
        return self.head(self.merge(torch.cat([q, e], dim=1)))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.compose(ir, vis, self.analyze(ir, vis))


def build(config: dict) -> Student:
    """Registry builder (architecture ``student``): ``config = {"size": "s" | "m"}``."""
    unknown = sorted(set(config) - {"size"})
    if unknown:
        raise ValueError(f"unknown student config key {unknown[0]!r}")
    return Student(config.get("size", "s"))


def example_inputs(model: nn.Module, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Zero inputs of one frame for every name in ``model.inputs`` (default ``ir, vis``); ``stats`` is (1, 6)."""
    names = getattr(model, "inputs", ("ir", "vis"))
    return tuple(torch.zeros(1, 6) if name == "stats" else torch.zeros(1, 1, height, width) for name in names)


def macs_per_pixel(model: nn.Module, height: int = 256, width: int = 256) -> float:
    """Multiply-accumulates per input pixel of ``model(*inputs)``'s export graph, counted by FlopCounterMode (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), export_graph():
        model(*example_inputs(model, height, width))
    return counter.get_total_flops() / 2 / (height * width)
