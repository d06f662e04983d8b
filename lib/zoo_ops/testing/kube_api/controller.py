"""The controllers: the Deployment and ReplicaSet controllers in one step (pods from the
template, rollouts, replica counts, Available/Progressing conditions), the readiness
simulation (ready after a delay, never, or failing, by annotation), pod placement with the
kubelet's status, and the root-CA publisher that gives each namespace ``kube-root-ca.crt``."""

from __future__ import annotations

import copy
import random
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from zoo_ops.testing.kube_api.kinds import apply_defaults
from zoo_ops.testing.kube_api.resource_types import _BY_KIND, Obj
from zoo_ops.testing.kube_api.scheduler import schedule
from zoo_ops.testing.kube_api.store import Store
from zoo_ops.testing.kube_api.values import _random_suffix, _template_hash, now_rfc3339

NEVER_READY_ANNOTATION = "zoo-ops.test/never-ready"
FAIL_ANNOTATION = "zoo-ops.test/fail"
READY_AFTER_ANNOTATION = "zoo-ops.test/ready-after-seconds"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
_STANDIN_CA = "-----BEGIN CERTIFICATE-----\nMIIBstandinstandinstandinstandinstandinstandinstandinstandin\n-----END CERTIFICATE-----\n"


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = Decimal(value[:-1]) * total / 100
        return int(
            scaled.to_integral_value(rounding="ROUND_CEILING" if round_up else "ROUND_FLOOR")
        )
    return int(value)


@dataclass
class _Deadline:
    """A Deployment's pods of one template that become ready at ``due`` (monotonic time)."""

    namespace: str
    name: str
    template_hash: str
    due: float


