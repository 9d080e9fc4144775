"""LD-Lite (architecture ``ld-lite``): the paper authors' lightweight fusion network, rebuilt from its facts.

Written from the architecture facts of the public repository ``wyhlaowang/LD-Lite``
(Apache-2.0; see ``../shared/models/ld-lite/SOURCES.md``), not from its code, so
that the authors' state dict loads into it (:func:`import_state_dict`).

Project I/O: ``forward(ir, vis) -> fused``, N x 1 x H x W float32 in [0, 1], any
H, W (``stride`` 1). Inside, the authors' order is used (``x1`` = visible luma,
``x2`` = infrared) and the decoder's larger output is cropped to the top-left
H x W.

* Two content encoders (visible, infrared), each: reflection pad 3, conv 7x7
  1->8, instance norm (no affine, eps 1e-5), ReLU; three times conv 4x4 stride
  2 padding 1 (8->16->32->64), instance norm, ReLU; two residual blocks
  (reflection pad 1, conv 3x3, instance norm, ReLU, reflection pad 1, conv 3x3,
  instance norm, + identity).
* Decoder on concat(visible code, infrared code) (128 channels): three times
  transposed conv 5x5 stride 2 padding 0 (128->64->32->16), layer norm over
  C x H x W per sample with the unbiased std, ``(x - mean) / (std + 1e-5)``
  then per-channel gamma/beta, ReLU; reflection pad 3, conv 7x7 16->1,
  sigmoid, clamp to [0, 1].

The instance and layer norms use whole-frame statistics: tiles differ from the whole frame.
"""

from __future__ import annotations

import torch
from torch import nn

#: Parameters of the authors' ``weight/final.pt``.
N_PARAMETERS = 652_385


def _norm_conv(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.InstanceNorm2d(cout), nn.ReLU())


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm = nn.InstanceNorm2d(channels)
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm(self.conv1(self.pad(x))))
        return x + self.norm(self.conv2(self.pad(y)))


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), _norm_conv(1, 8, 7, 1, 0))
        self.down = nn.Sequential(_norm_conv(8, 16, 4, 2, 1), _norm_conv(16, 32, 4, 2, 1), _norm_conv(32, 64, 4, 2, 1))
        self.res = nn.Sequential(_Residual(64), _Residual(64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.down(self.stem(x)))


class _LayerNorm(nn.Module):
    """Per-sample norm over C x H x W with the unbiased std, then per-channel gamma, beta."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        mean = flat.mean(dim=1)[:, None, None, None]
        std = flat.std(dim=1, unbiased=True)[:, None, None, None]
        return (x - mean) / (std + 1e-5) * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 5, stride=2)
        self.norm = _LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class LDLite(nn.Module):
    """LD-Lite with the project's ``(ir, vis) -> fused`` I/O (see module doc)."""

    stride = 1
    #: Smallest H and W: three stride-2 convs must leave 2 pixels for the residual blocks' reflection pad.
    min_size = 16
    inputs = ("ir", "vis")
    #: Output unchanged by a per-plane ``a * x + b`` (a > 0) of the inputs: each encoder's first conv (after a
    #: reflection pad) is followed by an instance norm (lets ``[distill] gain_offset`` keep the target as is).
    gain_offset_invariant = True

    def __init__(self) -> None:
        super().__init__()
        self.encoder_vis, self.encoder_ir = _Encoder(), _Encoder()
        self.up = nn.Sequential(_Up(128, 64), _Up(64, 32), _Up(32, 16))
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(16, 1, 7))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        h, w = ir.shape[-2:]
        code = torch.cat([self.encoder_vis(vis), self.encoder_ir(ir)], dim=1)
        fused = torch.sigmoid(self.out(self.up(code))).clamp(0.0, 1.0)
        return fused[..., :h, :w]


def _authors_key_map() -> dict[str, str]:
    """Authors' state-dict key -> key of :class:`LDLite`."""
    mapping: dict[str, str] = {}
    encoder_layers = {"1": "stem.1.0", "4": "down.0.0", "7": "down.1.0", "10": "down.2.0"}
    for theirs, ours in (("content_encoder1", "encoder_vis"), ("content_encoder2", "encoder_ir")):
        for index, name in encoder_layers.items():
            for p in ("weight", "bias"):
                mapping[f"encoder.{theirs}.model.{index}.{p}"] = f"{ours}.{name}.{p}"
        for block, res in (("13", "0"), ("14", "1")):
            for conv, name in (("1", "conv1"), ("5", "conv2")):
                for p in ("weight", "bias"):
                    mapping[f"encoder.{theirs}.model.{block}.block.{conv}.{p}"] = f"{ours}.res.{res}.{name}.{p}"
    for level, (conv, norm) in enumerate((("0", "1"), ("3", "4"), ("6", "7"))):
        for p in ("weight", "bias"):
            mapping[f"decoder.model_up.{conv}.{p}"] = f"up.{level}.conv.{p}"
        for p in ("gamma", "beta"):
            mapping[f"decoder.model_up.{norm}.{p}"] = f"up.{level}.norm.{p}"
    for p in ("weight", "bias"):
        mapping[f"decoder.model_up.10.{p}"] = f"out.1.{p}"
    return mapping


def import_state_dict(authors: dict) -> dict[str, torch.Tensor]:
    """The authors' state dict renamed to :class:`LDLite` keys; ValueError naming the first mismatch."""
    mapping = _authors_key_map()
    missing = sorted(set(mapping) - set(authors))
    extra = sorted(set(authors) - set(mapping))
    if missing or extra:
        raise ValueError(f"missing key {missing[0]!r}" if missing else f"unexpected key {extra[0]!r}")
    reference = LDLite().state_dict()
    state = {}
    for theirs, ours in mapping.items():
        tensor = authors[theirs]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(reference[ours].shape):
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{theirs} has shape {got}, expected {tuple(reference[ours].shape)}")
        state[ours] = tensor.detach().to("cpu", torch.float32).clone()
    return state


def build(config: dict) -> LDLite:
    """Registry builder (architecture ``ld-lite``): no config keys."""
    if config:
        raise ValueError(f"unknown ld-lite config key {sorted(config)[0]!r}")
    return LDLite()
