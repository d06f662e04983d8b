"""The one way zoo-ops talks to a Kubernetes API: credentials, timeouts and error text.

Credentials: the configured ``kube_context`` of the kubeconfig (``$KUBECONFIG``, else
``~/.kube/config``); with no context configured, the in-cluster service account when
running in a pod (``KUBERNETES_SERVICE_HOST`` set), else the kubeconfig's current
context.

API failures become one-line zoo_ops errors built from the Status body's reason and
message only: never a stack trace, never a header (which could carry a bearer token).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Any

from zoo_ops.errors import BadInput, ConfigError, NotFound, StepFailed, ZooOpsError

# (connect, read) seconds: a hung apiserver must not hang a runbook cell forever.
REQUEST_TIMEOUT = (10, 30)
USER_AGENT_PREFIX = "zoo-ops/"


def user_agent() -> str:
    """``zoo-ops/<version>``: names zoo-ops's calls in the apiserver's audit log (and lets
    tests tell them from kubectl's and their own)."""
    from zoo_ops import __version__

    return f"{USER_AGENT_PREFIX}{__version__}"


def api_client(context: str) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``context`` (resolution order: module docstring)."""
    from kubernetes import client, config

    try:
        if not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            api = client.ApiClient(configuration)
        else:
            # KUBECONFIG is read here, not at import: the client library snapshots it when
            # first imported, which would ignore a later change (tests, `export` in a kernel).
            config_file = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            api = config.new_client_from_config(
                config_file=config_file, context=context or None, persist_config=False
            )
    except config.ConfigException as exc:
        if context:
            which = f"context {context!r}"
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            which = "the in-cluster service account"
        else:
            which = "the current context"
        problem = " ".join(str(exc).split())
        raise ConfigError(
            f"cannot load Kubernetes credentials for {which} ({problem}); "
            "fix kube_context in zoo_ops.toml or KUBECONFIG"
        ) from None
    api.user_agent = user_agent()
    return api


class LazyClient:
    """An ``ApiClient`` for ``context``, built on first use (once, thread-safe), so that
    configuring an environment never needs a cluster; ``api("CoreV1Api")`` wraps it."""

    def __init__(self, context: str, client: Any = None) -> None:
        self.context = context
        self._client = client
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = api_client(self.context)
            return self._client

    def api(self, kind: str) -> Any:
        """``kubernetes.client.<kind>`` (``CoreV1Api``, ``AppsV1Api``) over the one client."""
        from kubernetes import client

        return getattr(client, kind)(self.get())


def status_text(exc: Any) -> str:
    """``reason: message`` from an ApiException's Status body, else its HTTP reason."""
    body = getattr(exc, "body", None)
    try:
        status = json.loads(body) if body else {}
    except (TypeError, ValueError):
        status = {}
    if isinstance(status, dict) and status.get("message"):
        reason = status.get("reason") or getattr(exc, "reason", "")
        text = f"{reason}: {status['message']}" if reason else str(status["message"])
    else:
        text = str(getattr(exc, "reason", "") or "no reason given")
    return " ".join(text.split())


def call_api(
    where: str,
    verb: str,
    fn: Callable[..., Any],
    *args: Any,
    tolerate: Collection[int] = (),
    advice: Advice | None = None,
    **kwargs: Any,
) -> Any:
    """``fn(*args, **kwargs)`` with the request timeout; failures as one-line zoo_ops errors.

    ``where`` names the object for messages (``Deployment baseten/zoo-abc``). An HTTP
    status in ``tolerate`` (e.g. 404 for an idempotent delete) returns None instead of
    raising. Other statuses become errors by ``advice`` over :data:`DEFAULT_ADVICE`
    (404 -> NotFound, 401/403 -> ConfigError, anything else -> StepFailed); a transport
    failure (the API not reached) -> StepFailed.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        return fn(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        if exc.status in tolerate:
            return None
        raise api_error(where, verb, exc, advice) from None
    except ZooOpsError:
        raise
    except Exception as exc:  # urllib3 / socket errors: the API was not reached
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise StepFailed(
            f"{where}: cannot {verb} ({problem[:200]}); "
            "check the cluster is reachable and kube_context is right"
        ) from None


# HTTP status -> (the error, what to do about it). A store may add its own (a ConfigMap's
# 422 is a refused value, not an unhealthy apiserver).
Advice = Mapping[int, tuple[type[ZooOpsError], str]]
_CHECK_RBAC = (ConfigError, "check kube_context and your RBAC permissions")
DEFAULT_ADVICE: Advice = {
    404: (NotFound, "check namespace and names in zoo_ops.toml"),
    401: _CHECK_RBAC,
    403: _CHECK_RBAC,
}
_OTHERWISE = (StepFailed, "retry, or check the apiserver's health")


def api_error(where: str, verb: str, exc: Any, advice: Advice | None = None) -> ZooOpsError:
    """The zoo_ops error for an ApiException, naming the object, the verb and the Status."""
    status = getattr(exc, "status", None)
    text = f"{where}: {verb} failed with HTTP {status} ({status_text(exc)})"
    error, hint = {**DEFAULT_ADVICE, **(advice or {})}.get(status or 0, _OTHERWISE)
    return error(f"{text}; {hint}")


def parse_quantity(value: object) -> Decimal:
    """A Kubernetes quantity (``"500m"``, ``"2Gi"``, ``"1e3"``, ``4``) as an exact Decimal
    of base units, parsed by the official client's ``kubernetes.utils.quantity``. The
    value goes in as text, so a YAML float ``0.1`` is ``Decimal("0.1")``; anything it
    cannot parse, and a non-finite result, is BadInput."""
    from kubernetes.utils.quantity import parse_quantity as parse_k8s_quantity

    raw = str(value).strip()
    try:
        number: Decimal = parse_k8s_quantity(raw)
    except ValueError:
        number = Decimal("NaN")
    if not number.is_finite():
        raise BadInput(f"{raw!r} is not a Kubernetes quantity (e.g. 500m, 2Gi, 4)")
    return number
