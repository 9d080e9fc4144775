"""Student v2 (architecture ``student-ctx``): frame statistics as a third input, structured head.

I/O: ``forward(ir, vis, stats) -> fused``; ``ir``, ``vis`` N x 1 x H x W float32
in [0, 1] padded to a multiple of :attr:`StudentCtx.stride` (8), ``stats``
N x 6 float32 from :func:`edgefusion.runtime.frame_stats.frame_stats` of the
whole UNPADDED frame. ``analyze(ir, vis, stats) -> maps`` (N x 4 x H/4 x W/4)
and ``compose`` are those of :mod:`edgefusion.models.student` (same
full-resolution formula and cost). Nothing inside pools over the whole frame:
every tile of a frame given the frame's stats is fused as in the whole frame
(up to the receptive field at tile borders).

Network (all learned work at 1/4 and 1/8 resolution)
----------------------------------------------------
* Stem: one 4x4 stride-4 convolution per plane (``c1/2`` channels each, no
  bias), used twice: raw, and normalized by the frame statistics,
  ``(conv(x) - mean(x) * sum(w)) / (std(x) + 0.01)`` = conv of the
  instance-normalized plane (what the teacher's instance norms see), computed
  at 1/4 resolution. Bias + ReLU -> ``2 * c1`` channels.
* 1/4: 3x3 conv to ``c1``; 1/8 (2x2 average pool): three 3x3 convs (``c2``);
  the scaled stats go through a two-layer MLP to a ``c2`` vector added after
  the first 1/8 conv (the frame context, the same for every tile); ``dilated``
  extra 3x3 convs with dilations 2, 4, 8 widen the 1/8 receptive field
  (same sampling grid, so tiles aligned to 8 still match); nearest x2
  back, concat, 1x1 and 3x3 conv, 1x1 head to four values ``h0..h3``.
* Head ``structured`` (default): with ``p = avgpool4`` of the planes,
  ``M1 = h1``, ``M2 = h2``, ``M3 = h3`` and
  ``M0 = h0 + max(p_ir, p_vis) - h1*p_ir - h2*p_vis - h3*relu(p_ir - p_vis)``,
  so that ``fused ~ base + h1*(ir - blur ir) + h2*(vis - blur vis) + ...``
  with ``blur = up4(avgpool4)``: ``h1``, ``h2`` are local detail gains and
  ``h0`` a local brightness correction of ``max`` of the local means
  (products taken at 1/4 resolution only). Head ``plain``: ``M = h``.
  Both start as ``max(ir, vis)``.

Eager vs export graph
---------------------
While exporting (:func:`edgefusion.models.student.exporting`) the graph uses
the modules as listed above (``stem_ir``, ``stem_vis``, ``pool4``, ``quarter``,
``merge``), the ops the INT8 quantizers keep float or quantize by module name,
with no channel concat or split (OpenVINO's CPU plugin ran the three concats
and the split of ``h`` as reference kernels, ~1 of ~2.6 ms at 640x480 and ~13
of ~40 ms at 1080p, 1 thread): ``quarter`` and ``merge``'s first conv take
their inputs as parts (:class:`PartsConv2d`, ``merge``'s 1/8 part upsampled
after its 1x1 conv) and the structured maps add a one-hot-masked correction to
``h`` (:func:`_structured_maps`).
Eager PyTorch computes the same math faster: one stride-4 convolution per
plane computes the raw stem features, the normalized ones (the frame
normalization folded into its weights and bias, per sample) and the 4x4 mean
(weight 1/16), copied once into the channels_last input of the next
convolution (:meth:`StudentCtx._stem_features`), the 1/4-resolution network runs channels_last, ``merge``'s first
(1x1) conv is split over its two inputs so that the 1/8 part is upsampled
after it (8 instead of ``c2`` channels), 1x1 convs run through oneDNN
(:func:`_conv1x1`), and the composition runs in strips
(:class:`edgefusion.models.student.Composition`). Outputs agree within float
rounding (``tests/test_student_speed.py``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgefusion.models.student import N_MAPS, SIZES, Composition, Upsample4, _conv, exporting

HEADS = ("structured", "plain")
#: Sizes (c1 = width at 1/4, c2 = width at 1/8): the v1 sizes plus ``s+`` (wider 1/8 context).
CTX_SIZES: dict[str, tuple[int, int]] = {**SIZES, "s+": (8, 24)}
#: Fixed scale of the stats before the context MLP (means, stds, gradients -> roughly [0, 1]).
STATS_SCALE = (1.0, 4.0, 1.0, 4.0, 10.0, 10.0)
#: Added to the frame std before normalizing the stem features.
STD_EPS = 0.01


class StudentCtx(Composition, nn.Module):
    """Student fuser ``(ir, vis, stats) -> fused`` (see module doc)."""

    stride = 8
    #: Model input names, in ``forward`` order.
    inputs = ("ir", "vis", "stats")

    def __init__(self, size: str = "s", head: str = "structured", dilated: int = 0) -> None:
        super().__init__()
        if size not in CTX_SIZES:
            raise ValueError(f"unknown student size {size!r}; choose from {', '.join(CTX_SIZES)}")
        if not 0 <= dilated <= 3:
            raise ValueError(f"student-ctx dilated must be 0..3, got {dilated}")
        if head not in HEADS:
            raise ValueError(f"unknown student head {head!r}; choose from {', '.join(HEADS)}")
        self.size, self.head_kind = size, head
        c1, c2 = CTX_SIZES[size]
        self.stem_ir = nn.Conv2d(1, c1 // 2, 4, stride=4, bias=False)
        self.stem_vis = nn.Conv2d(1, c1 // 2, 4, stride=4, bias=False)
        self.stem_bias = nn.Parameter(torch.zeros(1, 2 * c1, 1, 1))
        self.quarter = PartsConv2d(2 * c1, c1, 3, padding=1)
        self.down = nn.AvgPool2d(2)
        self.eighth_in = _conv(c1, c2)
        self.context = nn.Sequential(nn.Linear(6, c2), nn.ReLU(), nn.Linear(c2, c2))
        wide = [layer for d in range(dilated) for layer in (nn.Conv2d(c2, c2, 3, padding=2 << d, dilation=2 << d), nn.ReLU())]
        self.eighth = nn.Sequential(_conv(c2, c2), nn.ReLU(), *wide, _conv(c2, c2), nn.ReLU())
        self.merge = nn.Sequential(PartsConv2d(c1 + c2, c1, 1), nn.ReLU(), _conv(c1, c1), nn.ReLU())
        self.head = nn.Conv2d(c1, N_MAPS, 1)
        self.pool4 = nn.AvgPool2d(4)
        self.up = Upsample4()
        self.register_buffer("stats_scale", torch.tensor(STATS_SCALE), persistent=False)
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 1.0, 1.0]))

    @staticmethod
    def _normalized(features: torch.Tensor, conv: nn.Conv2d, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """conv((x - mean) / (std + eps)) from conv(x), at the conv's (low) resolution."""
        weight_sum = conv.weight.sum(dim=(1, 2, 3))[None, :, None, None]
        return (features - mean[:, None, None, None] * weight_sum) / (std[:, None, None, None] + STD_EPS)

    def _stem_features(self, ir: torch.Tensor, vis: torch.Tensor, stats: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Eager: the quarter conv's input ``relu(cat[s_ir, s_vis, n_ir, n_vis] + stem_bias)`` (channels_last) and
        ``(pool4(ir), pool4(vis))``, all from one stride-4 convolution per plane.

        Its weights are, per sample ``i`` (groups of a grouped convolution over the batch), the stem's ``w``, the
        normalized features' ``w / (std_i + eps)`` with bias ``-mean_i * sum(w) / (std_i + eps)`` (the affine map of
        :meth:`_normalized` moved before the convolution) and the 4x4 mean ``1/16``; the stem bias is the
        convolution's. The features are copied once into the channels_last tensor the oneDNN convolutions read
        (twice under autograd: ``cat``, then the layout change).
        """
        n, c = ir.shape[0], self.stem_ir.out_channels
        bias = self.stem_bias.view(4, c)  # rows: s_ir, s_vis, n_ir, n_vis
        features = []
        for k, (x, conv) in enumerate(((ir, self.stem_ir), (vis, self.stem_vis))):
            scale = 1.0 / (stats[:, 2 * k + 1] + STD_EPS)  # (N,)
            w = conv.weight.expand(n, -1, -1, -1, -1)  # (N, c, 1, 4, 4)
            weight = torch.cat([w, w * scale[:, None, None, None, None], w.new_full((n, 1, 1, 4, 4), 1.0 / 16.0)], dim=1)
            shift = -stats[:, 2 * k, None] * conv.weight.sum(dim=(1, 2, 3)) * scale[:, None]  # (N, c)
            b = torch.cat([bias[k].expand(n, -1), bias[2 + k] + shift, shift.new_zeros(n, 1)], dim=1)
            y = F.conv2d(x.reshape(1, n, *x.shape[2:]), weight.reshape(-1, 1, 4, 4), b.reshape(-1), stride=4, groups=n)
            features.append(y.view(n, 2 * c + 1, *y.shape[2:]))
        (y_ir, y_vis), raw, norm = features, slice(0, c), slice(c, 2 * c)
        parts = [y_ir[:, raw], y_vis[:, raw], y_ir[:, norm], y_vis[:, norm]]
        if torch.is_grad_enabled():  # autograd: torch.cat cannot write into a given tensor
            x = torch.cat(parts, dim=1).contiguous(memory_format=torch.channels_last)
        else:
            out = torch.empty((n, 4 * c, *y_ir.shape[2:]), dtype=y_ir.dtype, device=y_ir.device, memory_format=torch.channels_last)
            x = torch.cat(parts, dim=1, out=out)
        return x.relu_(), (y_ir[:, 2 * c:], y_vis[:, 2 * c:])

    def analyze(self, ir: torch.Tensor, vis: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        """Maps M0..M3 at 1/4 resolution, N x 4 x H/4 x W/4 (see module docstring)."""
        if exporting():
            s_ir, s_vis = self.stem_ir(ir), self.stem_vis(vis)
            n_ir = self._normalized(s_ir, self.stem_ir, stats[:, 0], stats[:, 1])
            n_vis = self._normalized(s_vis, self.stem_vis, stats[:, 2], stats[:, 3])
            parts, c = (s_ir, s_vis, n_ir, n_vis), s_ir.shape[1]
            q = torch.relu(self.quarter([torch.relu(x + self.stem_bias[:, k * c:(k + 1) * c]) for k, x in enumerate(parts)]))
            means = None
        else:
            x, means = self._stem_features(ir, vis, stats)
            q = torch.relu(self.quarter(x))  # eager oneDNN convs skip a reorder per layer on channels_last
        context = self.context(stats * self.stats_scale)[:, :, None, None]
        e = self.eighth(torch.relu(self.eighth_in(self.down(q)) + context))
        z = self.merge([q, (e, 2)])  # merge(cat[q, nearest x2 of e]), e's part upsampled after the 1x1 conv
        h = self.head(z) if exporting() else _conv1x1(z, self.head.weight, self.head.bias)
        if self.head_kind == "plain":
            return h.contiguous()
        p_ir, p_vis = means or (self.pool4(ir), self.pool4(vis))
        above = torch.relu(p_ir - p_vis)
        if exporting():
            return _structured_maps(h, p_ir, p_vis, above)
        h0, h1, h2, h3 = h[:, 0:1], h[:, 1:2], h[:, 2:3], h[:, 3:4]
        m0 = h0 + p_vis + above - h1 * p_ir - h2 * p_vis - h3 * above  # max(p_ir, p_vis) = p_vis + relu(p_ir - p_vis)
        return torch.cat([m0, h1, h2, h3], dim=1).contiguous()

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return self.compose(ir, vis, self.analyze(ir, vis, stats))


class PartsConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters) that also takes its input as a list of channel parts, ``conv(cat(parts))`` as
    the sum of the parts' convolutions over the matching input-channel slices of the weight (bias once).

    A part given as ``(x, s)`` (1x1 kernels only) is at 1/s resolution: its convolution is nearest-upsampled
    x s afterwards, which equals convolving the upsampled part (eager 1x1 parts run through :func:`_conv1x1`).
    Used by ``merge`` (both paths: the 1/8 part is upsampled after the conv) and by the export graph, where OpenVINO's
    CPU plugin runs a channel Concat as a reference kernel; the convolutions stay inside this module, so the
    INT8 quantizers still find them by module name (:func:`edgefusion.convert.onnx.export_onnx` names the
    weight slices after the weight)."""

    def forward(self, parts: torch.Tensor | list[torch.Tensor | tuple[torch.Tensor, int]]) -> torch.Tensor:
        if isinstance(parts, torch.Tensor):
            return super().forward(parts)
        out, start = None, 0
        for part in parts:
            x, scale = part if isinstance(part, tuple) else (part, 1)
            if scale != 1 and self.kernel_size != (1, 1):
                raise ValueError("only 1x1 convolutions take a low-resolution part")
            weight, bias = self.weight[:, start:start + x.shape[1]], self.bias if out is None else None
            y = _conv1x1(x, weight, bias) if self.kernel_size == (1, 1) and not exporting() else self._conv_forward(x, weight, bias)
            y = y if scale == 1 else F.interpolate(y, scale_factor=float(scale), mode="nearest")
            out, start = y if out is None else out + y, start + x.shape[1]
        return out


