"""A small HTTP server that serves in-process truss (or legacy) models as truss's server does.

For tests of HTTP serving: ``POST /<name>/v1/models/model:predict`` with a JSON body
answers the model's JSON prediction (``<name>`` routes to one of several models, e.g. a
Service name ``zoo-<version_id>``); ``GET /<name>/v1/models/model`` answers readiness.
A model that raises answers HTTP 500 with ``{"error": "..."}``; an unknown name, 404.

    with TrussHttpServer({"zoo-abc": load_truss_model("truss_models/iris")}) as server:
        template = server.url + "/{service}/v1/models/model:predict"
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from zoo_ops.adapters.truss_runtime import LoadedModel

PREDICT_SUFFIX = "/v1/models/model:predict"
READY_SUFFIX = "/v1/models/model"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    models: Mapping[str, LoadedModel]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up mid-request (a test killed it) is not the server's fault.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet in tests
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _model(self, suffix: str) -> tuple[str, LoadedModel | None]:
        path = self.path.split("?", 1)[0]
        if not path.endswith(suffix):
            return "", None
        name = path[: -len(suffix)].strip("/")
        return name, self.server.models.get(name)

    def do_GET(self) -> None:
        name, model = self._model(READY_SUFFIX)
        if model is None:
            self._send(404, {"error": f"no model {name!r}"})
        else:
            self._send(200, {"name": model.name, "ready": True})

    def do_POST(self) -> None:
        name, model = self._model(PREDICT_SUFFIX)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if model is None:
            self._send(404, {"error": f"no model {name!r}"})
            return
        try:
            request = json.loads(raw or b"null")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        try:
            response = model.predict(request)
        except Exception as exc:  # noqa: BLE001 - a model failure is the client's answer
            self._send(500, {"error": " ".join(str(exc).split())})
            return
        self._send(200, response)


class TrussHttpServer:
    """Serve ``models`` (route name -> loaded model) on ``host``; port 0 picks a free one."""

    def __init__(
        self, models: Mapping[str, LoadedModel], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.models = dict(models)
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TrussHttpServer:
        server = _Server((self.host, self.port), _Handler)
        server.models = self.models
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> TrussHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
