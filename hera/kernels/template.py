"""``Template``: how a Taichi function's template parameter is annotated, in a form a type checker accepts.

Taichi wants a template parameter annotated with an *instance*,
``ti.template()``; a call is no type to mypy, so every such parameter was an
error. At run time ``Template`` is that instance (Taichi reads annotations
as objects where a module has no ``from __future__ import annotations``); to
a type checker it is ``Any``, which is what a template argument is: a field,
a struct of constants, any Python value Taichi specialises a kernel on.
Imports Taichi, like every module here that defines kernels.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["Template"]

if TYPE_CHECKING:
    Template = Any
else:
    import taichi as ti

    Template = ti.template()
