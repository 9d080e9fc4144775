"""Import optional dependencies with a one-line hint at the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgefusion.errors import UserError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise a UserError naming ``pip install 'edgefusion[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{module} is not installed ({exc}); install it with: pip install 'edgefusion[{extra}]'") from None
