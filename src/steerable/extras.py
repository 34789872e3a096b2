"""Optional extras: one helper imports a module that an extra installs, or says in one line which extra to
install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, what: str) -> ModuleType:
    """``module`` imported; without it an ImportError whose one line says that ``what`` needs the
    ``extra`` extra and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs the '{extra}' extra: pip install 'steerable[{extra}]'") from None
