"""The object store: every object keyed as etcd keys it, one global ``resourceVersion``
bumped on each write, the watch event history, and the metadata the server fills in on
create; all behind one lock whose condition wakes the watches."""

from __future__ import annotations

import copy
import threading
import uuid
from dataclasses import dataclass, field

from zoo_ops.testing.kube_api.resource_types import Obj, ResourceType
from zoo_ops.testing.kube_api.values import now_rfc3339

# Watch history kept for resuming a watch from a resourceVersion; older ones get 410 Gone.
WATCH_HISTORY = 20000


@dataclass
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    rt: ResourceType
    old: Obj | None
    new: Obj


def _key(rt: ResourceType, namespace: str, name: str) -> tuple[str, str, str]:
    return (rt.plural, namespace if rt.namespaced else "", name)


def _without_rv(obj: Obj) -> Obj:
    copied = copy.deepcopy(obj)
    copied.get("metadata", {}).pop("resourceVersion", None)
    return copied


@dataclass
class Store:
    """All objects, the global resourceVersion and the watch history, behind one lock."""

    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    rv: int = 1000
    events: list[_Event] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Condition = field(init=False)
    next_ip: int = 10

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    # -- storage ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self.objects.get(_key(rt, namespace, name))

    def items(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        """Objects of a type in etcd key order (namespace, name); ``None``: all namespaces."""
        keys = sorted(
            k
            for k in self.objects
            if k[0] == rt.plural and (namespace is None or k[1] == namespace)
        )
        return [self.objects[k] for k in keys]

    def commit(self, rt: ResourceType, obj: Obj, event_type: str) -> Obj:
        """Store (or, for DELETED, drop) an object under a freshly bumped resourceVersion and
        record the watch event."""
        meta = obj["metadata"]
        key = _key(rt, meta.get("namespace", ""), meta["name"])
        old = self.objects.get(key)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        if event_type == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.events.append(
            _Event(self.rv, event_type, rt, copy.deepcopy(old) if old else None, copy.deepcopy(obj))
        )
        if len(self.events) > WATCH_HISTORY:
            del self.events[: len(self.events) - WATCH_HISTORY]
        self.changed.notify_all()
        return obj

    def service_ip(self) -> str:
        self.next_ip += 1
        return f"10.96.{self.next_ip // 250}.{self.next_ip % 250 + 1}"

    def new_metadata(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if rt.kind == "Deployment":
            meta["generation"] = 1
        for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(system_field, None)
