"""The Kubernetes secret store: the keys of one Secret in the environment's namespace.

A missing Secret means no secrets (every name the truss declares is then reported
missing, naming the Secret); other API failures are errors.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.kube_client import LazyClient, call_api
from zoo_ops.errors import StepFailed


class KubernetesSecretStore:
    """Secrets of the admin organization as keys of the Secret ``namespace/name``."""

    def __init__(self, *, namespace: str, name: str, context: str = "", api: Any = None) -> None:
        self.namespace = namespace
        self.name = name
        self.context = context
        self._api = api
        self._client = LazyClient(self.context)

    @property
    def location(self) -> str:
        where = f"context {self.context}, " if self.context else ""
        return f"Secret {self.namespace}/{self.name} ({where}Kubernetes)"

    @property
    def api(self) -> Any:
        """A CoreV1Api, built on first use so that configuring an env never needs a cluster."""
        return self._api if self._api is not None else self._client.api("CoreV1Api")

    def exists(self) -> bool:
        return self._read() is not None

    def _read(self) -> Any:
        return call_api(
            self.location,
            "read",
            self.api.read_namespaced_secret,
            self.name,
            self.namespace,
            tolerate=(404,),
        )

    def names(self) -> set[str]:
        """The Secret's keys. Its values came with it: they are made known to the
        scrubbing too (a pod's error quoting one is then never shown)."""
        secret = self._read()
        if secret is None:
            return set()
        known_secrets.add(_decodable_values(secret))
        return set(secret.data or {}) | set(getattr(secret, "string_data", None) or {})

    def values(self) -> dict[str, str]:
        """Name -> value for a model's load; each value is made known to the scrubbing."""
        secret = self._read()
        if secret is None:
            return {}
        out: dict[str, str] = {}
        for key, encoded in (secret.data or {}).items():
            try:
                out[key] = base64.b64decode(encoded or "").decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                # Name only: the value must never reach a message.
                raise StepFailed(
                    f"{self.location}: key {key!r} is not base64 UTF-8 text; fix the Secret"
                ) from None
        known_secrets.add(out.values())  # before any model sees them: scrubbed from now on
        return out

    def __repr__(self) -> str:  # never the values
        return f"KubernetesSecretStore({self.location!r})"


def _decodable_values(secret: Any) -> list[str]:
    """The Secret's values that decode to text (the others cannot appear in a message as
    text; :meth:`KubernetesSecretStore.values` refuses them)."""
    out = [str(v) for v in (getattr(secret, "string_data", None) or {}).values()]
    for encoded in (secret.data or {}).values():
        try:
            out.append(base64.b64decode(encoded or "").decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            continue
    return out
