"""Environment: one configured environment and its adapters, built on first use.

Procedures take an ``Environment`` and plain values. Which adapter serves a role is
the configuration's choice (DESIGN §1, layer 4); each adapter family keeps its own
registry of implementations keyed by the configured scheme, as papermill's iorw does.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.config import LOCAL, EnvironmentConfig, load_environment

if TYPE_CHECKING:
    from zoo_ops.adapters.platform.deploys import DeployLog
    from zoo_ops.adapters.platform.runs import RunStore
    from zoo_ops.adapters.platform.store import PlatformStore


class Environment:
    """An environment's configuration plus lazily built adapters."""

    def __init__(self, config: EnvironmentConfig) -> None:
        self.config = config

    @classmethod
    def load(cls, name: str = LOCAL, cwd: Path | None = None) -> Environment:
        return cls(load_environment(name or LOCAL, cwd))

    @property
    def name(self) -> str:
        return self.config.name

    @cached_property
    def platform(self) -> PlatformStore:
        from zoo_ops.adapters.platform.engine import make_engine
        from zoo_ops.adapters.platform.store import PlatformStore

        return PlatformStore(make_engine(self.config.database_url_resolved))

    @cached_property
    def runs(self) -> RunStore:
        """zoo-ops's record of runbook runs (``zoo_ops_run``)."""
        from zoo_ops.adapters.platform.runs import RunStore

        return RunStore(self.platform.engine)

    @cached_property
    def deploys(self) -> DeployLog:
        """The automation's deploy log and version claims."""
        from zoo_ops.adapters.platform.deploys import DeployLog

        return DeployLog(self.platform.engine)

    @cached_property
    def settings(self) -> Any:
        from zoo_ops.adapters.settings import settings_store_for

        return settings_store_for(self.config)

    @cached_property
    def serving(self) -> Any:
        from zoo_ops.adapters.serving import serving_for

        return serving_for(self)

    @cached_property
    def cluster(self) -> Any:
        from zoo_ops.adapters.cluster import cluster_for

        return cluster_for(self.config)

    @cached_property
    def secrets(self) -> Any:
        from zoo_ops.adapters.secrets import secret_store_for

        return secret_store_for(self)

    @cached_property
    def hash_cache(self) -> Any:
        from zoo_ops.adapters.truss_files import HashCache

        return HashCache(self.config.state_path / "hash-cache.sqlite")

    def dispose(self) -> None:
        """Release pooled connections (tests and long-lived kernels call this)."""
        if "platform" in self.__dict__:
            self.platform.engine.dispose()

    def __repr__(self) -> str:
        return f"Environment({self.name!r}, database={self.config.database_url_redacted!r})"
