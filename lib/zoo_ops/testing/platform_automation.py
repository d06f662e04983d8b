"""A stand-in for the platform's own model zoo automation, for tests of ``automation =
"platform"`` environments (zoo-ops writes the whitelist; the platform deploys).

A thread that, every ``interval_s``, reads the dynamic settings (a callable returning the
ConfigMap's ``data``: from the local settings file or the Kubernetes stand-in, see
:func:`settings_from_file` and :func:`settings_from_kubernetes`) and, as the platform
would, for each whitelisted ``NAME`` while ``modelZooDeploymentAutomationEnabled`` is
``"true"``:

1. hashes ``truss_root/NAME`` (zoo-ops's hash function, which is truss's; a test can
   make the platform deploy other content with ``hash_of``);
2. finds the target zoo model (``NAME_copy`` for ``copy: true``, else ``NAME``) in the
   admin organization, creating it when missing;
3. when no non-DELETED version of the target has that hash, inserts one, DEPLOYING, with
   artifact ``platform:NAME/<id>``; after ``deploy_delay_s`` marks it ACTIVE and makes
   it the target's current version.

It writes the platform tables with plain SQL, as the platform does, never through
zoo-ops's store, and records nothing in zoo-ops's own tables.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.domain.ids import new_id

AUTOMATION_KEY = "modelZooDeploymentAutomationEnabled"
WHITELIST_KEY = "automaticallyDeployedModelZooModelsWhitelist"


def settings_from_file(path: Path) -> Callable[[], Mapping[str, str]]:
    """Read the ConfigMap manifest's ``data`` from a local settings file."""

    def read() -> Mapping[str, str]:
        if not path.exists():
            return {}
        manifest = yaml.safe_load(path.read_text()) or {}
        return manifest.get("data") or {}

    return read


def settings_from_kubernetes(
    kubeconfig: Path, context: str, namespace: str, name: str
) -> Callable[[], Mapping[str, str]]:
    """Read the ConfigMap's ``data`` through the official client (the platform's view)."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig), context=context))

    def read() -> Mapping[str, str]:
        return api.read_namespaced_config_map(name, namespace).data or {}

    return read


class PlatformAutomation:
    """The platform's automation, as a thread (module docstring). Use as a context manager."""

    def __init__(
        self,
        database_url: str,
        read_settings: Callable[[], Mapping[str, str]],
        truss_root: Path,
        *,
        deploy_delay_s: float = 0.3,
        interval_s: float = 0.1,
        hash_of: Callable[[Path], str] | None = None,
    ) -> None:
        self.engine: Engine = create_engine(database_url)
        self.read_settings = read_settings
        self.truss_root = Path(truss_root)
        self.deploy_delay_s = deploy_delay_s
        self.interval_s = interval_s
        self.hash_of = hash_of or truss_content_hash
        self.created: list[str] = []  # version ids this automation inserted
        self.errors: list[str] = []
        self._pending: dict[str, tuple[str, float]] = {}  # version -> (oracle, ready at)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="platform-automation", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> PlatformAutomation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - a test reads .errors; keep watching
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval_s)

    # -- one pass ----------------------------------------------------------------------------

    def tick(self) -> None:
        """One reconcile pass of the platform, then promote versions whose delay passed."""
        data = self.read_settings()
        if str(data.get(AUTOMATION_KEY, "")).strip() == "true":
            whitelist: dict[str, Any] = json.loads(data.get(WHITELIST_KEY) or "{}")
            for name, entry in whitelist.items():
                target = f"{name}_copy" if entry.get("copy") else name
                self._deploy(name, target)
        now = time.monotonic()
        for version_id, (oracle_id, ready_at) in list(self._pending.items()):
            if now >= ready_at:
                with self.engine.begin() as conn:
                    conn.execute(
                        text("UPDATE oracles_oracleversion SET status = 'ACTIVE' WHERE id = :v"),
                        {"v": version_id},
                    )
                    conn.execute(
                        text("UPDATE oracles_oracle SET current_version_id = :v WHERE id = :o"),
                        {"v": version_id, "o": oracle_id},
                    )
                del self._pending[version_id]

    def _deploy(self, name: str, target: str) -> None:
        truss_dir = self.truss_root / name
        if not truss_dir.is_dir():
            return
        truss_hash = self.hash_of(truss_dir)
        with self.engine.begin() as conn:
            oracle_id = self._zoo_model(conn, target)
            existing = conn.execute(
                text(
                    "SELECT id FROM oracles_oracleversion WHERE oracle_id = :o "
                    "AND truss_hash = :h AND status <> 'DELETED'"
                ),
                {"o": oracle_id, "h": truss_hash},
            ).first()
            if existing is not None:
                return
            version_id = new_id()
            conn.execute(
                text(
                    "INSERT INTO oracles_oracleversion (id, oracle_id, proxy_model_version_id, "
                    "truss_hash, status, artifact, created_at) "
                    "VALUES (:id, :o, NULL, :h, 'DEPLOYING', :a, :at)"
                ),
                {
                    "id": version_id,
                    "o": oracle_id,
                    "h": truss_hash,
                    "a": f"platform:{name}/{version_id}",
                    "at": self._now(conn),
                },
            )
        self.created.append(version_id)
        self._pending[version_id] = (oracle_id, time.monotonic() + self.deploy_delay_s)

    def _zoo_model(self, conn: Connection, name: str) -> str:
        admin = conn.execute(
            text("SELECT id FROM organizations_organization WHERE is_admin")
        ).scalar_one()
        found = conn.execute(
            text("SELECT id FROM oracles_oracle WHERE organization_id = :org AND name = :n"),
            {"org": admin, "n": name},
        ).scalar()
        if found is not None:
            return str(found)
        oracle_id = new_id()
        conn.execute(
            text(
                "INSERT INTO oracles_oracle (id, name, organization_id, is_model_zoo, "
                "current_version_id, created_at) VALUES (:id, :n, :org, :z, NULL, :at)"
            ),
            {"id": oracle_id, "n": name, "org": admin, "z": True, "at": self._now(conn)},
        )
        return oracle_id

    @staticmethod
    def _now(conn: Connection) -> Any:
        """Now in UTC as the column stores it: naive UTC text on SQLite, aware elsewhere."""
        now = datetime.now(UTC)
        if conn.dialect.name == "sqlite":
            return now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return now
