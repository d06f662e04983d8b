"""Serving: deploy a version's truss, wait until it serves, predict with it, delete it.

Two implementations behind one protocol, chosen by the environment's ``serving`` value
through a registry (as papermill's iorw picks a handler):

- ``local``      -> :class:`~zoo_ops.adapters.serving.local.LocalServing`: the truss is
  copied (honouring its ignore patterns) into ``state_path/artifacts/<version_id>`` and
  served by the in-process runtime; legacy versions are served from their folder too.
- ``kubernetes`` -> :class:`~zoo_ops.adapters.serving.kubernetes.KubernetesServing`: a
  Deployment and a Service per version, predict over HTTP.

An *artifact* is the reference a version records (``oracles_oracleversion.artifact``):
``truss:artifacts/<id>`` and ``legacy:artifacts/<id>`` (relative to the environment's
state directory) locally, ``kubernetes:<namespace>/<name>`` on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zoo_ops.adapters.registry import ServingKeyed

if TYPE_CHECKING:
    from zoo_ops.adapters.platform.store import OracleVersion
    from zoo_ops.domain.truss_config import TrussConfig
    from zoo_ops.environment import Environment


@runtime_checkable
class Serving(Protocol):
    def deploy(
        self,
        version_id: str,
        truss_dir: Path,
        truss_config: TrussConfig,
        *,
        model: str = "",
        truss_hash: str = "",
    ) -> str:
        """Start serving the truss in ``truss_dir`` as version ``version_id``; returns the
        artifact reference to record. ``model`` (the zoo model's name) and ``truss_hash``
        label what is deployed. Raises StepFailed when the deploy cannot be started."""
        ...

    def wait_ready(self, version_id: str, artifact: str, timeout_s: float) -> None:
        """Return once the version answers requests; StepFailed (with the reason) when it
        fails or is not ready within ``timeout_s`` seconds."""
        ...

    def predict(self, version: OracleVersion, request: Any) -> Any:
        """The version's answer to ``request`` (JSON values in and out); legacy and truss
        versions alike. StepFailed when the model raises or cannot be reached."""
        ...

    def delete(self, version: OracleVersion) -> None:
        """Stop serving the version and remove what deploy created; idempotent."""
        ...


ServingFactory = Callable[["Environment"], Serving]
_REGISTRY: ServingKeyed[Any, Serving] = ServingKeyed("serving adapter")


def register_serving(name: str, factory: ServingFactory) -> None:
    """Register ``factory(env)`` for environments whose ``serving`` is ``name``."""
    _REGISTRY.register(name, factory)


def _local(env: Environment) -> Serving:
    from zoo_ops.adapters.serving.local import LocalServing

    return LocalServing(env.config.state_path, secrets=lambda: env.secrets.values())


def _kubernetes(env: Environment) -> Serving:
    from zoo_ops.adapters.serving.kubernetes import KubernetesServing

    cfg = env.config
    return KubernetesServing(
        namespace=cfg.namespace,
        context=cfg.kube_context,
        predict_url_template=cfg.predict_url_template,
        secret_name=cfg.secret_name,
    )


register_serving("local", _local)
register_serving("kubernetes", _kubernetes)


def serving_for(env: Environment) -> Serving:
    """The serving adapter the environment's ``serving`` value names."""
    return _REGISTRY.create(env.name, env.config.serving, env)
