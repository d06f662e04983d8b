"""The HTTP layer: a threading server whose handler reads requests (JSON, YAML or protobuf
bodies, chunked or not), logs and authenticates them through the stand-in, routes them to the
API verbs, answers tables to ``kubectl get``, streams watches, and turns failures into
``Status`` bodies."""

from __future__ import annotations

import copy
import json
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import yaml

from zoo_ops.testing.kube_api.api import Api, WriteOptions, _external, _visible
from zoo_ops.testing.kube_api.controller import _Cluster
from zoo_ops.testing.kube_api.errors import ApiError, bad_request
from zoo_ops.testing.kube_api.faults import Fault, FaultPlan
from zoo_ops.testing.kube_api.protobuf import decode_protobuf
from zoo_ops.testing.kube_api.request_log import KubeRequest
from zoo_ops.testing.kube_api.resource_types import Obj
from zoo_ops.testing.kube_api.routing import Route, _flag, _one, parse_route, rbac_verb
from zoo_ops.testing.kube_api.selectors import _matches, parse_field_selector, parse_label_selector
from zoo_ops.testing.kube_api.tables import as_table


class _StandIn(Protocol):
    """What the handler uses of the stand-in that owns the server (a KubeApiStandIn)."""

    _api: Api
    _cluster: _Cluster
    _closing: threading.Event
    faults: FaultPlan

    def _log(self, request: KubeRequest) -> None: ...

    def _authenticate(self, authorization: str | None) -> None: ...

    def _discovery(self) -> dict[str, Obj]: ...

    def pod_log(self, namespace: str, name: str) -> str: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    standin: _StandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-request (a test killed it, a reset fault, a client that
        # gave up during the TLS handshake) is not the server's fault.
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, socket.timeout)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server
    _warnings: list[str] = []
    _reset_instead_of_answer = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log is kept structurally in KubeApiStandIn.request_log

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        code: int,
        body: Obj | str,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._reset_instead_of_answer:
            self._reset()
            return
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for warning in self._warnings:
            self.send_header("Warning", f"299 - {json.dumps(warning)}")
        self.send_header("Cache-Control", "no-cache, private")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        raw = self._read_body()
        self._warnings = []
        route = parse_route(url.path)
        verb = rbac_verb(method, route, query)
        agent = self.headers.get("User-Agent", "")
        if route is None:
            request = KubeRequest(verb, url.path, "", "", "", agent)
        else:
            resource = route.rt.plural + (f"/{route.subresource}" if route.subresource else "")
            request = KubeRequest(verb, url.path, resource, route.namespace, route.name, agent)
        standin._log(request)
        self._reset_instead_of_answer = False
        fault = standin.faults.next_fault(request)
        if fault is not None and self._inject(fault):
            return
        try:
            standin._authenticate(self.headers.get("Authorization"))
            if route is None:
                self._non_resource(method, url.path)
                return
            if verb == "watch":
                self._watch(route, query)
                return
            code, body = self._resource(method, verb, route, query, raw)
            self._send(code, body)
        except _PodLog as log:  # pods/NAME/log answers plain text, as the kubelet's proxy
            self._send(200, log.text, "text/plain")
        except ApiError as exc:
            self._send(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # the apiserver answers 500 InternalError, never drops
            self._send(
                500,
                ApiError(
                    500,
                    "InternalError",
                    f"Internal error occurred: {exc!r}",
                    {"causes": [{"message": repr(exc)}]},
                ).status(),
            )

    def _inject(self, fault: Fault) -> bool:
        """Do what ``fault`` says (faults module); True when the request ends here."""
        if fault.kind == "429":
            error = ApiError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"retryAfterSeconds": fault.retry_after_s},
            )
            self._send(429, error.status(), headers={"Retry-After": str(fault.retry_after_s)})
            return True
        if fault.kind == "503":
            error = ApiError(
                503, "ServiceUnavailable", "the server is currently unable to handle the request"
            )
            self._send(503, error.status())
            return True
        if fault.kind == "403":
            route = parse_route(urlsplit(self.path).path)
            what = f'{route.rt.plural} in API group "{route.rt.group}"' if route else "this path"
            error = ApiError(
                403,
                "Forbidden",
                f"{self.headers.get('User-Agent', '')} cannot {fault.verb or 'do'} {what}",
            )
            self._send(403, error.status())
            return True
        if fault.kind == "stall":
            self.server.standin._closing.wait(fault.stall_s)
            self._reset()
            return True
        if fault.kind == "reset":
            self._reset()
            return True
        self._reset_instead_of_answer = True  # reset-after: do it, then hang up
        return False

    def _reset(self) -> None:
        """Hang up with a TCP RST (SO_LINGER 0), as a crashed apiserver or proxy does."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _non_resource(self, method: str, path: str) -> None:
        standin = self.server.standin
        docs = standin._discovery()
        path = path.rstrip("/") or "/"
        if method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                {},
            )
        if path in docs:
            # Legacy discovery: kubectl asks for the aggregated form first, and reads a plain
            # application/json answer as the legacy documents.
            self._send(200, docs[path])
        elif path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", "text/plain; charset=utf-8")
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    def _resource(
        self, method: str, verb: str, route: Route, query: Mapping[str, list[str]], raw: bytes
    ) -> tuple[int, Obj]:
        api = self.server.standin._api
        dry_run = "All" in (query.get("dryRun") or [])
        opts = WriteOptions(dry_run, _one(query, "fieldValidation") or "Warn")
        if opts.field_validation not in ("Strict", "Warn", "Ignore"):
            raise bad_request(
                f"fieldValidation parameter unsupported: {opts.field_validation!r}. Supported values are Strict, Warn, Ignore"
            )
        self._warnings = opts.warnings
        content_type = self.headers.get("Content-Type", "application/json")
        if route.subresource and verb not in ("get", "update", "patch"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                {},
            )
        if verb == "get" and route.subresource == "log":
            raise _PodLog(self.server.standin.pod_log(route.namespace, route.name))
        if verb == "get":
            obj = api.get(route)
            return 200, self._maybe_table(
                route, [obj], obj["metadata"]
            ) if route.subresource == "" else obj
        if verb == "list":
            if self._wants_table():
                items, meta = api.select(route, query)
                return 200, as_table(route.rt, items, meta, _one(query, "includeObject"))
            return 200, api.list_body(route, query)
        if verb == "create":
            if route.name:
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    {},
                )
            return 201, api.create(route, _parse_body(raw, content_type), opts)
        if verb == "update":
            return 200, api.update(route, _parse_body(raw, content_type), opts)
        if verb == "patch":
            return 200, api.patch(route, content_type, raw, opts)
        if verb == "delete":
            try:
                body = _parse_body(raw, content_type) if raw.strip() else None
            except ApiError:  # a protobuf DeleteOptions: delete without options
                body = None
            return 200, api.delete(route, body, query, dry_run)
        if verb == "deletecollection":
            return 200, api.delete_collection(route, query, dry_run)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            {},
        )

    def _wants_table(self) -> bool:
        return "as=Table" in self.headers.get("Accept", "").replace(" ", "")

    def _maybe_table(self, route: Route, objs: list[Obj], meta: Obj) -> Obj:
        if not self._wants_table():
            return objs[0]
        query = parse_qs(urlsplit(self.path).query)
        return as_table(
            route.rt,
            objs,
            {"resourceVersion": meta.get("resourceVersion", "")},
            _one(query, "includeObject"),
        )

    def _watch(self, route: Route, query: Mapping[str, list[str]]) -> None:
        """A watch: chunked JSON lines of {type, object}. From resourceVersion "" or "0" it
        starts with ADDED for every matching object; from a given version it replays the
        history after it (410 Gone if that history is no longer kept). Objects that start or
        stop matching the selectors arrive as ADDED or DELETED. Ends at timeoutSeconds."""
        standin = self.server.standin
        cluster = standin._cluster
        rt = route.rt
        labels = parse_label_selector(_one(query, "labelSelector"))
        fields = parse_field_selector(rt, _one(query, "fieldSelector"))
        timeout = float(_one(query, "timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        start_rv = _one(query, "resourceVersion")
        table = self._wants_table()
        namespace = route.namespace if rt.namespaced and route.namespace else None
        if route.name:
            fields.append(("metadata.name", True, route.name))

        def wanted(obj: Obj | None) -> bool:
            if obj is None:
                return False
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return _matches(obj, labels, fields)

        initial: list[tuple[str, Obj]] = []
        # A streaming list (client-go's WatchList): the current objects, then a BOOKMARK
        # annotated k8s.io/initial-events-end, then the changes.
        watch_list = _flag(query, "sendInitialEvents")
        with cluster.lock:
            if watch_list or start_rv in ("", "0"):
                initial = [
                    ("ADDED", copy.deepcopy(o)) for o in cluster.items(rt, namespace) if wanted(o)
                ]
                cursor = cluster.rv
            else:
                try:
                    cursor = int(start_rv)
                except ValueError:
                    raise bad_request(f"invalid resource version: {start_rv}") from None
                if cluster.events and cursor < cluster.events[0].rv - 1:
                    raise ApiError(
                        410,
                        "Expired",
                        f"too old resource version: {cursor} ({cluster.events[0].rv})",
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def send(event_type: str, obj: Obj) -> None:
            body = _visible(_external(rt, obj))
            if table:
                body = as_table(
                    rt, [body], {"resourceVersion": body["metadata"].get("resourceVersion", "")}, ""
                )
            line = (json.dumps({"type": event_type, "object": body}) + "\n").encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        try:
            for event_type, obj in initial:
                send(event_type, obj)
            if watch_list:
                bookmark = {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version,
                    "metadata": {
                        "resourceVersion": str(cursor),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                line = (json.dumps({"type": "BOOKMARK", "object": bookmark}) + "\n").encode()
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            while not standin._closing.is_set() and time.monotonic() < deadline:
                with cluster.lock:
                    if cluster.rv <= cursor:
                        cluster.changed.wait(timeout=min(0.5, max(deadline - time.monotonic(), 0)))
                    pending = [e for e in cluster.events if e.rv > cursor and e.rt is rt]
                    cursor = max(cursor, cluster.rv)
                for e in pending:
                    was, now = wanted(e.old), wanted(e.new)
                    if e.type == "DELETED" and was:
                        send("DELETED", e.new)
                    elif e.type != "DELETED" and now:
                        send("MODIFIED" if was and e.type == "MODIFIED" else "ADDED", e.new)
                    elif e.type != "DELETED" and was:
                        send("DELETED", e.new)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        return None
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
    if media == "application/vnd.kubernetes.protobuf":
        return decode_protobuf(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


class _PodLog(Exception):
    """The answer of ``GET pods/NAME/log``: the container's output as text."""

    def __init__(self, text: str) -> None:
        super().__init__("pod log")
        self.text = text
