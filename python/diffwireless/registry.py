"""Named entry points (benchmark tasks, training recipes) that other packages register without being imported here.

A registry maps a name to ``"module:function"``; the module is imported only when that entry is used, so listing
the entries costs nothing and the core never names a module of the packages built on it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any


class Registry:
    """An ordered mapping ``name -> "module:function"`` with lazy loading.

    Args:
        kind: what an entry is, for error messages (``benchmark task``, ``model``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, str] = {}

    def register(self, name: str, spec: str) -> None:
        """Add ``name`` -> ``spec``; registering the same spec again is a no-op, another spec an error."""
        module, sep, func = spec.partition(":")
        if not (name and module and sep and func):
            raise ValueError(f"{self.kind} '{name}': spec must be 'module:function', got {spec!r}")
        if self._specs.get(name, spec) != spec:
            raise ValueError(f"{self.kind} '{name}' is registered already as {self._specs[name]!r}, not {spec!r}")
        self._specs[name] = spec

    def load(self, name: str) -> Callable[..., Any]:
        """The function registered as ``name`` (its module imported now)."""
        if name not in self._specs:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self._specs) or 'none'}")
        module, func = self._specs[name].split(":")
        return getattr(importlib.import_module(module), func)

    def module(self, name: str) -> Any:
        """The module of entry ``name`` (imported now)."""
        return importlib.import_module(self._specs[name].split(":")[0])

    def __getitem__(self, name: str) -> str:
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)
