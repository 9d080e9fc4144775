"""The whole training pipeline (bare ``edgefusion train``): teacher, then a student distilled from it.

``train/pipeline.toml`` names the two stage recipes (``[stages] teacher``,
``student``: packaged recipe names or files). Stages run in
``RUN_DIR/teacher/`` and ``RUN_DIR/student/``; a stage whose final
checkpoint (``teacher.pt`` / ``student.pt``) is already there and readable is
skipped, a started one needs ``--resume`` like any stage. Both recipes (and
the teacher's external weights) are validated before anything runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgefusion.errors import UserError
from edgefusion.models.checkpoint import read_checkpoint
from edgefusion.training import ddp, distill, teacher
from edgefusion.training.loop import run_stage
from edgefusion.training.recipe import load_recipe

log = logging.getLogger(__name__)


@dataclass
class StagesConfig:
    """``[stages]``: the recipe of each stage (name in the packaged ``train/`` folder or a file)."""

    teacher: str = "teacher"
    student: str = "student"


def complete(final: Path, architecture: str) -> bool:
    """True when ``final`` is a readable checkpoint of ``architecture`` (written atomically at a stage's end)."""
    if not final.is_file():
        return False
    try:
        return read_checkpoint(final).get("architecture") == architecture
    except UserError:
        return False


def run_pipeline(
    data_dir: str | os.PathLike,
    config: str | os.PathLike,
    out: str | os.PathLike,
    *,
    teacher_recipe: str | None = None,
    student_recipe: str | None = None,
    resume: bool = False,
    place: ddp.Dist | None = None,
    progress: bool = True,
    teacher_overrides: dict | None = None,
) -> Path:
    """Run (or finish) both stages; returns ``RUN_DIR/student/student.pt``.

    ``teacher_overrides``: keyword arguments of :func:`edgefusion.training.teacher.apply_overrides`.
    """
    place = place or ddp.Dist()
    stages = load_recipe(config, {"stages": StagesConfig})["stages"]
    t_recipe = teacher.apply_overrides(load_recipe(teacher_recipe or stages.teacher, teacher.SECTIONS), **(teacher_overrides or {}))
    distill.load_student_recipe(student_recipe or stages.student)  # fail early on a bad student recipe
    out = Path(out)
    teacher_final = out / "teacher" / "teacher.pt"
    if complete(teacher_final, "teacher"):
        log.warning("teacher stage already complete (%s); skipping it", teacher_final)
    else:
        weights = teacher.check_weights(t_recipe)
        stage = teacher.build_teacher_stage(t_recipe, data_dir, weights, progress=progress and place.main)
        started = (teacher_final.parent / "last.pt").is_file()
        run_stage(stage, t_recipe, teacher_final.parent, resume=resume and started, place=place, progress=progress)
    student_final = out / "student" / f"{distill.FINAL_NAME}.pt"
    if complete(student_final, "student"):
        log.warning("student stage already complete (%s); skipping it", student_final)
        return student_final
    return distill.distill(teacher_final, data_dir, student_recipe or stages.student, student_final.parent, resume=resume, place=place, progress=progress)
