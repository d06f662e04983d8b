"""The public object, :class:`KubeApiStandIn`: the cluster state with its system objects,
the HTTP(S) server and controller threads, kubeconfigs for clients, seeding and inspection
for tests, bearer-token authentication, the request log and the fault plan."""

from __future__ import annotations

import base64
import copy
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from zoo_ops.testing.kube_api.api import Api, _external, _visible
from zoo_ops.testing.kube_api.controller import _Cluster
from zoo_ops.testing.kube_api.discovery import discovery_documents
from zoo_ops.testing.kube_api.errors import ApiError, invalid
from zoo_ops.testing.kube_api.faults import Fault, FaultPlan
from zoo_ops.testing.kube_api.http_server import _Handler, _Server
from zoo_ops.testing.kube_api.kinds import apply_defaults, check_decodable, validate
from zoo_ops.testing.kube_api.request_log import (
    _PROCESS_LOG_LOCK,
    PROCESS_REQUEST_LOG,
    KubeRequest,
)
from zoo_ops.testing.kube_api.resource_types import (
    _BY_KIND,
    DEFAULT_SERVER_VERSION,
    Obj,
    resource_type,
)
from zoo_ops.testing.kube_api.seed import _flatten, load_manifests

DEFAULT_TOKEN = "zoo-ops-standin-token"


