"""Provenance of a model: objective, whether the language objective was meaningful, licence, attribution.

Checkpoint ``metadata`` keys used here (plain values):

``objective``                       what the model was trained with (text)
``language_objective_meaningful``   bool: trained (directly or through its teacher) with the real
                                    language-driven (CLIP) objective
``licence``, ``attribution``        of imported weights and everything derived from them
``source``                          imported weights: repository, commit, file, SHA-256
``teacher``                         students: the teacher's provenance (a dict like this one)
``init``                            fine-tuned students (``--init``): the model they started from,
                                    :func:`init_summary` (name or file name, SHA-256, its provenance)

A student inherits flag, licence and attribution from everything its weights
come from, its teacher and its init model (:func:`inherited`): the flag is true
only when all of them were trained with the language objective, and every
licence and attribution is carried. :func:`provenance_of` reads these from a
checkpoint (also legacy checkpoints that carry only ``teacher.objective``) into
one flat dict that bundle manifests, C arrays and reports copy verbatim. Numpy
and stdlib only.
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
    unknown) and, for students, ``teacher`` (the teacher's provenance as stored) and,
    for fine-tuned ones, ``init`` (:func:`init_summary`; the objective then names it).
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
    init = meta.get("init") if isinstance(meta.get("init"), dict) else None
    if init is not None:
        out["init"] = init
        out["objective"] = f"fine-tuned from {init.get('model')} (whose objective: {init.get('objective', 'unknown')}) by {out.get('objective', 'an unknown objective')}"
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


def init_summary(payload: dict, digest: str, label: str) -> dict[str, Any]:
    """What a fine-tuned student stores about the model it started from: ``model`` (shipped name or
    file name, no paths), ``sha256`` and that model's whole provenance (its teacher and init included)."""
    return {"model": label, "sha256": digest, **provenance_of(payload)}


def inherited(*sources: dict[str, Any] | None) -> dict[str, Any]:
    """``language_objective_meaningful``, ``licence`` and ``attribution`` of a model whose weights come from
    ``sources`` (provenance dicts; None entries skipped): the flag is False when any source's is False,
    True when all are True, else None (unknown); each distinct licence (joined with " AND ") and attribution."""
    present = [s for s in sources if s is not None]
    flags = [s.get("language_objective_meaningful") for s in present]
    out: dict[str, Any] = {"language_objective_meaningful": False if False in flags else True if flags and all(f is True for f in flags) else None}
    for key, joiner in (("licence", " AND "), ("attribution", " ")):
        values = list(dict.fromkeys(s[key] for s in present if s.get(key)))
        if values:
            out[key] = joiner.join(values)
    return out


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
