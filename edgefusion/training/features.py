"""Frozen feature networks for the teacher's regularizer (features at several depths).

* :class:`VGGFeatures`: torchvision VGG19 ``relu2_1``, ``relu3_1``, ``relu4_2``
  (the ReLU outputs of conv2_1, conv3_1, conv4_2), with or without ImageNet
  normalization of the input, weights from a LOCAL file only
  (:func:`resolve_vgg_weights`).
* :class:`ClipFeatures`: intermediate token maps of CLIP's visual tower at
  1/4, 1/2 and 3/4 of its depth; needs no extra weights.

Both map N×1×H×W luma in [0, 1] (replicated to 3 channels) to a list of
feature tensors, and have no trainable parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from edgefusion.errors import UserError
from edgefusion.language.clip import Clip
from edgefusion.language.losses import clip_input

VGG19_LAYERS = {"relu2_1": 6, "relu3_1": 11, "relu4_2": 22}  # indices in torchvision vgg19().features
VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 file name
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_vgg_weights(spec: str | os.PathLike | None) -> Path:
    """The VGG19 weights file: ``spec``, or torchvision's file in the torch hub cache; UserError if absent."""
    path = Path(os.path.expanduser(str(spec))) if spec else Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    if not path.is_file():
        raise UserError(
            f"VGG19 weights not found: {path}; downloads are disabled. Pass --vgg-weights FILE "
            f"(torchvision vgg19 state dict, {VGG19_FILE}) or set objective.regularizer = \"clip\" in the recipe"
        )
    return path


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read VGG19 weights {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict")
    return state


class VGGFeatures(nn.Module):
    """Frozen VGG19 features at relu2_1, relu3_1, relu4_2 (``imagenet_norm``: ImageNet mean/std on the input)."""

    def __init__(self, weights: Path | None, imagenet_norm: bool = True):
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["E"])[: max(VGG19_LAYERS.values()) + 1]  # vgg19().features, truncated
        if weights is not None:
            state = {k[len("features."):]: v for k, v in _read_state_dict(weights).items() if k.startswith("features.")}
            try:
                features.load_state_dict({k: v for k, v in state.items() if k in features.state_dict()}, strict=True)
            except RuntimeError as exc:
                raise UserError(f"{weights} is not a torchvision VGG19 state dict: {str(exc).splitlines()[0]}") from None
        self.features = features.eval().requires_grad_(False)
        self.imagenet_norm = imagenet_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, gray: torch.Tensor) -> list[torch.Tensor]:
        x = gray.expand(-1, 3, -1, -1)
        if self.imagenet_norm:
            x = (x - self.mean) / self.std
        out = []
        taps = set(VGG19_LAYERS.values())
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                out.append(x)
        return out

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always eval: frozen


class ClipFeatures(nn.Module):
    """Frozen CLIP visual-tower token maps at 1/4, 1/2, 3/4 depth."""

    def __init__(self, clip: Clip):
        super().__init__()
        self.visual = clip.model.visual
        self.size, self.mean, self.std = clip.image_size, clip.mean, clip.std
        depth = len(self.visual.transformer.resblocks)
        self.indices = sorted({min(depth - 1, max(0, round(depth * f) - 1)) for f in (0.25, 0.5, 0.75)})

    def forward(self, gray: torch.Tensor) -> list[torch.Tensor]:
        out = self.visual.forward_intermediates(clip_input(gray, self.size, self.mean, self.std), indices=self.indices, intermediates_only=True)
        return list(out["image_intermediates"])
