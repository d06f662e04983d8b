"""The one way zoo-ops talks to a Kubernetes API: credentials, timeouts, retries, error text.

Credentials, in this order:

1. no ``kube_context`` configured and running in a pod (``KUBERNETES_SERVICE_HOST``
   set): the pod's service account (in-cluster config);
2. a kubeconfig file (``$KUBECONFIG``, else ``~/.kube/config``) exists: its
   ``kube_context``, or its current context when none is configured;
3. no kubeconfig file but running in a pod: the pod's service account, even with
   ``kube_context`` set (a pod has no kubeconfig, and the context names the cluster the
   pod runs in);
4. otherwise: one ConfigError line saying what was looked for.

Timeouts and retries (every call goes through :func:`call_api`):

* each request has an explicit (connect, read) timeout, :data:`REQUEST_TIMEOUT` =
  (10 s, 30 s); the client's own urllib3 retries are OFF (``configuration.retries = 0``),
  which would otherwise repeat a stalled request four times unseen (2 min 4 s);
* a call is retried, with exponential backoff (0.5 s doubling, at most 8 s, jittered),
  on HTTP 429 (waiting at least its ``Retry-After``), 500, 502, 503, 504, a connection
  reset, and a connect or read timeout; not on a connection refused or a name that does
  not resolve (a wrong address: said at once);
* only calls that are safe to repeat are retried after the request may have reached the
  apiserver: reads, lists, deletes (a repeated delete that answers 404 is the object
  gone), updates (they carry ``metadata.resourceVersion``: a repeat after a lost answer
  gets 409 Conflict, which the settings store re-reads and re-applies) and creates whose
  caller tolerates 409 AlreadyExists (it then reads and replaces the object); any other
  create is retried only on 429 and a connect timeout (the apiserver never took it);
* every call has an overall deadline, :data:`CALL_DEADLINE_S` (60 s): no attempt's timeout
  reaches past it and no retry starts after it, so a call ends within the deadline plus
  one connect; then the last cause becomes one line.

Waiting on an object (:func:`watch_objects`): a watch where RBAC grants ``watch``, with
the server ending the stream at the wait's deadline and a read timeout of that plus the
read timeout; a refused or broken watch makes the caller poll with backoff
(:mod:`zoo_ops.adapters.polling`).

``ZOO_OPS_KUBE_CONNECT_TIMEOUT_S``, ``ZOO_OPS_KUBE_READ_TIMEOUT_S`` and
``ZOO_OPS_KUBE_CALL_DEADLINE_S`` override the three numbers (seconds).

API failures become one-line zoo_ops errors built from the Status body's reason and
message only: never a stack trace, never a header (which could carry a bearer token).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random

from zoo_ops.adapters.polling import WatchBroken, WatchUnavailable
from zoo_ops.errors import BadInput, ConfigError, NotFound, StepFailed, ZooOpsError

# (connect, read) seconds: a hung apiserver must not hang a runbook cell forever.
REQUEST_TIMEOUT = (10.0, 30.0)
# Seconds one call may take, retries included.
CALL_DEADLINE_S = 60.0
# HTTP statuses a call is retried on: throttled, or the apiserver (or a proxy) unwell.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BACKOFF = wait_exponential(multiplier=0.5, max=8) + wait_random(0, 0.25)
USER_AGENT_PREFIX = "zoo-ops/"


def user_agent() -> str:
    """``zoo-ops/<version>``: names zoo-ops's calls in the apiserver's audit log (and lets
    tests tell them from kubectl's and their own)."""
    from zoo_ops import __version__

    return f"{USER_AGENT_PREFIX}{__version__}"


def _seconds(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name``, else ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} is not a positive number of seconds; fix or unset it")
    return value


def timeouts() -> tuple[float, float, float]:
    """(connect timeout, read timeout, call deadline) in seconds: the documented defaults,
    or their ``ZOO_OPS_KUBE_*`` overrides (module docstring)."""
    return (
        _seconds("ZOO_OPS_KUBE_CONNECT_TIMEOUT_S", REQUEST_TIMEOUT[0]),
        _seconds("ZOO_OPS_KUBE_READ_TIMEOUT_S", REQUEST_TIMEOUT[1]),
        _seconds("ZOO_OPS_KUBE_CALL_DEADLINE_S", CALL_DEADLINE_S),
    )


def kubeconfig_path() -> str:
    """``$KUBECONFIG`` (one path, or several joined by ``:`` that the client merges as
    kubectl does), else ``~/.kube/config``. Read at each call, not at import: the client
    library snapshots it when first imported, which would ignore a later change (tests,
    ``export`` in a kernel)."""
    return os.environ.get("KUBECONFIG", "").strip() or os.path.expanduser("~/.kube/config")


def kubeconfig_exists() -> bool:
    """Whether any file of :func:`kubeconfig_path` exists."""
    return any(os.path.exists(path) for path in kubeconfig_path().split(os.pathsep) if path)


def credential_source(context: str) -> str:
    """Which credentials :func:`api_client` uses (module docstring's order):
    ``"in-cluster"`` or ``"kubeconfig"``."""
    in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    if in_pod and not context:
        return "in-cluster"
    if in_pod and not kubeconfig_exists():
        return "in-cluster"
    return "kubeconfig"


def api_client(context: str) -> Any:
    """A ``kubernetes.client.ApiClient`` for ``context`` (resolution order: module
    docstring), with the client's own retries off."""
    from kubernetes import client, config

    configuration = client.Configuration()
    source = credential_source(context)
    try:
        if source == "in-cluster":
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=kubeconfig_path(),
                context=context or None,
                client_configuration=configuration,
                persist_config=False,
            )
    except config.ConfigException as exc:
        if source == "in-cluster":
            which = "the in-cluster service account"
        elif context:
            which = f"context {context!r} of {kubeconfig_path()}"
        else:
            which = f"the current context of {kubeconfig_path()}"
        problem = " ".join(str(exc).split())
        raise ConfigError(
            f"cannot load Kubernetes credentials for {which} ({problem}); "
            "fix kube_context in zoo_ops.toml or KUBECONFIG"
        ) from None
    # Retries are call_api's, visible and bounded; urllib3's own would repeat a stalled
    # request unseen.
    configuration.retries = 0
    api = client.ApiClient(configuration)
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
    """``fn(*args, **kwargs)`` with timeouts and retries; failures as one-line zoo_ops errors.

    ``where`` names the object for messages (``Deployment baseten/zoo-abc``), ``verb``
    the call (``create``, ``read``, ``list pods of``...). Transient failures are retried
    until the call's deadline (module docstring: which, how long, and which calls are
    safe to repeat). An HTTP status in ``tolerate`` (e.g. 404 for an idempotent delete)
    returns None instead of raising. Other statuses become errors by ``advice`` over
    :data:`DEFAULT_ADVICE` (404 -> NotFound, 401/403 -> ConfigError, anything else ->
    StepFailed); a transport failure (the API not reached) -> StepFailed.
    """
    from kubernetes.client.exceptions import ApiException

    connect_s, read_s, deadline_s = timeouts()
    repeatable = not verb.startswith("create") or 409 in tolerate
    started = time.monotonic()
    pauses: dict[int, float | None] = {}

    def attempt() -> Any:
        # No attempt's timeouts reach past the deadline.
        left = max(deadline_s - (time.monotonic() - started), 0.001)
        timeout = (min(connect_s, left), min(read_s, left))
        try:
            return fn(*args, _request_timeout=timeout, **kwargs)
        except ApiException as exc:
            if exc.status in tolerate:
                return None
            raise

    def pause(state: RetryCallState) -> float | None:
        """The wait before the next attempt (computed once per attempt: it is jittered)."""
        if state.attempt_number not in pauses:
            failure = state.outcome.exception() if state.outcome else None
            pauses[state.attempt_number] = (
                retry_pause(failure, state.attempt_number, repeatable)
                if isinstance(failure, Exception) and not isinstance(failure, ZooOpsError)
                else None
            )
        return pauses[state.attempt_number]

    def past_deadline(state: RetryCallState) -> bool:
        wait = pause(state) or 0.0
        return wait >= deadline_s - (time.monotonic() - started)

    retrying = Retrying(
        retry=lambda state: pause(state) is not None,
        stop=past_deadline,
        wait=lambda state: pause(state) or 0.0,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except ZooOpsError:
        raise
    except ApiException as exc:
        raise api_error(where, verb, exc, advice, _tries(retrying, started)) from None
    except Exception as exc:  # urllib3 / socket errors: the API was not reached
        raise transport_error(where, verb, exc, _tries(retrying, started)) from None


def watch_objects(
    where: str, list_fn: Callable[..., Any], *args: Any, timeout_s: float, **kwargs: Any
) -> Iterator[Any]:
    """The objects of a watch over ``list_fn(*args, **kwargs)`` (the current ones first,
    then one per ADDED or MODIFIED event) until the server ends the stream after
    ``timeout_s``. Raises :class:`~zoo_ops.adapters.polling.WatchUnavailable` when the
    watch is refused (HTTP 403, 405: RBAC grants no ``watch``) and
    :class:`~zoo_ops.adapters.polling.WatchBroken` when it fails (any other status, a
    reset, a read stalled past ``timeout_s`` plus the read timeout): the caller polls."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    connect_s, read_s, _ = timeouts()
    stream = watch.Watch()
    events = stream.stream(
        list_fn,
        *args,
        timeout_seconds=max(math.ceil(timeout_s), 1),
        _request_timeout=(connect_s, timeout_s + read_s),
        **kwargs,
    )
    try:
        for event in events:
            if event.get("type") in ("ADDED", "MODIFIED"):
                yield event["object"]
    except ApiException as exc:
        problem = f"{where}: watch failed with HTTP {exc.status} ({status_text(exc)})"
        if exc.status in (403, 405):
            raise WatchUnavailable(problem) from None
        raise WatchBroken(problem) from None
    except ZooOpsError:
        raise
    except Exception as exc:  # the stream broke: reset, stall, a bad event
        raise WatchBroken(str(transport_error(where, "watch", exc))) from None
    finally:
        stream.stop()
        events.close()  # the response: the server's watch ends now, not at its timeout


def _tries(retrying: Retrying, started: float) -> str:
    """`` after N attempts in Ss`` for a call that was retried, else nothing."""
    attempts = int(retrying.statistics.get("attempt_number", 1))
    if attempts <= 1:
        return ""
    return f" after {attempts} attempts in {time.monotonic() - started:.0f}s"


def retry_pause(exc: BaseException, attempt: int, repeatable: bool) -> float | None:
    """Seconds to wait before repeating a call whose attempt number ``attempt`` failed
    with ``exc`` (an ApiException, or a transport error), or None when it must not be
    repeated.

    HTTP 429 always (the apiserver did not take the request), waiting at least its
    ``Retry-After``; a connect timeout always (nothing was sent); a connection that
    cannot be made at all (refused, unknown name) never;
    HTTP 5xx of :data:`RETRY_STATUSES`, resets and read timeouts only when
    ``repeatable``. The pause is the exponential backoff of ``attempt`` (0.5 s, 1 s,
    2 s... at most 8 s, plus up to 0.25 s of jitter).
    """
    from kubernetes.client.exceptions import ApiException

    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempt
    backoff = float(_BACKOFF(state))
    status = exc.status if isinstance(exc, ApiException) else None
    if status == 429:
        return max(backoff, retry_after_s(exc) or 0.0)
    if status is not None:
        return backoff if repeatable and status in RETRY_STATUSES else None
    if _cannot_connect(exc):
        return None
    if _not_sent(exc):
        return backoff
    return backoff if repeatable and _transient(exc) else None


def retry_after_s(exc: BaseException) -> float | None:
    """A 429's ``Retry-After`` in seconds (delta-seconds or an HTTP date), else the
    Status's ``details.retryAfterSeconds``, else None."""
    headers = getattr(exc, "headers", None) or {}
    raw = str(headers.get("Retry-After", "") or "").strip()
    if raw:
        try:
            return max(float(raw), 0.0)
        except ValueError:
            pass
        try:
            return max(parsedate_to_datetime(raw).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError, OverflowError):
            pass
    try:
        details = json.loads(getattr(exc, "body", None) or "{}").get("details") or {}
        return float(details["retryAfterSeconds"])
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (urllib3's MaxRetryError.reason, __context__ chains)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = (
            getattr(current, "reason", None)
            if isinstance(getattr(current, "reason", None), BaseException)
            else (current.__cause__ or current.__context__)
        )
    return seen


def _cannot_connect(exc: BaseException) -> bool:
    """No connection could be made (refused, unknown name, no route): a wrong address."""
    from urllib3.exceptions import NewConnectionError

    kinds = (ConnectionRefusedError, NewConnectionError)
    return any(isinstance(c, kinds) for c in _causes(exc))


def _not_sent(exc: BaseException) -> bool:
    """A connect timeout: the request never reached the apiserver."""
    from urllib3.exceptions import ConnectTimeoutError

    return any(isinstance(c, ConnectTimeoutError) for c in _causes(exc))


def _transient(exc: BaseException) -> bool:
    """A reset, a dropped connection or a timeout: the request may or may not have been
    processed."""
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import TimeoutError as Urllib3Timeout

    kinds = (ConnectionError, TimeoutError, ProtocolError, Urllib3Timeout)
    return any(isinstance(c, kinds) for c in _causes(exc))


def transport_error(where: str, verb: str, exc: BaseException, tries: str = "") -> StepFailed:
    """The one line for a call that got no HTTP answer: its innermost cause, short."""
    cause = _causes(exc)[-1]
    problem = " ".join(f"{type(cause).__name__}: {cause}".split())
    return StepFailed(
        f"{where}: cannot {verb}{tries} ({problem[:200]}); "
        "check the cluster is reachable and kube_context is right"
    )


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


def api_error(
    where: str, verb: str, exc: Any, advice: Advice | None = None, tries: str = ""
) -> ZooOpsError:
    """The zoo_ops error for an ApiException, naming the object, the verb and the Status."""
    status = getattr(exc, "status", None)
    text = f"{where}: {verb} failed with HTTP {status}{tries} ({status_text(exc)})"
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
