"""Environment: one configured environment and its adapters, built on first use.

Procedures take an ``Environment`` and plain values. Where the configuration chooses
an adapter (settings, serving, cluster, secrets: DESIGN §1, layer 4), the choice is made
in one place, :mod:`zoo_ops.adapters.wiring`, and the adapter is exposed here as its
Protocol, so that procedures (and mypy) see only what the Protocol promises. The
platform database and zoo-ops's own stores over it (runs, deploys, migrations, the hash
cache) have one implementation each and are built here, over one engine.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from zoo_ops.config import LOCAL, EnvironmentConfig, load_environment

if TYPE_CHECKING:
    from zoo_ops.adapters.cluster import Cluster
    from zoo_ops.adapters.platform.deploys import DeployLog
    from zoo_ops.adapters.platform.runs import RunStore
    from zoo_ops.adapters.platform.store import PlatformStore
    from zoo_ops.adapters.secrets import SecretStore
    from zoo_ops.adapters.serving import Serving
    from zoo_ops.adapters.settings import SettingsStore
    from zoo_ops.adapters.truss_files import HashCache
    from zoo_ops.migration.store import MigrationStore


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

        return DeployLog(self.platform.engine, platform=self.platform)

    @cached_property
    def migrations(self) -> MigrationStore:
        """The migration engine's records, journal, locks and batches (``zoo_ops_migration*``)."""
        from zoo_ops.migration.store import MigrationStore

        return MigrationStore(self.platform.engine)

    @cached_property
    def settings(self) -> SettingsStore:
        """The dynamic-settings ConfigMap (``settings``: ``file:PATH`` or ``kubernetes``)."""
        from zoo_ops.adapters.wiring import settings_store_for

        return settings_store_for(self.config)

    @cached_property
    def serving(self) -> Serving:
        """Deploy, wait for, predict with and delete versions (``serving``)."""
        from zoo_ops.adapters.wiring import serving_for

        return serving_for(self.config, secrets=lambda: self.secrets)

    @cached_property
    def cluster(self) -> Cluster:
        """Room for a new version: this machine or the Kubernetes nodes (``serving``)."""
        from zoo_ops.adapters.wiring import cluster_for

        return cluster_for(self.config)

    @cached_property
    def secrets(self) -> SecretStore:
        """The admin organization's secrets, where the models are served (``serving``)."""
        from zoo_ops.adapters.wiring import secret_store_for

        return secret_store_for(self.config, platform=lambda: self.platform)

    @cached_property
    def hash_cache(self) -> HashCache:
        from zoo_ops.adapters.truss_files import HashCache

        return HashCache(self.config.state_path / "hash-cache.sqlite")

    def dispose(self) -> None:
        """Release pooled connections (tests and long-lived kernels call this)."""
        if "platform" in self.__dict__:
            self.platform.engine.dispose()

    def __repr__(self) -> str:
        return f"Environment({self.name!r}, database={self.config.database_url_redacted!r})"
