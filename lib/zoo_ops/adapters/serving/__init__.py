"""Serving: deploy a version's truss, wait until it serves, predict with it, delete it.

Two implementations behind one protocol, chosen by the environment's ``serving`` value
(the choice is made in :mod:`zoo_ops.adapters.wiring`):

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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from zoo_ops.adapters.platform.store import OracleVersion
    from zoo_ops.domain.truss_config import TrussConfig


@dataclass(frozen=True)
class Removal:
    """What retiring one version did to its serving: what was removed, what was left and
    why (empty strings when there is nothing to say)."""

    removed: str = ""
    not_removed: str = ""
    why: str = ""


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

    def endpoint_problem(self, version: OracleVersion) -> str | None:
        """None when :meth:`predict` can reach the version as configured, else one line
        naming the configuration key to set (checked before anything is changed)."""
        ...

    def retire(self, version: OracleVersion) -> Removal:
        """Stop serving a version being retired, as far as this adapter serves it: remove
        what it made, and say what it could not remove (and why) for the rest."""
        ...
