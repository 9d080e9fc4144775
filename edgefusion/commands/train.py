"""``edgefusion train [STAGE]``: train the fusion networks from TOML recipes.

Bare ``edgefusion train --data DIR --out RUN_DIR`` runs the whole pipeline
(:mod:`edgefusion.training.pipeline`); a STAGE runs one stage.

``edgefusion train teacher --data DIR --config train/teacher.toml --out RUN_DIR``
trains the language-driven teacher (:mod:`edgefusion.training.teacher`).
Every input (recipe, data folder, CLIP/VGG weights) is validated before
``RUN_DIR`` is created; ``--resume`` continues ``RUN_DIR/last.pt`` exactly.
Multi-GPU/CPU: ``torchrun --nproc_per_node=N -m edgefusion train teacher ...``.
"""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser, default_config: str) -> None:
    """Arguments every training stage takes: data, recipe, run folder, resume, device."""
    parser.add_argument("--data", required=True, metavar="DIR", help="training pairs: a folder with ir/ and vi/")
    parser.add_argument("--config", default=default_config, metavar="TOML",
                        help=f"recipe file or packaged recipe name (default {default_config})")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder: checkpoints, log.csv")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt (same recipe and arguments)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")


USAGE = """edgefusion train --data DIR --out RUN_DIR [--teacher-config TOML] [--student-config TOML] [--resume] [options]
       edgefusion train {teacher,student} ...    (one stage; edgefusion train STAGE --help)"""

DESCRIPTION = ("Without STAGE: the whole pipeline, teacher then student (train/pipeline.toml), in RUN_DIR/teacher "
               "and RUN_DIR/student, skipping finished stages. With STAGE: that stage only.")

EPILOG = ("First run (both stages, tiny, seconds on a CPU; checks the machinery, not quality): "
          "edgefusion train --data edgefusion/assets/samples --out RUN --teacher-config teacher-smoke "
          "--student-config student-smoke --device cpu")


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the teacher and student (whole pipeline) or one stage",
                                   usage=USAGE, description=DESCRIPTION, epilog=EPILOG)
    # Stages: `teacher` here; `student` and the bare `edgefusion train` pipeline are registered next to it.
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", title="stages (optional)", prog=parser.prog)
    teacher = stages.add_parser("teacher", help="train the language-driven teacher (CLIP loss)")
    add_run_arguments(teacher, "train/teacher.toml")
    add_weight_arguments(teacher)
    teacher.set_defaults(func=run_teacher)
    register_student(stages)
    register_pipeline(parser, stages)


def add_weight_arguments(parser: argparse.ArgumentParser) -> None:
    """``--clip-model``, ``--clip-weights``, ``--vgg-weights``: where the teacher's frozen networks come from."""
    parser.add_argument("--clip-model", metavar="NAME", help="open_clip model name (recipe default ViT-B-32)")
    parser.add_argument("--clip-weights", metavar="TAG|FILE",
                        help="open_clip pretrained tag present in the local cache, a .pt/.bin/.safetensors file, or 'random'")
    parser.add_argument("--vgg-weights", metavar="FILE", help="torchvision VGG19 state dict for the regularizer")


def run_distributed(args: argparse.Namespace, work) -> int:
    """Run ``work(place)`` inside the torchrun process group (``--device``); rank 0 prints the final checkpoint."""
    from edgefusion.training import ddp

    place = ddp.setup(args.device)
    try:
        final = work(place)
    finally:
        ddp.cleanup(place)
    if place.main:
        print(final)
    return 0


def run_stage_command(args: argparse.Namespace, recipe: dict, build_stage) -> int:
    """Shared tail of every stage command: DDP setup, ``build_stage(place)``, the loop, cleanup."""
    from edgefusion.training.loop import run_stage

    return run_distributed(args, lambda place: run_stage(build_stage(place), recipe, args.out, resume=args.resume, place=place))


