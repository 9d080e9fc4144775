"""Text prompts of the language objective and their CLIP embeddings.

Three roles: ``ir`` and ``vis`` describe the sources, ``fused`` the objective.
Each role may list several texts; a role's embedding is the mean of the
L2-normalized text embeddings (not renormalized: the losses normalize where
their formula says so). Embeddings are computed once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

ROLES = ("ir", "vis", "fused")


@dataclass
class PromptConfig:
    """The recipe's ``[prompts]`` section: texts per role (defaults: the paper's source and objective texts)."""

    ir: list[str] = field(default_factory=lambda: ["an infrared image"])
    vis: list[str] = field(default_factory=lambda: ["a visible gray image"])
    fused: list[str] = field(default_factory=lambda: ["a clear image with detailed background and salient objects"])

    def __post_init__(self) -> None:
        for role in ROLES:
            texts = getattr(self, role)
            if not texts or not all(t.strip() for t in texts):
                raise ValueError(f"prompts.{role} must list at least one non-empty text")


@torch.no_grad()
def encode_prompts(model, tokenizer, prompts: PromptConfig, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """``{role: (D,) float32}``: mean of the role's normalized CLIP text embeddings."""
    out = {}
    for role in ROLES:
        tokens = tokenizer(getattr(prompts, role)).to(device)
        out[role] = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(dim=0)
    return out
