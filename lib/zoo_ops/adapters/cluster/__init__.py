"""Clusters: how much room there is for a new model version (the capacity preflight).

Two implementations behind one protocol, chosen by the environment's ``serving`` value
(see :mod:`zoo_ops.adapters.wiring`):

- ``local``      -> :class:`~zoo_ops.adapters.cluster.local.LocalMachine`: this machine's
  CPUs and memory as one node; nothing is reserved, so shortfalls are warnings, and a
  GPU request is served on the CPU by the in-process runtime (a warning, not a failure);
- ``kubernetes`` -> :class:`~zoo_ops.adapters.cluster.kubernetes.KubernetesCluster`:
  every node's allocatable minus the requests of its non-terminal pods, with the node's
  accelerator type from its ``cloud.google.com/gke-accelerator`` label.

The decision itself is pure: :func:`zoo_ops.domain.capacity.assess_capacity`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
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
