"""Fault injection: a test-controlled plan of what goes wrong with the next requests.

A :class:`Fault` matches requests by RBAC verb, path (exact, or a prefix ending in ``*``)
and user agent (by default zoo-ops's own, so that a test's seeding and kubectl are not
hit) and does one of:

* ``"429"``: answers 429 TooManyRequests with ``Retry-After: retry_after_s`` (and
  ``details.retryAfterSeconds``), as an apiserver's priority and fairness does;
* ``"503"``: answers 503 ServiceUnavailable, as an apiserver that is restarting does;
* ``"403"``: answers 403 Forbidden, as RBAC does for a verb the Role does not grant;
* ``"reset"``: resets the connection (TCP RST) without reading on, nothing done;
* ``"reset-after"``: does the request, then resets the connection instead of answering
  (the client cannot know whether its write happened);
* ``"stall"``: holds the request ``stall_s`` seconds (longer than the client's read
  timeout), then drops the connection, nothing done: a hung apiserver.

``times`` requests get the fault (``None``: every one, a fault that persists); with
``per_call`` the count is per distinct (verb, path), so one fault can hit the first
attempt of every call a step makes. The plan keeps what it did in ``served``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from zoo_ops.testing.kube_api.request_log import KubeRequest

# The faults of a sick apiserver or network (transient ones, a client retries them); and
# "403", RBAC's refusal, which is not retried.
FAULT_KINDS = ("429", "503", "reset", "reset-after", "stall")
ALL_FAULT_KINDS = (*FAULT_KINDS, "403")
ZOO_OPS_AGENT = "zoo-ops/"


@dataclass
class Fault:
    """One rule of a :class:`FaultPlan` (module docstring)."""

    kind: str
    verb: str = ""  # RBAC verb (get, list, create, update, delete, watch...); "" any
    path: str = ""  # exact path, or a prefix ending in "*"; "" any
    times: int | None = 1  # None: every matching request
    per_call: bool = False  # count ``times`` per distinct (verb, path)
    agent: str = ZOO_OPS_AGENT  # user-agent prefix; "" any
    retry_after_s: int = 1
    stall_s: float = 5.0
    _counts: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ALL_FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {', '.join(ALL_FAULT_KINDS)}")

    def matches(self, request: KubeRequest) -> bool:
        if self.verb and request.verb != self.verb:
            return False
        if self.agent and not request.user_agent.startswith(self.agent):
            return False
        if self.path.endswith("*"):
            return request.path.startswith(self.path[:-1])
        return not self.path or request.path == self.path

    def take(self, request: KubeRequest) -> bool:
        """Whether ``request`` gets this fault (and count it)."""
        if not self.matches(request):
            return False
        key = (request.verb, request.path) if self.per_call else ("", "")
        done = self._counts.get(key, 0)
        if self.times is not None and done >= self.times:
            return False
        self._counts[key] = done + 1
        return True


class Served(NamedTuple):
    """One fault done: its kind, the request it hit, when (``time.monotonic()``)."""

    kind: str
    request: KubeRequest
    at: float


class FaultPlan:
    """The faults of one stand-in, first match wins; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.served: list[Served] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def next_fault(self, request: KubeRequest) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.take(request):
                    self.served.append(Served(fault.kind, request, time.monotonic()))
                    return fault
        return None
