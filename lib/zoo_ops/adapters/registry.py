"""The one registry type of adapter factories, keyed by a configured name.

Each adapter family (settings store, serving, cluster, secret store) has one
:class:`Registry` in :mod:`zoo_ops.adapters.wiring`, as papermill's iorw keeps its
handlers. The factory type ``F`` is the family's own: every factory of a family takes the
same configuration and collaborators and returns the family's Protocol, so mypy checks
each registered factory against it.
"""

from __future__ import annotations

from typing import Generic, TypeVar

F = TypeVar("F")


class Registry(Generic[F]):
    """Factories of one adapter family by name; ``what`` names the family in messages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._factories: dict[str, F] = {}

    def register(self, name: str, factory: F) -> None:
        """Register ``factory`` under ``name``; a later registration replaces an earlier one."""
        self._factories[name] = factory

    def get(self, name: str) -> F | None:
        return self._factories.get(name)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"
