"""Provenance of a model: objective, whether the language objective was meaningful, licence, attribution.

Checkpoint ``metadata`` keys used here (plain values):

``objective``                       what the model was trained with (text)
``language_objective_meaningful``   bool: trained (directly or through its teacher) with the real
                                    language-driven (CLIP) objective
``licence``, ``attribution``        of imported weights and everything derived from them
``source``                          imported weights: repository, commit, file, SHA-256
``teacher``                         students: the teacher's provenance (a dict like this one)

:func:`provenance_of` reads these from a checkpoint (also legacy checkpoints
that carry only ``teacher.objective``) into one flat dict that bundle
manifests, C arrays and reports copy verbatim. Numpy and stdlib only.
"""

from __future__ import annotations

import sys
from typing import Any

#: Where LD-Lite comes from (``../shared/models/ld-lite/SOURCES.md``).
LD_LITE_SOURCE = {
    "repository": "https://github.com/wyhlaowang/LD-Lite",
    "commit": "75a322b6f3e2efb71d1892829ba9a7e619b75de7",
    "file": "weight/final.pt",
}
#: SHA-256 of the authors' ``weight/final.pt`` at that commit (``../shared/models/ld-lite/SHA256SUMS``).
LD_LITE_SHA256 = "38099dbf221a951609439692f6693e8283d49e118cb2576906fda9df6ea454ea"
LD_LITE_LICENCE = "Apache-2.0"
LD_LITE_ATTRIBUTION = (
    "Contains weights derived from LD-Lite by the authors of 'Infrared and Visible Image Fusion With Language-Driven "
    "Loss and Knowledge Distillation' (wyhlaowang/LD-Lite, commit 75a322b, Apache-2.0; see LICENSE-LD-Lite and NOTICE-LD-Lite in edgefusion/assets/models)."
)
LD_LITE_OBJECTIVE = (
    "language-driven (CLIP) objective of the paper's model family: from the authors' LD-Lite weights, not trained here "
    "(the repository states neither loss nor teacher; inferred from its name, architecture and authors)"
)

KEYS = ("objective", "language_objective_meaningful", "licence", "attribution", "source")
_WARNED: set[str] = set()


def provenance_of(checkpoint: Any) -> dict[str, Any]:
    """Flat provenance dict of a checkpoint dict (or a path to one, needs torch).

    Keys: ``stage``, ``architecture``, ``objective``, ``language_objective_meaningful``
    (bool or None when unknown), ``licence``, ``attribution``, ``source`` (absent when
    unknown) and, for students, ``teacher`` (the teacher's provenance as stored).
    """
    if not isinstance(checkpoint, dict):
        from edgefusion.models.checkpoint import read_checkpoint

        checkpoint = read_checkpoint(checkpoint)
    meta = dict(checkpoint.get("metadata") or {})
    teacher = meta.get("teacher") if isinstance(meta.get("teacher"), dict) else None
    out: dict[str, Any] = {"stage": meta.get("stage"), "architecture": checkpoint.get("architecture")}
    for key in KEYS:
        if key in meta:
            out[key] = meta[key]
        elif teacher is not None and key in teacher and key != "source":
            out[key] = teacher[key]
    if teacher is not None:
        out["teacher"] = {k: v for k, v in teacher.items() if k not in ("path",)}
        if meta.get("objective") == "distillation" and teacher.get("objective"):
            out["objective"] = f"distillation from a teacher with objective: {teacher['objective']}"
    if "language_objective_meaningful" not in out:
        objective = str(out.get("objective", ""))
        out["language_objective_meaningful"] = False if "pixel" in objective or "NOT the paper" in objective else None
    return {k: v for k, v in out.items() if v is not None or k == "language_objective_meaningful"}


def teacher_summary(payload: dict, digest: str) -> dict[str, Any]:
    """What a student stores about its teacher: SHA-256 and the teacher's provenance (no paths)."""
    summary = {"sha256": digest, **{k: v for k, v in provenance_of(payload).items() if k != "teacher"}}
    return summary


def language_objective(provenance: dict[str, Any]) -> str:
    """The label of ``language_objective_meaningful`` for reports: ``meaningful``,
    ``NOT meaningful (trained without real CLIP weights)`` or ``unknown (...)``."""
    flag = provenance.get("language_objective_meaningful")
    if flag is None:
        return "unknown (the checkpoint does not say)"
    return "meaningful" if flag else "NOT meaningful (trained without real CLIP weights)"


def provenance_comment(provenance: dict[str, Any]) -> str:
    """C comment lines naming objective, licence and attribution (empty string for an empty dict)."""
    lines = [f"{key}: {provenance[key]}" for key in ("objective", "language_objective_meaningful", "licence", "attribution") if key in provenance]
    return "".join(f"/* {line.replace('*/', '* /')} */\n" for line in lines)


def warn_if_not_meaningful(provenance: dict[str, Any], name: str) -> None:
    """One stderr line, once per model name and process, when the language objective was not meaningful."""
    if provenance.get("language_objective_meaningful") is False and name not in _WARNED:
        _WARNED.add(name)
        print(
            f"edgefusion: warning: {name} was not trained with a meaningful language-driven objective "
            f"({provenance.get('objective', 'objective unknown')})",
            file=sys.stderr,
        )
