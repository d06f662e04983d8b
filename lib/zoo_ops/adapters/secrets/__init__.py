"""Secret stores: where the admin organization's secrets live (the model zoo's owner).

Two implementations behind one protocol, chosen by the environment's ``serving`` value
(the secrets live where the models are served):

- ``local``      -> :class:`~zoo_ops.adapters.secrets.local.DatabaseSecretStore`, the
  platform database's ``secrets_secret`` rows of the admin organization;
- ``kubernetes`` -> :class:`~zoo_ops.adapters.secrets.kubernetes.KubernetesSecretStore`,
  the keys of the Secret ``secret_name`` in the environment's namespace.

``names()`` is what preflights use. ``values()`` exists only to hand secrets to a model
when it is loaded; a value is never printed, logged, recorded or returned in a table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zoo_ops.adapters.registry import ServingKeyed

if TYPE_CHECKING:
    from zoo_ops.environment import Environment


@runtime_checkable
class SecretStore(Protocol):
    @property
    def location(self) -> str:
        """Where the secrets live, for messages (never a value)."""
        ...

    def names(self) -> set[str]:
        """The names of the secrets that exist."""
        ...

    def values(self) -> dict[str, str]:
        """Name -> value, for a model's load only; never display the result."""
        ...


SecretStoreFactory = Callable[["Environment"], SecretStore]
_REGISTRY: ServingKeyed[Any, SecretStore] = ServingKeyed("secret store")


def register_secret_store(serving: str, factory: SecretStoreFactory) -> None:
    """Register the secret store of environments whose ``serving`` is ``serving``."""
    _REGISTRY.register(serving, factory)


def _local(env: Environment) -> SecretStore:
    from zoo_ops.adapters.secrets.local import DatabaseSecretStore

    return DatabaseSecretStore(env.platform)


def _kubernetes(env: Environment) -> SecretStore:
    from zoo_ops.adapters.secrets.kubernetes import KubernetesSecretStore

    cfg = env.config
    return KubernetesSecretStore(
        namespace=cfg.namespace, name=cfg.secret_name, context=cfg.kube_context
    )


register_secret_store("local", _local)
register_secret_store("kubernetes", _kubernetes)


def secret_store_for(env: Environment) -> SecretStore:
    """The secret store for the environment's ``serving`` value."""
    return _REGISTRY.create(env.name, env.config.serving, env)
