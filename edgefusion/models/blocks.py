"""Small building blocks of the fusion networks (export-friendly: conv, norm, ReLU, upsampling)."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int, stride: int = 1, norm: bool = True) -> nn.Sequential:
    """3×3 conv (reflect padding) + optional instance norm + ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect")]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def conv_layer(cin: int, cout: int, kernel: int, stride: int = 1, norm: str = "none", relu: bool = True) -> nn.Sequential:
    """``kernel``×``kernel`` conv (reflect padding ``(kernel - 1) // 2``) + norm + optional ReLU.

    ``norm``: ``"none"``, ``"instance"`` (no affine: per-sample, per-channel statistics) or
    ``"layer"`` (per-sample statistics over C×H×W, per-channel scale and shift).
    """
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, padding_mode="reflect")]
    return _norm_act(layers, cout, norm, relu)


def up_layer(cin: int, cout: int, kernel: int, norm: str = "layer") -> nn.Sequential:
    """×2 transposed conv (odd ``kernel``, zero padding, output exactly twice the input) + norm + ReLU."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=(kernel - 1) // 2, output_padding=1)]
    return _norm_act(layers, cout, norm, True)


def _norm_act(layers: list[nn.Module], channels: int, norm: str, relu: bool) -> nn.Sequential:
    if norm == "instance":
        layers.append(nn.InstanceNorm2d(channels, affine=False))
    elif norm == "layer":
        layers.append(nn.GroupNorm(1, channels))
    elif norm != "none":
        raise ValueError(f"unknown norm {norm!r}")
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """Residual block ``x + conv-IN-ReLU-conv-IN(x)`` (3×3 convs, instance norm without affine)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_layer(channels, channels, 3, norm="instance"), conv_layer(channels, channels, 3, norm="instance", relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AdaIN(nn.Module):
    """Adaptive instance norm: ``gamma * instance_norm(x) + beta`` with per-sample (N, C) gamma and beta."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.norm = nn.InstanceNorm2d(channels, affine=False)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * gamma[:, :, None, None] + beta[:, :, None, None]


class AdaINResBlock(nn.Module):
    """Residual block ``x + conv-AdaIN-ReLU-conv-AdaIN(x)``; consumes 4·C style parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm1, self.norm2 = AdaIN(channels), AdaIN(channels)
        self.num_params = 4 * channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = params.chunk(4, dim=1)
        y = torch.relu(self.norm1(self.conv1(x), 1 + g1, b1))
        return x + self.norm2(self.conv2(y), 1 + g2, b2)


def mlp(cin: int, hidden: int, cout: int, layers: int = 3) -> nn.Sequential:
    """``layers`` linear layers with ReLU between them."""
    dims = [cin] + [hidden] * (layers - 1) + [cout]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        modules.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            modules.append(nn.ReLU(inplace=True))
    return nn.Sequential(*modules)
