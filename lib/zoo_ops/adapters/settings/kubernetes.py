"""The dynamic-settings ConfigMap in a Kubernetes cluster, via the official client.

Credentials, timeouts and retries: :mod:`zoo_ops.adapters.kube_client` (a retried
write is safe: it is conditional). Writes are a PUT of the object that was read, carrying its
``metadata.resourceVersion``: the apiserver answers 409 Conflict if anyone wrote since,
and :class:`~zoo_ops.adapters.settings.ConditionalStore` re-reads and re-applies.

API failures become one-line zoo_ops errors built from the Status body's reason and
message only: never a stack trace, never a header (which could carry a bearer token).
"""

from __future__ import annotations

from typing import Any

from zoo_ops.adapters.kube_client import Advice, LazyClient, call_api
from zoo_ops.adapters.settings import ConditionalStore, SettingsSnapshot, WriteConflict
from zoo_ops.errors import NotFound, SettingsError, StepFailed

_REFUSED = (SettingsError, "the apiserver refused the new value")
_ADVICE: Advice = {
    404: (NotFound, "create the ConfigMap or fix namespace/configmap in zoo_ops.toml"),
    400: _REFUSED,
    422: _REFUSED,
    409: (StepFailed, "retry"),
}


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
        self._client = LazyClient(self.context)

    def __repr__(self) -> str:
        return f"KubernetesConfigMap({self.location!r})"

    @property
    def api(self) -> Any:
        """A CoreV1Api, built on first use so that configuring an env never needs a cluster."""
        return self._api if self._api is not None else self._client.api("CoreV1Api")

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
        tolerate = (409,) if conflict_ok else ()
        return call_api(self.location, verb, fn, *args, tolerate=tolerate, advice=_ADVICE)
