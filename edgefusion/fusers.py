"""Open any kind of fuser by name: the one place above both the runtime and the models.

A *fuser spec* is either a classical method name (``max``, ``mean``,
``laplacian``; see :mod:`edgefusion.baselines`), a PyTorch checkpoint file
(``*.pt``: teacher or student, needs the ``train`` extra), or a deployment
bundle (a folder with ``manifest.json`` or a ``.zip``; runs through
:mod:`edgefusion.runtime` with numpy and one backend). Every fuser is a
:class:`edgefusion.runtime.frame.PlaneFuser`.
"""

from __future__ import annotations

from pathlib import Path

from edgefusion.errors import UserError
from edgefusion.runtime.frame import PlaneFuser


def open_fuser(spec: str | Path) -> PlaneFuser:
    """Build the fuser named by ``spec`` (method name, shipped model name, checkpoint file or bundle)."""
    from edgefusion import baselines
    from edgefusion.models.shipped import resolve_model_spec

    text = str(resolve_model_spec(spec))
    if text in baselines.METHODS:
        return baselines.MethodFuser(text)
    path = Path(text)
    if not path.exists():
        raise UserError(f"unknown fusion method or model path: {text} (methods: {', '.join(baselines.METHODS)})")
    if path.is_dir() or path.suffix.lower() == ".zip":
        from edgefusion.runtime import Fuser

        return Fuser.open(path)
    from edgefusion.models.checkpoint import TorchFuser

    return TorchFuser.load(path)
