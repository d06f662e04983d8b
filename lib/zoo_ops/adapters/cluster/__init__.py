"""Clusters: how much room there is for a new model version (the capacity preflight).

Two implementations behind one protocol, chosen by the environment's ``serving`` value:

- ``local``      -> :class:`~zoo_ops.adapters.cluster.local.LocalMachine`: this machine's
  CPUs and memory as one node; nothing is reserved, so shortfalls are warnings, and a
  GPU request is served on the CPU by the in-process runtime (a warning, not a failure);
- ``kubernetes`` -> :class:`~zoo_ops.adapters.cluster.kubernetes.KubernetesCluster`:
  every node's allocatable minus the requests of its non-terminal pods, with the node's
  accelerator type from its ``cloud.google.com/gke-accelerator`` label.

The decision itself is pure: :func:`zoo_ops.domain.capacity.assess_capacity`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from zoo_ops.adapters.registry import ServingKeyed

if TYPE_CHECKING:
    from zoo_ops.config import EnvironmentConfig
    from zoo_ops.domain.capacity import CapacityRequest, NodeRoom


@runtime_checkable
class Cluster(Protocol):
    @property
    def location(self) -> str:
        """What the nodes are, for messages."""
        ...

    @property
    def enforced(self) -> bool:
        """Whether a shortfall refuses a deploy (False where nothing is reserved)."""
        ...

    @property
    def no_gpu_note(self) -> str:
        """What happens to a GPU request where there is no GPU ("" when that refuses)."""
        ...

    def nodes(self) -> list[NodeRoom]:
        """Every node with its allocatable amounts and the requests already on it."""
        ...

    def version_footprint(self, version_id: str) -> CapacityRequest | None:
        """What a deployed version holds, or None when unknown (e.g. a legacy version)."""
        ...


ClusterFactory = Callable[["EnvironmentConfig"], Cluster]
_REGISTRY: ServingKeyed[Any, Cluster] = ServingKeyed("cluster adapter")


def register_cluster(serving: str, factory: ClusterFactory) -> None:
    """Register the cluster of environments whose ``serving`` is ``serving``."""
    _REGISTRY.register(serving, factory)


def _local(config: EnvironmentConfig) -> Cluster:
    from zoo_ops.adapters.cluster.local import LocalMachine

    return LocalMachine(config.state_path / "artifacts")


def _kubernetes(config: EnvironmentConfig) -> Cluster:
    from zoo_ops.adapters.cluster.kubernetes import KubernetesCluster

    return KubernetesCluster(context=config.kube_context, namespace=config.namespace)


register_cluster("local", _local)
register_cluster("kubernetes", _kubernetes)


def cluster_for(config: EnvironmentConfig) -> Cluster:
    """The cluster for the environment's ``serving`` value."""
    return _REGISTRY.create(config.name, config.serving, config)
