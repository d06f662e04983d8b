"""A real S3-protocol server for the remote-trail tests: moto's standalone server on
127.0.0.1 (the server s3fs's own tests use), and a fault-injecting TCP relay in front of it.

zoo-ops reaches the bucket only through the standard AWS variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), given to each ``zoo-ops`` process in its
environment. The relay fails the network, not S3: while ``down`` it closes every connection
at once (the endpoint is unreachable), and a request whose first bytes are a PUT of a key
matching ``refuse_put`` has its connection closed before moto sees it (the bucket went away
exactly when that notebook was written).
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

# Dummy keys: moto accepts any; the tests check none of them reaches a notebook.
ACCESS_KEY = "AKIAZOOOPSTRAILTEST1"
SECRET_KEY = "zoo-ops-trail-secret-key-never-in-a-notebook"
REGION = "us-east-1"


class FaultRelay:
    """A TCP relay 127.0.0.1:port -> target, with switchable network faults."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.down = False
        self.refuse_put: re.Pattern[bytes] | None = None
        self.refused: list[bytes] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        with suppress(OSError):
            self._server.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if requests and (self.down or self._refused(data)):
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with suppress(OSError):
                    s.close()

    def _refused(self, data: bytes) -> bool:
        pattern = self.refuse_put
        if pattern is None or not data.startswith(b"PUT "):
            return False
        line = data.split(b"\r\n", 1)[0]
        if pattern.search(line):
            self.refused.append(line)
            return True
        return False


@dataclass
class S3:
    """The moto server, the relay in front of it, the bucket, and the variables that
    point a process at them."""

    relay: FaultRelay
    bucket: str
    direct_url: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.relay.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_MAX_ATTEMPTS": "2",  # a refused connection fails fast
        }

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.direct_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def keys(self) -> list[str]:
        found = self.client().list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return sorted(o["Key"] for o in found)

    def get(self, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())


@pytest.fixture(name="s3")
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """moto's standalone server on 127.0.0.1 (a free port), a bucket ``zoo-trail``, the
    relay, and this process's AWS variables pointing at the relay."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto keeps its backends per process: a server started by an earlier test of this
    # worker would show that test's objects. Reset them through moto's own API.
    urllib.request.urlopen(
        urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"), timeout=30
    ).close()
    relay = FaultRelay((host, port)).start()
    s3 = S3(relay, "zoo-trail", f"http://{host}:{port}")
    s3.client().create_bucket(Bucket=s3.bucket)
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    try:
        yield s3
    finally:
        relay.stop()
        server.stop()