def _structured_maps(h: torch.Tensor, p_ir: torch.Tensor, p_vis: torch.Tensor, above: torch.Tensor) -> torch.Tensor:
    """Export graph of the structured head's maps, ``[m0, h1, h2, h3]`` without slicing ``h`` or concatenating
    channels (OpenVINO's CPU plugin runs both as reference kernels, ~0.5 ms of ~3 ms at 640x480): with one-hot
    channel vectors ``e_k``, ``g = p_ir e_1 + p_vis e_2 + above e_3`` and
    ``maps = h + e_0 (p_vis + above - sum_c h_c g_c)``, the channel sum as 4 x ReduceMean."""
    onehot = [h.new_tensor([float(k == c) for c in range(N_MAPS)]).view(1, N_MAPS, 1, 1) for k in range(N_MAPS)]
    g = p_ir * onehot[1] + p_vis * onehot[2] + above * onehot[3]
    return h + onehot[0] * (p_vis + above) - (N_MAPS * onehot[0]) * (h * g).mean(dim=1, keepdim=True)


def _conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Eager 1x1 convolution. ``dilation=2`` changes nothing for a 1x1 kernel but makes PyTorch pick oneDNN,
    which its single-thread heuristic skips for 1x1 kernels (its fallback is 4-6x slower here at 1/4 resolution)."""
    return F.conv2d(x, weight, bias, dilation=2)


def build(config: dict) -> StudentCtx:
    """Registry builder (architecture ``student-ctx``): ``{"size": "s"|"s+"|"m", "head": "structured"|"plain", "dilated": 0..3}``."""
    unknown = sorted(set(config) - {"size", "head", "dilated"})
    if unknown:
        raise ValueError(f"unknown student-ctx config key {unknown[0]!r}")
    return StudentCtx(config.get("size", "s"), config.get("head", "structured"), int(config.get("dilated", 0)))