class KubeApiStandIn:
    """The stand-in server. ``start()`` serves on ``host:port`` (port 0: a free one) in a
    background thread; ``url`` is then ``http://host:port``, or ``https://host:port`` with
    ``tls``: a certificate for ``host`` (and localhost, 127.0.0.1) issued by a CA made
    for this stand-in with ``trustme`` (``ca_pem``), which the kubeconfig it writes
    trusts. The kubeconfig carries ``token``; a request with another bearer token gets
    401, one without any is served unless ``require_token`` (the default with ``tls``;
    kubectl sends no token over plain http). ``faults`` is the fault plan
    (:mod:`.faults`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ready_delay_s: float = 0.0,
        token: str | None = DEFAULT_TOKEN,
        require_token: bool | None = None,
        tls: bool = False,
        server_version: str = DEFAULT_SERVER_VERSION,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.require_token = tls if require_token is None else require_token
        self.tls = tls
        self.ca_pem = b""
        self._ssl_context: ssl.SSLContext | None = None
        if tls:
            self._ssl_context = self._make_certificate()
        self.faults = FaultPlan()
        self.server_version = server_version
        self.request_log: list[KubeRequest] = []
        self._log_lock = threading.Lock()
        self._pod_logs: dict[tuple[str, str], str] = {}
        self._cluster = _Cluster(ready_delay_s=ready_delay_s)
        self._api = Api(self._cluster)
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._docs: dict[str, Obj] | None = None
        with self._cluster.lock:
            # What every cluster has: its system namespaces and the `kubernetes` Service.
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self._seed_one({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            self._seed_one(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kubernetes",
                        "namespace": "default",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "clusterIP": "10.96.0.1",
                        "ports": [
                            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}
                        ],
                    },
                }
            )

    # -- lifecycle -------------------------------------------------------------------------

    def _make_certificate(self) -> ssl.SSLContext:
        """A server TLS context with a certificate from a CA made here (trustme)."""
        import trustme

        ca = trustme.CA()
        names = dict.fromkeys([self.host, "localhost", "127.0.0.1"])
        cert = ca.issue_cert(*names)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.ca_pem = ca.cert_pem.bytes()
        return context

    def fault(self, kind: str, **match: Any) -> Fault:
        """Add a :class:`~.faults.Fault` to the plan (``verb``, ``path``, ``times``,
        ``per_call``, ``agent``, ``retry_after_s``, ``stall_s``) and return it."""
        return self.faults.add(Fault(kind, **match))

    def start(self) -> KubeApiStandIn:
        server = _Server((self.host, self.port), _Handler)
        if self._ssl_context is not None:
            # The handshake happens in the request's thread, on its first read: a client
            # that stalls it holds only its own thread.
            server.socket = self._ssl_context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        server.standin = self
        self._server = server
        self.port = server.server_address[1]
        self._closing.clear()
        serving = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="kube-api-standin", daemon=True
        )
        ticking = threading.Thread(
            target=self._tick, name="kube-api-standin-controller", daemon=True
        )
        self._threads = [serving, ticking]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        with self._cluster.lock:
            self._cluster.changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> KubeApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self) -> None:
        """The controller loop: make Deployments ready when their readiness delay is over."""
        cluster = self._cluster
        while not self._closing.is_set():
            with cluster.lock:
                cluster.fire_due_deadlines()
                nxt = cluster.next_deadline()
                wait = 0.5 if nxt is None else min(max(nxt - time.monotonic(), 0.005), 0.5)
            self._closing.wait(wait)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started; call start() first")
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    # -- clients -----------------------------------------------------------------------------

    def kubeconfig(self, context: str = "standin", namespace: str = "default") -> Obj:
        user: Obj = {"token": self.token} if self.token else {}
        cluster: Obj = {"server": self.url}
        if self.tls:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": context, "user": context, "namespace": namespace},
                }
            ],
            "current-context": context,
            "preferences": {},
        }

    def write_kubeconfig(
        self, path: str | Path, context: str = "standin", namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig whose current context (``context``) points at this server."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(self.kubeconfig(context, namespace), sort_keys=False))
        out.chmod(0o600)
        return out

    @staticmethod
    def write_kubeconfig_for(
        path: str | Path, standins: Mapping[str, KubeApiStandIn], namespace: str = "default"
    ) -> Path:
        """One kubeconfig with a context per stand-in (``{"staging": a, "prod": b}``), each
        with its server, CA and token; the first is the current context."""
        contexts = [s.kubeconfig(name, namespace) for name, s in standins.items()]
        merged: Obj = {**contexts[0], "clusters": [], "users": [], "contexts": []}
        for one in contexts:
            for key in ("clusters", "users", "contexts"):
                merged[key] += one[key]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(merged, sort_keys=False))
        out.chmod(0o600)
        return out

    # -- state for tests ---------------------------------------------------------------------

    def seed(self, manifests: Iterable[Mapping[str, Any]]) -> list[Obj]:
        """Store objects as given (their status kept; a missing namespace created), filling
        in what the server owns; Deployments get their pods. Returns the stored objects."""
        stored = []
        with self._cluster.lock:
            for manifest in manifests:
                for doc in _flatten(copy.deepcopy(dict(manifest))):
                    stored.append(self._seed_one(doc))
        return stored

    def seed_file(self, path: str | Path) -> list[Obj]:
        return self.seed(load_manifests(path))

    def _seed_one(self, doc: Obj) -> Obj:
        try:
            rt = resource_type(str(doc.get("kind", "")))
        except KeyError:
            raise ValueError(
                f"cannot seed kind {doc.get('kind')!r}: the stand-in serves {', '.join(_BY_KIND)}"
            ) from None
        cluster = self._cluster
        obj = copy.deepcopy(doc)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            raise ValueError(f"a seeded {rt.kind} needs metadata.name")
        if rt.namespaced:
            meta.setdefault("namespace", "default")
            ns_rt = _BY_KIND["Namespace"]
            if cluster.get(ns_rt, "", meta["namespace"]) is None:
                self._seed_one(
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": meta["namespace"]},
                    }
                )
        else:
            meta.pop("namespace", None)
        check_decodable(rt, obj)
        cluster.new_metadata(rt, obj)
        meta.pop("resourceVersion", None)
        given_status = "status" in obj
        apply_defaults(rt, obj, None, cluster.service_ip)
        errors = validate(rt, obj, None)
        if errors:
            raise ValueError(str(invalid(rt, meta["name"], errors)))
        if rt.kind == "Pod" and not given_status:
            cluster.place_pod(obj, "ready")
        existing = cluster.get(rt, meta.get("namespace", ""), meta["name"])
        cluster.commit(rt, obj, "MODIFIED" if existing else "ADDED")
        if rt.kind == "Deployment":
            cluster.reconcile_deployment(obj)
        if rt.kind == "Namespace":
            cluster.publish_root_ca(meta["name"])
        return _external(rt, obj)

    def set_pod_log(self, namespace: str, name: str, text: str) -> None:
        """What ``GET pods/NAME/log`` answers for that pod (a kubelet's part: see
        :mod:`zoo_ops.testing.job_runner`)."""
        with self._log_lock:
            self._pod_logs[(namespace, name)] = text

    def pod_log(self, namespace: str, name: str) -> str:
        """The pod's log; 404 for a pod that does not exist, as the apiserver answers."""
        from zoo_ops.testing.kube_api.errors import not_found
        from zoo_ops.testing.kube_api.resource_types import resource_type

        if self.get_object("Pod", namespace, name) is None:
            raise not_found(resource_type("Pod"), name)
        with self._log_lock:
            return self._pod_logs.get((namespace, name), "")

    def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The stored object as the server would serve it, or None. ``kind`` is a kind,
        plural or short name; ``namespace`` is ignored for cluster-scoped kinds."""
        rt = resource_type(kind)
        with self._cluster.lock:
            obj = self._cluster.get(rt, namespace or "", name)
            return _visible(_external(rt, obj)) if obj is not None else None

    def list_objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        rt = resource_type(kind)
        with self._cluster.lock:
            return [
                _visible(_external(rt, o))
                for o in self._cluster.items(rt, namespace if rt.namespaced else None)
            ]

    @property
    def resource_version(self) -> int:
        """The global resourceVersion: that of the latest write."""
        with self._cluster.lock:
            return self._cluster.rv

    def requests_for(
        self, verb: str | None = None, resource: str | None = None
    ) -> list[KubeRequest]:
        with self._log_lock:
            return [
                r
                for r in self.request_log
                if (verb is None or r.verb == verb) and (resource is None or r.resource == resource)
            ]

    def _authenticate(self, authorization: str | None) -> None:
        """401 for a wrong bearer token, or for none when ``require_token``. (client-go, and so
        kubectl, sends no bearer token to a plain-http server, hence not required by default.)"""
        if self.token is None:
            return
        if authorization is None and not self.require_token:
            return
        # The scheme is case-insensitive (RFC 7235): the client's in-cluster loader says
        # "bearer".
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or credentials.strip() != self.token:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _log(self, request: KubeRequest) -> None:
        with self._log_lock:
            self.request_log.append(request)
        with _PROCESS_LOG_LOCK:
            PROCESS_REQUEST_LOG.append(request)

    def _discovery(self) -> dict[str, Obj]:
        if self._docs is None:
            self._docs = discovery_documents(self.server_version, f"{self.host}:{self.port}")
        return self._docs
