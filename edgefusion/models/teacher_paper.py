"""The paper's teacher layout (``[model] layout = "paper"``): MUNIT-style content/style encoders, AdaIN decoder.

Written from the layout described in issue 12 (the authors' code is not used).
With ``w = width``, ``n = downsamples``, ``r = res_blocks``, ``s = style_dim``:

* content encoder per modality: 7×7 conv 1 -> w, ``n`` stride-2 4×4 convs doubling
  the width (to ``w·2**n`` channels at 1/2**n resolution), ``r`` residual blocks;
  instance norm without affine and ReLU after every conv;
* style encoder per modality: 7×7 conv 1 -> w, ``n`` stride-2 4×4 convs (the
  first two double the width, the rest keep it), ReLU, no normalization, global
  average pool, 1×1 conv -> an ``s``-dim code;
* decoder on the two content maps concatenated (``C = 2·w·2**n`` channels):
  ``r`` AdaIN residual blocks whose scales/shifts (``4·C`` per block) come from
  an MLP ``2s -> mlp_width -> mlp_width -> 4·C·r`` over both style codes, then
  ``n`` × (5×5 stride-2 transposed conv halving the width, layer norm, ReLU),
  a 7×7 conv to one channel, ``clamp(tanh(.), 0, 1)``; no skip connections;
* conv and linear weights drawn from N(0, 0.02), biases 0.

Details the issue leaves open, chosen here: reflect padding for the convs, AdaIN
scales applied as ``1 + γ`` (:class:`~edgefusion.models.blocks.AdaINResBlock`),
layer norm as ``GroupNorm(1, C)`` (per-sample statistics over C×H×W,
per-channel scale 1 and shift 0 at init). The 5×5 transposed-conv kernel is
the one for which this layout has exactly the issue's parameter count.

Paper configuration (``train/teacher.toml``): w = 16, n = 3, r = 2, s = 8,
mlp_width = 256: 128 channels at 1/8 per content encoder, MLP 16 -> 256 -> 256
-> 2048, 5,776,977 parameters, 6.07 GMAC at 224×224 (conv-transpose MACs
counted per input position, as ``torch.utils.flop_counter`` does; the issue
quotes 6.3), 37.1 GMAC at 640×480.
"""

from __future__ import annotations

import torch
from torch import nn

from edgefusion.models.blocks import AdaINResBlock, ResBlock, conv_layer, mlp, up_layer

INIT_STD = 0.02
UP_KERNEL = 5


def _content_encoder(width: int, downsamples: int, res_blocks: int) -> nn.Sequential:
    layers = [conv_layer(1, width, 7, norm="instance")]
    layers += [conv_layer(width << i, width << (i + 1), 4, stride=2, norm="instance") for i in range(downsamples)]
    layers += [ResBlock(width << downsamples) for _ in range(res_blocks)]
    return nn.Sequential(*layers)


class _StyleEncoder(nn.Module):
    def __init__(self, width: int, downsamples: int, style_dim: int):
        super().__init__()
        layers = [conv_layer(1, width, 7)]
        layers += [conv_layer(width << min(i, 2), width << min(i + 1, 2), 4, stride=2) for i in range(downsamples)]
        self.features = nn.Sequential(*layers)
        self.code = nn.Conv2d(width << min(downsamples, 2), style_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.code(self.features(x).mean(dim=(2, 3), keepdim=True)).flatten(1)


class PaperTeacherNet(nn.Module):
    """The paper's fusion teacher (module doc); ``cfg`` is a :class:`~edgefusion.models.teacher.TeacherConfig`."""

    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.stride = 2**cfg.downsamples
        self.min_size = 4 if self.stride == 1 else self.stride + 1  # padded to 2 strides (2 pixels at the bottleneck), at least 4 for the 7x7 convs' reflection pad
        channels = 2 * (cfg.width << cfg.downsamples)
        self.content_ir, self.content_vis = (_content_encoder(cfg.width, cfg.downsamples, cfg.res_blocks) for _ in range(2))
        self.style_ir, self.style_vis = (_StyleEncoder(cfg.width, cfg.downsamples, cfg.style_dim) for _ in range(2))
        self.blocks = nn.ModuleList(AdaINResBlock(channels) for _ in range(cfg.res_blocks))
        self.style_mlp = mlp(2 * cfg.style_dim, cfg.mlp_width, sum(b.num_params for b in self.blocks))
        self.up = nn.Sequential(*(up_layer(channels >> i, channels >> (i + 1), UP_KERNEL) for i in range(cfg.downsamples)))
        self.out = conv_layer(channels >> cfg.downsamples, 1, 7, relu=False)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, INIT_STD)
                nn.init.zeros_(module.bias)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.content_ir(ir), self.content_vis(vis)], dim=1)
        params = self.style_mlp(torch.cat([self.style_ir(ir), self.style_vis(vis)], dim=1))
        for block, p in zip(self.blocks, params.split([b.num_params for b in self.blocks], dim=1)):
            x = block(x, p)
        return torch.tanh(self.out(self.up(x))).clamp(0.0, 1.0)
