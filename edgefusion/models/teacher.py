"""The teacher fusion network: per-modality content and style encoders, AdaIN decoder.

Two layouts share :class:`TeacherConfig` (the recipe's ``[model]`` section):
``layout = "paper"`` is the paper's network (:mod:`edgefusion.models.teacher_paper`,
``train/teacher.toml``); ``layout = "unet"`` (the default, so configs stored
before layouts existed rebuild unchanged) is this module's :class:`TeacherNet`:

* content encoder per modality: 3×3 conv, then ``downsamples`` stride-2 convs
  (instance norm, ReLU), each doubling the width -> spatial content features;
* style encoder per modality: the same downsampling without normalization
  (normalization would erase style), global average pool, linear -> a
  ``style_dim`` code;
* decoder: 1×1 conv merging both content maps, ``res_blocks`` residual blocks
  whose AdaIN scales/shifts come from an MLP over the concatenated style codes,
  then ``downsamples`` × (nearest 2× upsample + conv) and a 3×3 conv + sigmoid
  to one channel. With ``skips`` (default), each upsampling conv also sees both
  content encoders' features of its scale and the last conv sees the inputs
  themselves (U-Net style), which keeps full-resolution detail and absolute
  intensity that instance normalization would otherwise remove.

I/O follows the model contract: ``forward(ir, vis) -> fused``, N×1×H×W in
[0, 1]; H and W must be multiples of :attr:`TeacherNet.stride` (``2**downsamples``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgefusion.config import bounded
from edgefusion.models.blocks import AdaINResBlock, conv_block, mlp


@dataclass
class TeacherConfig:
    """Widths and depths of the teacher (the recipe's ``[model]`` section)."""

    width: int = bounded(32, min=4)  # channels after the stem; doubles at each downsample
    downsamples: int = bounded(2, min=0, max=5)
    res_blocks: int = bounded(4, min=1)
    style_dim: int = bounded(8, min=1)  # per-modality style code length
    mlp_width: int = bounded(128, min=8)
    skips: bool = True  # encoder features and inputs fed to the decoder at every scale ("unet" only)
    layout: str = bounded("unet", choices=("unet", "paper"))

    def __post_init__(self) -> None:
        if self.layout == "paper" and self.skips:
            raise ValueError("layout 'paper' has no skip connections; set model.skips = false")


class _ContentEncoder(nn.Module):
    """Features at every scale, full resolution first (widths w, 2w, 4w, ...)."""

    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        self.stem = conv_block(1, cfg.width)
        self.down = nn.ModuleList(conv_block(cfg.width << i, cfg.width << (i + 1), stride=2) for i in range(cfg.downsamples))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(x)]
        for layer in self.down:
            features.append(layer(features[-1]))
        return features


class _StyleEncoder(nn.Module):
    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        layers = [conv_block(1, cfg.width, norm=False)]
        layers += [conv_block(cfg.width << i, cfg.width << (i + 1), stride=2, norm=False) for i in range(cfg.downsamples)]
        self.features = nn.Sequential(*layers)
        self.code = nn.Linear(cfg.width << cfg.downsamples, cfg.style_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.features(x).mean(dim=(2, 3)))


class TeacherNet(nn.Module):
    """Content/style encoder-decoder fusing IR and visible luma (see module doc)."""

    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        self.config = cfg
        self.stride = 2**cfg.downsamples
        self.min_size = self.stride + 1  # padded to 2 strides: 2 pixels at the bottleneck for its norms and reflection pads
        channels = cfg.width << cfg.downsamples
        self.content_ir, self.content_vis = _ContentEncoder(cfg), _ContentEncoder(cfg)
        self.style_ir, self.style_vis = _StyleEncoder(cfg), _StyleEncoder(cfg)
        self.merge = nn.Conv2d(2 * channels, channels, 1)
        self.blocks = nn.ModuleList(AdaINResBlock(channels) for _ in range(cfg.res_blocks))
        self.style_mlp = mlp(2 * cfg.style_dim, cfg.mlp_width, sum(b.num_params for b in self.blocks))
        skip = 2 if cfg.skips else 0  # channel multiple added by the two encoders' skip features
        self.up = nn.ModuleList(
            conv_block((channels >> i) + skip * (channels >> (i + 1)), channels >> (i + 1)) for i in range(cfg.downsamples)
        )
        self.out = nn.Conv2d(cfg.width + skip, 1, 3, padding=1, padding_mode="reflect")

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        feats_ir, feats_vis = self.content_ir(ir), self.content_vis(vis)
        x = self.merge(torch.cat([feats_ir[-1], feats_vis[-1]], dim=1))
        params = self.style_mlp(torch.cat([self.style_ir(ir), self.style_vis(vis)], dim=1))
        for block, p in zip(self.blocks, params.split([b.num_params for b in self.blocks], dim=1)):
            x = block(x, p)
        for i, layer in enumerate(self.up):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            level = len(self.up) - 1 - i
            x = layer(torch.cat([x, feats_ir[level], feats_vis[level]], dim=1) if self.config.skips else x)
        return torch.sigmoid(self.out(torch.cat([x, ir, vis], dim=1) if self.config.skips else x))


def build(config: dict) -> nn.Module:
    """Registry builder: the teacher of ``config["layout"]`` from a plain config dict (unknown keys are an error)."""
    known = {f.name for f in dataclasses.fields(TeacherConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown teacher config key {unknown[0]!r}")
    cfg = TeacherConfig(**config)
    if cfg.layout == "paper":
        from edgefusion.models.teacher_paper import PaperTeacherNet

        return PaperTeacherNet(cfg)
    return TeacherNet(cfg)
