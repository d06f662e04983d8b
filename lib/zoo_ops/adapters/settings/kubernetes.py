"""The dynamic-settings ConfigMap in a Kubernetes cluster, via the official client.

Credentials: the configured ``kube_context`` of the kubeconfig (``$KUBECONFIG``, else
``~/.kube/config``); with no context configured, the in-cluster service account when
running in a pod (``KUBERNETES_SERVICE_HOST`` set), else the kubeconfig's current
context. Writes are a PUT of the object that was read, carrying its
``metadata.resourceVersion``: the apiserver answers 409 Conflict if anyone wrote since,
and :class:`~zoo_ops.adapters.settings.ConditionalStore` re-reads and re-applies.

API failures become one-line zoo_ops errors built from the Status body's reason and
message only: never a stack trace, never a header (which could carry a bearer token).
"""

from __future__ import annotations

import threading
from typing import Any

from zoo_ops.adapters.kube_client import api_client, status_text
from zoo_ops.adapters.settings import ConditionalStore, SettingsSnapshot, WriteConflict
from zoo_ops.errors import ConfigError, NotFound, SettingsError, StepFailed, ZooOpsError

# (connect, read) seconds: a hung apiserver must not hang a runbook cell forever.
REQUEST_TIMEOUT = (10, 30)


class KubernetesConfigMap(ConditionalStore):
    """A :class:`~zoo_ops.adapters.settings.SettingsStore` over a Kubernetes ConfigMap."""

    def __init__(
        self,
        *,
        namespace: str,
        name: str,
        context: str = "",
        api: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.namespace = namespace
        self.name = name
        self.context = context
        where = f"context {context}, " if context else ""
        self.location = f"ConfigMap {namespace}/{name} ({where}Kubernetes)"
        self._api = api
        self._api_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KubernetesConfigMap({self.location!r})"

    @property
    def api(self) -> Any:
        """A CoreV1Api, built on first use so that configuring an env never needs a cluster."""
        with self._api_lock:
            if self._api is None:
                from kubernetes import client

                self._api = client.CoreV1Api(api_client(self.context))
            return self._api

    # -- ConditionalStore --------------------------------------------------------------

    def _read_state(self) -> tuple[SettingsSnapshot, object]:
        obj = self._call("read", self.api.read_namespaced_config_map, self.name, self.namespace)
        data = obj.data or {}
        snapshot = SettingsSnapshot(
            data=dict(data), resource_version=str(obj.metadata.resource_version or "")
        )
        return snapshot, obj

    def _replace(self, token: object, snapshot: SettingsSnapshot, new_data: dict[str, str]) -> str:
        # PUT the object as read (labels, annotations, binaryData kept) with new data; its
        # metadata.resourceVersion is the precondition the apiserver checks.
        token.data = dict(new_data)  # type: ignore[attr-defined]
        token.metadata.resource_version = snapshot.resource_version  # type: ignore[attr-defined]
        obj = self._call(
            "replace",
            self.api.replace_namespaced_config_map,
            self.name,
            self.namespace,
            token,
            conflict_ok=True,
        )
        if obj is None:
            raise WriteConflict(self.location)
        return str(obj.metadata.resource_version or "")

    def _call(self, verb: str, fn: Any, *args: Any, conflict_ok: bool = False) -> Any:
        """Call the API; None on 409 when ``conflict_ok``; other failures as zoo_ops errors."""
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 409 and conflict_ok:
                return None
            raise self._error(verb, exc) from None
        except ZooOpsError:
            raise
        except Exception as exc:  # urllib3 / socket errors: the API was not reached
            problem = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise StepFailed(
                f"{self.location}: cannot {verb} ({problem[:200]}); "
                "check the cluster is reachable and kube_context is right"
            ) from None

    def _error(self, verb: str, exc: Any) -> ZooOpsError:
        text = status_text(exc)
        status = exc.status
        where = f"{self.location}: {verb} failed with HTTP {status} ({text})"
        if status == 404:
            return NotFound(
                f"{where}; create the ConfigMap or fix namespace/configmap in zoo_ops.toml"
            )
        if status in (401, 403):
            return ConfigError(f"{where}; check kube_context and your RBAC permissions")
        if status in (400, 422):
            return SettingsError(f"{where}; the apiserver refused the new value")
        if status == 409:
            return StepFailed(f"{where}; retry")
        return StepFailed(f"{where}; retry, or check the apiserver's health")
