"""Lazy package exports: a package's ``__init__`` names what it offers, and each name's module is imported
on first use. So ``import neatpipe.genome`` (or the ``neatpipe --help`` that imports every package's
``cli``) does not load the whole package and its dependencies; ``from neatpipe.genome import load_genome``
loads what that name needs. This module is a leaf: it imports nothing of neatpipe.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, tuple[str, str]], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public name to the module
    that defines it and the name there; a value, once imported, is kept in ``namespace`` (the package's
    globals), so later lookups are plain attribute reads.

    A name that is also the name of one of the package's modules (``neatpipe.bench.assemble``, the
    function, in the module ``assemble``) is bound at once: importing that module would otherwise set
    the package attribute to the module, and ``__getattr__`` is only asked for names that are missing."""
    for name, (module, attribute) in exports.items():
        if module == f"{package}.{name}":
            namespace[name] = getattr(importlib.import_module(module), attribute)

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = where
        value = getattr(importlib.import_module(module), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
