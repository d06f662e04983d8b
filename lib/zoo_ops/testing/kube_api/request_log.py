"""The request log: each request as RBAC sees it (:class:`KubeRequest`: verb, path,
resource, namespace, name, user agent), and the log of every request any stand-in of this
process served, for a check over a whole test session."""

from __future__ import annotations

import threading
from typing import NamedTuple

# Every request any stand-in of this process served, for a check over a whole test
# session (zoo_ops.testing.kube_fixtures checks zoo-ops's own calls against deploy/rbac.yaml).
PROCESS_REQUEST_LOG: list[KubeRequest] = []
_PROCESS_LOG_LOCK = threading.Lock()


class KubeRequest(NamedTuple):
    """One request as RBAC sees it: verb, URL path, resource (``deployments/status`` for a
    subresource, empty for a non-resource URL), namespace and object name."""

    verb: str
    path: str
    resource: str
    namespace: str
    name: str
    user_agent: str = ""  # the client's User-Agent header: who made the call

    @property
    def api_group(self) -> str:
        """The API group from the path: ``apps`` for ``/apis/apps/...``, ``""`` for core."""
        parts = self.path.strip("/").split("/")
        return parts[1] if parts[0] == "apis" and len(parts) > 1 else ""
