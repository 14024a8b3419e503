"""Activity functions, exported as one blueprint for ``function_app.py``.

Binding parameters are annotated with plain classes only (``str``, ``dict``, ``object``, a
TypedDict): the Python worker refuses to load a function whose binding parameter is annotated
with a union, ``Any`` or a parameterized builtin such as ``list[str]``.
"""

from . import customers, orders  # noqa: F401  (importing a module registers its functions on bp)
from .blueprint import bp

__all__ = ["bp"]
