"""Package faces that load their names on first use (PEP 562): importing one module of a
package, or the package for one name, does not import everything the package offers.

    _WHERE = {"Store": "kv", "Layout": "keys"}        # name -> the submodule defining it
    __getattr__, __dir__, __all__ = lazy_face(__name__, _WHERE)

Type checkers see the names through ``if TYPE_CHECKING:`` imports beside the table.
"""

from __future__ import annotations

import sys

# Every package face runs this at import: typing (~5 ms) only for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_face(package: str, where: Mapping[str, str]
              ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The ``__getattr__``, ``__dir__`` and ``__all__`` of ``package``, whose public names
    live in the submodules ``where`` names. A name is imported once, then kept in the
    package's namespace."""
    namespace = sys.modules[package].__dict__
    public = sorted(where)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        # __import__, not importlib.import_module: importlib (with warnings) costs a runtime
        # command, which starts at a package face, half a millisecond.
        submodule = f"{package}.{module}"
        __import__(submodule)
        value = getattr(sys.modules[submodule], name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *public})

    return __getattr__, __dir__, public
