"""Generic training engine shared by every stage (teacher, student, ...).

A stage is trained by ONE loop (:func:`run_stage`); a stage only supplies its
model, loss and data. Nothing here is teacher-specific except
:mod:`edgefusion.training.teacher`, which builds the teacher's stage.

API
---
``Stage(name, architecture, model_config, model, loss, dataset, metadata={}, arguments={})``
    (:mod:`.loop`)

    * ``name``: stage name; the final checkpoint is ``RUN_DIR/<name>.pt``.
    * ``architecture``, ``model_config``: registry name + plain config dict of
      the trained model; ``model`` must be what
      ``edgefusion.models.build_model(architecture, model_config)`` builds (this
      is what the checkpoint stores so it alone rebuilds the model), freshly
      initialized or holding the weights the run starts from (``--init``).
    * ``loss(model, batch) -> dict[str, Tensor]``: runs the model itself
      (``model`` may be DDP-wrapped: always call it, never ``.module``) on
      ``batch = {"ir": N×1×H×W, "vis": N×1×H×W}`` (on the run's device, [0, 1])
      and returns scalar tensors: ``"total"`` (what is minimized) plus any named
      terms/metrics, all logged (CSV column per key, tqdm postfix). If ``loss``
      is an ``nn.Module`` (frozen CLIP, a frozen teacher, ...), the loop moves it
      to the device; keep its parameters ``requires_grad=False``. Random draws
      inside the loss must use torch's global RNG (it is checkpointed).
      Autocast (CUDA AMP) wraps the call.
    * ``dataset``: a map-style Dataset indexed by ``(pair_index, item_seed)``
      that draws all its randomness from ``item_seed``, e.g.
      :class:`.dataset.PairCrops` (``PairCrops(data_dir, recipe["data"])``).
    * ``metadata``: plain values merged into every checkpoint's ``metadata``
      (the loop adds ``stage``, ``recipe`` and ``arguments``).
    * ``arguments``: command-line arguments beyond the recipe that shape the
      result, as plain values (e.g. ``{"--init": SHA-256}``); stored as
      ``metadata["arguments"]`` and compared on ``--resume`` like the recipe.

``run_stage(stage, recipe, run_dir, *, resume=False, place=None, hooks=(), progress=True) -> Path``
    Adam + warm-up/multi-step LR (:func:`.loop.lr_factor`), AMP on CUDA
    (bf16 autocast, or fp16 + GradScaler), DDP when ``place.world > 1``,
    resumable ``last.pt`` every ``train.checkpoint_every`` steps and at the end,
    final ``<name>.pt``, ``log.csv``. ``recipe`` is ``{section: dataclass}``
    and must hold ``"train"`` (:class:`.recipe.TrainConfig`); every section is
    stored in checkpoint metadata and must match on ``--resume``. Creates
    ``run_dir`` itself (so validate weights/inputs BEFORE calling it).
    ``hooks``: callables ``(step, scalars_or_None)`` run after each step.

``ddp.setup(device) -> Dist`` / ``ddp.cleanup(place)``
    Join the torchrun process group if launched by torchrun; ``Dist.rank``,
    ``.world``, ``.device``, ``.main``. Pass the result as ``place``.

Recipes (:mod:`.recipe`, torch-free)
    ``load_recipe(path_or_name, {"train": TrainConfig, "data": DataConfig, "model": MyModelConfig, ...})``
    -> ``{section: dataclass}``; fields declared with ``bounded(default, min=, max=, choices=)``;
    any problem is a one-line UserError. ``find_recipe`` also finds names in the
    packaged ``train/`` folder. ``recipe_to_dict`` gives plain dicts.

Checkpoints (:mod:`edgefusion.models.checkpoint`)
    ``read_checkpoint`` / ``load_model`` / ``model_from_payload`` /
    ``TorchFuser.load``; register new architectures in :mod:`edgefusion.models`.

Stage-specific pieces of the teacher, reusable by other stages
    :mod:`.pixel` (intensity/gradient-max L1, SSIM), :mod:`.features` (frozen
    VGG19 / CLIP feature taps), :mod:`.teacher` (``SECTIONS``, objectives,
    ``build_teacher_stage``).

CLI (:mod:`edgefusion.commands.train`)
    A stage command calls ``add_run_arguments(parser, default_config)``
    (``--data --config --out --resume --device``), validates every input, then
    ``run_stage_command(args, recipe, build_stage)`` (DDP setup, ``build_stage(place)``, loop, cleanup;
    progress bars only where ``place.main``).

Resumability contract: batches and augmentation depend only on
``(train.seed, step)``; python/numpy/torch RNG states, optimizer, scheduler and
scaler are restored from ``last.pt``; so a killed run resumed with
``--resume`` ends bit-identical to an uninterrupted run (same device, 1 process).
"""

from __future__ import annotations

__all__ = ["Stage", "run_stage", "Interrupted"]


def __getattr__(name: str):
    if name in __all__:
        from edgefusion.training import loop

        return getattr(loop, name)
    raise AttributeError(name)