@dataclass
class _Cluster(Store):
    """The store plus the controllers that act on it: Deployments get pods, pods get nodes
    and statuses, and deployments become ready when their readiness delay is over."""

    ready_delay_s: float = 0.0
    deadlines: list[_Deadline] = field(default_factory=list)

    def _pod_status(self, pod: Obj, node: str | None, message: str, mode: str) -> Obj:
        """A pod's status as the kubelet would report it: Pending/Unschedulable with no node;
        otherwise Running with containers ready (``ready``), not yet ready (``starting``,
        ``never``) or crash-looping (``fail``)."""
        now = now_rfc3339()
        if node is None:
            return {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": now,
                    }
                ],
                "qosClass": "Burstable",
            }
        ready = mode == "ready"
        statuses = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            state: Obj = {"running": {"startedAt": now}}
            if mode == "fail":
                state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 5m0s restarting failed container={c['name']}",
                    }
                }
            statuses.append(
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": ready,
                    "restartCount": 3 if mode == "fail" else 0,
                    "started": mode != "fail",
                    "state": state,
                }
            )
        condition = "True" if ready else "False"
        return {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "podIP": f"10.244.0.{random.randint(2, 254)}",
            "startTime": now,
            "conditions": [
                {
                    "type": "Initialized",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Ready",
                    "status": condition,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {
                    "type": "ContainersReady",
                    "status": condition,
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now,
                },
            ],
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        }

    def place_pod(self, pod: Obj, mode: str) -> None:
        """Bind a new pod to a node (unless it names one) and give it the matching status."""
        pods_rt = _BY_KIND["Pod"]
        spec = pod["spec"]
        node: str | None = spec.get("nodeName")
        message = ""
        if not node:
            nodes = self.items(_BY_KIND["Node"])
            node, message = schedule(pod, nodes, self.items(pods_rt))
            if node:
                spec["nodeName"] = node
        pod["status"] = self._pod_status(pod, node, message, mode)

    def _deployment_mode(self, dep: Obj) -> str:
        annotations = dep["metadata"].get("annotations") or {}
        if annotations.get(FAIL_ANNOTATION) == "true":
            return "fail"
        if annotations.get(NEVER_READY_ANNOTATION) == "true":
            return "never"
        return "starting" if self._ready_delay(dep) > 0 else "ready"

    def _ready_delay(self, dep: Obj) -> float:
        value = (dep["metadata"].get("annotations") or {}).get(READY_AFTER_ANNOTATION)
        try:
            return float(value) if value is not None else self.ready_delay_s
        except ValueError:
            return self.ready_delay_s

    def _owned_pods(self, dep: Obj) -> list[Obj]:
        uid = dep["metadata"]["uid"]
        return [
            p
            for p in self.items(_BY_KIND["Pod"], dep["metadata"]["namespace"])
            if (p["metadata"].get("annotations") or {}).get("zoo-ops.test/deployment-uid") == uid
        ]

    def reconcile_deployment(self, dep: Obj) -> None:
        """The Deployment and ReplicaSet controllers in one step: delete pods of an older
        template (an immediate rollout), create or delete pods of the current template until
        there are ``spec.replicas``, then write the status those pods imply."""
        pods_rt = _BY_KIND["Pod"]
        spec = dep["spec"]
        template = spec.get("template") or {}
        tpl_hash = _template_hash(template)
        desired = int(spec.get("replicas", 1))
        mode = self._deployment_mode(dep)
        owned = self._owned_pods(dep)
        current = []
        for pod in owned:
            if pod["metadata"].get("labels", {}).get("pod-template-hash") == tpl_hash:
                current.append(pod)
            else:
                self.commit(pods_rt, copy.deepcopy(pod), "DELETED")
        for pod in current[desired:]:
            self.commit(pods_rt, copy.deepcopy(pod), "DELETED")
        for _ in range(desired - len(current)):
            self.commit(pods_rt, self._new_pod(dep, template, tpl_hash, mode), "ADDED")
        if mode == "starting":
            due = time.monotonic() + self._ready_delay(dep)
            meta = dep["metadata"]
            self.deadlines.append(_Deadline(meta["namespace"], meta["name"], tpl_hash, due))
        self.write_deployment_status(dep, mode)

    def _new_pod(self, dep: Obj, template: Obj, tpl_hash: str, mode: str) -> Obj:
        meta = dep["metadata"]
        tmeta = copy.deepcopy(template.get("metadata") or {})
        labels = {**(tmeta.get("labels") or {}), "pod-template-hash": tpl_hash}
        annotations = {
            **(tmeta.get("annotations") or {}),
            "zoo-ops.test/deployment-uid": meta["uid"],
        }
        rs_name = f"{meta['name']}-{tpl_hash}"
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{rs_name}-{_random_suffix()}",
                "generateName": f"{rs_name}-",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": rs_name,
                        "uid": str(uuid.uuid5(uuid.NAMESPACE_OID, meta["uid"] + tpl_hash)),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        apply_defaults(_BY_KIND["Pod"], pod, None, self.service_ip)
        self.new_metadata(_BY_KIND["Pod"], pod)
        self.place_pod(pod, mode)
        return pod

    def write_deployment_status(self, dep: Obj, mode: str) -> None:
        """Status from the owned pods: replica counts, observedGeneration, and the Available
        and Progressing conditions as the deployment controller sets them."""
        spec = dep["spec"]
        desired = int(spec.get("replicas", 1))
        tpl_hash = _template_hash(spec.get("template") or {})
        pods = self._owned_pods(dep)
        ready = [
            p
            for p in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in p["status"].get("conditions", [])
            )
        ]
        updated = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == tpl_hash]
        rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _int_or_percent(
            rolling.get("maxUnavailable", "25%"), desired, round_up=False
        )
        available = len(ready) >= desired - max_unavailable and (
            desired == 0 or len(ready) > 0 or max_unavailable >= desired
        )
        old_status = dep.get("status") or {}
        old_conditions = {c["type"]: c for c in old_status.get("conditions") or []}
        rs_name = f"{dep['metadata']['name']}-{tpl_hash}"
        complete = len(ready) == desired and len(updated) == desired == len(pods)

        def condition(type_: str, status: str, reason: str, message: str) -> Obj:
            now = now_rfc3339()
            old: Obj = old_conditions.get(type_) or {}
            changed = not old or old.get("status") != status
            return {
                "type": type_,
                "status": status,
                "lastUpdateTime": now
                if changed or old.get("reason") != reason
                else old.get("lastUpdateTime", now),
                "lastTransitionTime": now if changed else old.get("lastTransitionTime", now),
                "reason": reason,
                "message": message,
            }

        if available:
            avail = condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            avail = condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if mode == "fail":
            prog = condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif complete:
            prog = condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        else:
            prog = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
            )
        status: Obj = {"observedGeneration": dep["metadata"].get("generation", 1)}
        if pods:
            status["replicas"] = len(pods)
            status["updatedReplicas"] = len(updated)
        if ready:
            status["readyReplicas"] = len(ready)
            status["availableReplicas"] = len(ready)
        if len(pods) - len(ready) > 0:
            status["unavailableReplicas"] = len(pods) - len(ready)
        status["conditions"] = [avail, prog]
        if _strip_times(status) != _strip_times(old_status):
            dep["status"] = status
            self.commit(_BY_KIND["Deployment"], dep, "MODIFIED")

    def fire_due_deadlines(self) -> None:
        """Make the pods whose readiness delay has passed ready, and update their Deployment."""
        now = time.monotonic()
        due = [d for d in self.deadlines if d.due <= now]
        self.deadlines = [d for d in self.deadlines if d.due > now]
        deps_rt, pods_rt = _BY_KIND["Deployment"], _BY_KIND["Pod"]
        for deadline in due:
            dep = self.get(deps_rt, deadline.namespace, deadline.name)
            if dep is None or self._deployment_mode(dep) != "starting":
                continue
            for pod in self._owned_pods(dep):
                labels = pod["metadata"]["labels"]
                status = pod.get("status") or {}
                starting = status.get("phase") == "Running" and not all(
                    s.get("ready") for s in status.get("containerStatuses") or []
                )
                if labels.get("pod-template-hash") == deadline.template_hash and starting:
                    updated = copy.deepcopy(pod)
                    updated["status"] = self._pod_status(pod, pod["spec"]["nodeName"], "", "ready")
                    self.commit(pods_rt, updated, "MODIFIED")
            self.write_deployment_status(copy.deepcopy(dep), "ready")

    def publish_root_ca(self, namespace: str) -> None:
        """The root-ca-cert-publisher controller: every namespace gets ``kube-root-ca.crt``."""
        rt = _BY_KIND["ConfigMap"]
        if self.get(rt, namespace, ROOT_CA_CONFIGMAP) is None:
            cm: Obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ROOT_CA_CONFIGMAP,
                    "namespace": namespace,
                    "annotations": {
                        "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
                    },
                },
                "data": {"ca.crt": _STANDIN_CA},
            }
            self.new_metadata(rt, cm)
            self.commit(rt, cm, "ADDED")

    def next_deadline(self) -> float | None:
        return min((d.due for d in self.deadlines), default=None)


def _strip_times(status: Obj) -> Obj:
    stripped = copy.deepcopy(status)
    for c in stripped.get("conditions") or []:
        c.pop("lastUpdateTime", None)
        c.pop("lastTransitionTime", None)
    return stripped
