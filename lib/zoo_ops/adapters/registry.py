"""A registry of adapter factories keyed by a configured name, as papermill's iorw
keeps its handlers. Serving, cluster and secret stores are chosen by an environment's
``serving`` value; each family keeps one :class:`ServingKeyed` registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from zoo_ops.errors import ConfigError

A = TypeVar("A")
T = TypeVar("T")


class ServingKeyed(Generic[A, T]):
    """Factories ``factory(arg) -> T`` by ``serving`` name; ``what`` names the family."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._factories: dict[str, Callable[[A], T]] = {}

    def register(self, serving: str, factory: Callable[[A], T]) -> None:
        self._factories[serving] = factory

    def create(self, env_name: str, serving: str, arg: A) -> T:
        factory = self._factories.get(serving)
        if factory is None:
            known = ", ".join(sorted(self._factories))
            raise ConfigError(
                f"[env.{env_name}] serving = {serving!r} has no {self.what}; use one of {known}"
            )
        return factory(arg)
