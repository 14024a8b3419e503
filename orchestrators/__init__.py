"""Orchestrator functions, exported as one blueprint for ``function_app.py``."""

from . import customers, order  # noqa: F401  (importing a module registers its functions on bp)
from .blueprint import bp

__all__ = ["bp"]