def run_teacher(args: argparse.Namespace) -> int:
    from edgefusion.optional import require

    require("torch", "train")
    require("open_clip", "train")
    from edgefusion.io.outputs import check_output_folder
    from edgefusion.io.pairs import find_pairs
    from edgefusion.training import teacher
    from edgefusion.training.recipe import load_recipe

    recipe = teacher.apply_overrides(load_recipe(args.config, teacher.SECTIONS), args.clip_model, args.clip_weights, args.vgg_weights)
    find_pairs(args.data)  # fail on a bad data folder before anything is written
    check_output_folder(args.out, "run")
    weights = teacher.check_weights(recipe)
    return run_stage_command(args, recipe, lambda place: teacher.build_teacher_stage(recipe, args.data, weights, progress=place.main))


def register_student(stages) -> None:
    """``edgefusion train student``: distill a student from a teacher checkpoint."""
    student = stages.add_parser("student", help="distill the real-time student from a teacher checkpoint (or fine-tune one: --init)")
    student.add_argument("--teacher", required=True, metavar="CKPT", help="teacher.pt written by 'edgefusion train teacher', or teacher-ld.pt written by 'edgefusion import ld-lite' "
                              "(use --config train/student-ld.toml for the v2 student)")
    student.add_argument("--init", metavar="MODEL", help="fine-tune: start from this student instead of random weights: a shipped model "
                              "(student-ld, student-s, or an alias: edgefusion models) or a student checkpoint; its architecture and "
                              "config must be the recipe's [model] (e.g. --init student-ld --config train/student-ld-finetune.toml)")
    add_run_arguments(student, "train/student.toml")
    student.set_defaults(func=run_student)


def register_pipeline(parser: argparse.ArgumentParser, stages) -> None:
    """Bare ``edgefusion train``: teacher then student (train/pipeline.toml), skipping completed stages."""
    parser.add_argument("--data", metavar="DIR", help="(pipeline) training pairs: a folder with ir/ and vi/")
    parser.add_argument("--config", default="train/pipeline.toml", metavar="TOML", help="(pipeline) stage recipes (default train/pipeline.toml)")
    parser.add_argument("--teacher-config", metavar="TOML", help="(pipeline) teacher recipe instead of the pipeline's")
    parser.add_argument("--student-config", metavar="TOML", help="(pipeline) student recipe instead of the pipeline's")
    parser.add_argument("--out", metavar="RUN_DIR", help="(pipeline) run folder; stages go to RUN_DIR/teacher and RUN_DIR/student")
    parser.add_argument("--resume", action="store_true", help="(pipeline) continue started stages")
    parser.add_argument("--device", default="auto", help="(pipeline) auto (CUDA if available), cpu, cuda, cuda:N")
    add_weight_arguments(parser)
    parser.set_defaults(func=run_pipeline)


def run_student(args: argparse.Namespace) -> int:
    from edgefusion.optional import require

    require("torch", "train")
    from edgefusion.io.outputs import check_output_folder
    from edgefusion.io.pairs import find_pairs
    from edgefusion.training import distill, distill_ctx

    find_pairs(args.data)
    check_output_folder(args.out, "run")
    run = distill_ctx.distill_ctx if distill_ctx.is_ctx_recipe(args.config) else distill.distill  # student-ctx: cached whole-frame targets
    return run_distributed(args, lambda place: run(args.teacher, args.data, args.config, args.out, resume=args.resume, place=place, init=args.init))


def run_pipeline(args: argparse.Namespace) -> int:
    from edgefusion.errors import UserError
    from edgefusion.optional import require

    if not args.data or not args.out:
        raise UserError("edgefusion train needs a stage (teacher, student) or, for the whole pipeline, --data DIR and --out RUN_DIR")
    require("torch", "train")
    from edgefusion.io.outputs import check_output_folder
    from edgefusion.io.pairs import find_pairs
    from edgefusion.training import pipeline

    find_pairs(args.data)
    check_output_folder(args.out, "run")
    return run_distributed(args, lambda place: pipeline.run_pipeline(
        args.data, args.config, args.out, teacher_recipe=args.teacher_config, student_recipe=args.student_config, resume=args.resume, place=place,
        teacher_overrides={"clip_model": args.clip_model, "clip_weights": args.clip_weights, "vgg_weights": args.vgg_weights}))
