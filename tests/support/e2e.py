"""The production path as an SRE meets it: two environments, staging and prod, each with its
own PostgreSQL platform database (written by :mod:`support.platform_db` as the platform
writes it, attached with ``zoo-ops init``), its own Kubernetes API stand-in (https with a CA
made for it, a bearer token; one kubeconfig with the contexts ``staging`` and ``prod``), and
its own platform automation (:class:`~zoo_ops.testing.platform_automation.PlatformAutomation`,
watching that environment's ConfigMap and creating versions as the platform does:
``automation = "platform"``). prod has ``requires = "staging"`` and ``protected = true``.

Serving is one small HTTP server (:class:`~zoo_ops.testing.truss_server.TrussHttpServer`)
that answers for what really serves each version: ``/truss-<hash>/`` for every truss of
``truss_models`` (``predict_url_template``) and ``/legacy-<version id>/`` for every legacy
zoo version of both databases (``legacy_predict_url_template``).

Everything zoo-ops does here goes through the real ``zoo-ops`` command, as a subprocess;
the test reads the platform tables and the ConfigMaps back with plain SQL and the
stand-ins' own state, never through zoo-ops.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from support.platform_db import ADMIN_SECRETS, PlatformDatabase
from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.platform.engine import normalize_url
from zoo_ops.adapters.truss_files import truss_content_hash
from zoo_ops.adapters.truss_runtime import load_truss_model
from zoo_ops.commands.demo import demo_data_dir
from zoo_ops.domain.whitelist import WHITELIST_KEY
from zoo_ops.testing.kube_api import (
    ACCELERATOR_LABEL,
    BASETEN_NAMESPACE,
    GPU_RESOURCE,
    SETTINGS_CONFIGMAP,
    KubeApiStandIn,
    KubeRequest,
    default_seed_manifests,
)
from zoo_ops.testing.kube_fixtures import ZOO_OPS_AGENT_PREFIX
from zoo_ops.testing.platform_automation import PlatformAutomation, settings_from_kubernetes
from zoo_ops.testing.test_secrets import RUNBOOK_DATABASE_PASSWORD
from zoo_ops.testing.truss_server import TrussHttpServer

REPO = Path(__file__).resolve().parents[2]
TRUSSES = REPO / "truss_models"
MODELS = ("iris", "resnet50", "summarizer", "sentiment")
SECRET_NAME = "model-zoo-admin-secrets"
PREDICT = "/v1/models/model:predict"
PLATFORM_TABLES = (
    "organizations_organization",
    "users_user",
    "oracles_oracle",
    "oracles_oracleversion",
    "secrets_secret",
)
APPS_PER_ENV = 20
CLI = [sys.executable, "-m", "zoo_ops.cli"]
# The SRE's database URLs carry a password (trust auth ignores it); it must never be shown.
DATABASE_PASSWORD = RUNBOOK_DATABASE_PASSWORD


@dataclass
class Side:
    """One environment of the production path: its database, cluster and platform."""

    name: str
    db: PlatformDatabase
    kube: KubeApiStandIn
    platform: PlatformAutomation

    @property
    def url(self) -> str:
        return self.db.url

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` on this environment's platform database (plain SQL)."""
        engine = create_engine(normalize_url(self.url))
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def platform_rows(self) -> dict[str, list[tuple[str, ...]]]:
        """Every row of every platform table, as text, in id order."""
        return {
            table: [tuple(str(v) for v in row) for row in self.rows(f"SELECT * FROM {table}")]
            for table in PLATFORM_TABLES
        }

    def configmap(self) -> dict[str, Any]:
        found = self.kube.get_object("ConfigMap", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP)
        assert found is not None
        return found

    def whitelist(self) -> dict[str, Any]:
        return dict(json.loads(self.configmap()["data"][WHITELIST_KEY]))

    def state(self) -> dict[str, Any]:
        """What a refused write must leave as it was: the ConfigMap's data and
        resourceVersion, the platform tables' rows, the Deployments and Services."""
        cm = self.configmap()
        return {
            "configmap": (cm["data"], cm["metadata"]["resourceVersion"]),
            "platform": sorted_rows(self.platform_rows()),
            "deployments": self.kube.list_objects("Deployment", BASETEN_NAMESPACE),
            "services": self.kube.list_objects("Service", BASETEN_NAMESPACE),
        }

    def zoo_current(self, model: str) -> tuple[str, str | None]:
        """(current version id, its truss hash) of zoo model ``model``."""
        ((version_id, truss_hash),) = self.rows(
            "SELECT v.id, v.truss_hash FROM oracles_oracle o JOIN oracles_oracleversion v "
            "ON v.id = o.current_version_id WHERE o.is_model_zoo AND o.name = :m "
            "AND o.organization_id = :org",
            m=model,
            org=self.db.admin_org_id,
        )
        return str(version_id), truss_hash

    def app_proxies(self, model: str) -> set[str]:
        """The zoo versions the user applications of ``model`` (``MODEL-app-N``) proxy."""
        return {
            str(proxy)
            for (proxy,) in self.rows(
                "SELECT v.proxy_model_version_id FROM oracles_oracle o JOIN "
                "oracles_oracleversion v ON v.id = o.current_version_id "
                "WHERE NOT o.is_model_zoo AND o.name LIKE :pattern",
                pattern=f"{model}-app-%",
            )
        }

    def zoo_ops_requests(self, verb: str, resource: str) -> list[KubeRequest]:
        """The requests zoo-ops (its user agent) made of this environment's cluster."""
        return [
            r
            for r in self.kube.requests_for(verb, resource)
            if r.user_agent.startswith(ZOO_OPS_AGENT_PREFIX)
        ]

    def zoo_model_names(self) -> set[str]:
        return {str(n) for (n,) in self.rows("SELECT name FROM oracles_oracle WHERE is_model_zoo")}


def sorted_rows(tables: dict[str, list[tuple[str, ...]]]) -> dict[str, list[tuple[str, ...]]]:
    return {table: sorted(rows) for table, rows in tables.items()}


@dataclass
class ProductionPath:
    """Both environments, the serving server, and the ``zoo-ops`` command run in ``root``."""

    root: Path
    staging: Side
    prod: Side
    server: TrussHttpServer
    env: dict[str, str]

    def zoo_ops(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """The real ``zoo-ops`` command, in ``root``, with this path's configuration; what
        it prints never holds the databases' password (the trail is the secret scan's)."""
        done = subprocess.run(
            [*CLI, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert DATABASE_PASSWORD not in done.stdout + done.stderr, f"{args} printed a password"
        return done

    def side(self, name: str) -> Side:
        return {"staging": self.staging, "prod": self.prod}[name]


def cluster_manifests(gpus: int) -> list[dict[str, Any]]:
    """The default stand-in cluster (namespace, dynamic settings, a CPU node, a one-T4 node)
    with ``gpus`` T4s on the GPU node, and the admin Secret holding ``hf_access_token``."""
    manifests = default_seed_manifests()
    for doc in manifests:
        if doc["kind"] == "Node" and ACCELERATOR_LABEL in doc["metadata"]["labels"]:
            for key in ("capacity", "allocatable"):
                doc["status"][key][GPU_RESOURCE] = str(gpus)
    value = ADMIN_SECRETS["hf_access_token"]
    manifests.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": BASETEN_NAMESPACE},
            "data": {"hf_access_token": base64.b64encode(value.encode()).decode()},
        }
    )
    return manifests


def environment_table(name: str, root: Path, server: TrussHttpServer, extra: str = "") -> str:
    """``[env.NAME]`` of the SRE's zoo_ops.toml: the database URL from ``${NAME_DATABASE_URL}``,
    settings, capacity and secrets in the cluster of context NAME, the platform deploys,
    both version kinds served where the serving server answers."""
    return f"""
[env.{name}]
database_url = "${{{name.upper()}_DATABASE_URL}}"
settings = "kubernetes"
serving = "kubernetes"
automation = "platform"
kube_context = "{name}"
namespace = "{BASETEN_NAMESPACE}"
configmap = "{SETTINGS_CONFIGMAP}"
secret_name = "{SECRET_NAME}"
state_dir = "{root / name}"
truss_root = "{TRUSSES}"
executed_root = "{root / "executed"}"
test_user_email = "{{email}}"
predict_url_template = "{server.url}/truss-{{truss_hash}}{PREDICT}"
legacy_predict_url_template = "{server.url}/legacy-{{version_id}}{PREDICT}"
{extra}
"""


@pytest.fixture(name="production")
def production_path(
    tmp_path: Path,
    platform_databases: Callable[..., PlatformDatabase],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ProductionPath]:
    """Two PostgreSQL platform databases (URLs with a password; not yet attached: the test runs ``zoo-ops init``),
    two TLS stand-ins with tokens, a platform automation per environment, the serving
    server, and zoo_ops.toml. staging has three T4s; prod one T4 and a scalable pool of two
    (``capacity.scalable_pools``)."""
    dbs = {
        name: platform_databases(apps=APPS_PER_ENV, password=DATABASE_PASSWORD)
        for name in ("staging", "prod")
    }
    kubes = {
        "staging": KubeApiStandIn(tls=True),
        "prod": KubeApiStandIn(tls=True),
    }
    kubes["staging"].seed(cluster_manifests(gpus=3))
    kubes["prod"].seed(cluster_manifests(gpus=1))
    for kube in kubes.values():
        kube.start()
    kubeconfig = KubeApiStandIn.write_kubeconfig_for(tmp_path / "kubeconfig", kubes)

    models: dict[str, Any] = {
        f"truss-{truss_content_hash(TRUSSES / m)}": load_truss_model(
            TRUSSES / m, secrets=ADMIN_SECRETS
        )
        for m in MODELS
    }
    for db in dbs.values():
        for model, version_id in db.current_versions.items():
            models[f"legacy-{version_id}"] = load_legacy_model(demo_data_dir() / "legacy" / model)
    server = TrussHttpServer(models).start()

    email = next(iter(dbs.values())).test_user_email
    config = tmp_path / "zoo_ops.toml"
    config.write_text(
        (
            environment_table("staging", tmp_path, server)
            + environment_table(
                "prod",
                tmp_path,
                server,
                extra='requires = "staging"\nprotected = true\n\n'
                "[env.prod.capacity]\nscalable_pools = { T4 = 2 }",
            )
        ).replace("{email}", email)
    )
    for var, value in {
        "ZOO_OPS_CONFIG": str(config),
        "KUBECONFIG": str(kubeconfig),
        "STAGING_DATABASE_URL": dbs["staging"].url,
        "PROD_DATABASE_URL": dbs["prod"].url,
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.delenv("VISUAL", raising=False)

    sides = {}
    for name, db in dbs.items():
        read = settings_from_kubernetes(kubeconfig, name, BASETEN_NAMESPACE, SETTINGS_CONFIGMAP)
        automation = PlatformAutomation(db.url, read, TRUSSES, deploy_delay_s=0.2)
        sides[name] = Side(name, db, kubes[name], automation)
    try:
        for side in sides.values():
            side.platform.__enter__()
        yield ProductionPath(tmp_path, sides["staging"], sides["prod"], server, dict(os.environ))
    finally:
        for side in sides.values():
            side.platform.__exit__(None, None, None)
        server.stop()
        for kube in kubes.values():
            kube.stop()


def expect_refused(path: ProductionPath, *args: str, needles: tuple[str, ...] = ()) -> str:
    """Run ``zoo-ops ARGS``; it must exit 2 with one line on stderr containing each of
    ``needles`` and change nothing in either environment (ConfigMap data and
    resourceVersion, platform tables, Deployments, Services). Returns the line."""
    before = (path.staging.state(), path.prod.state())
    done = path.zoo_ops(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (args, done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1, (args, done.stderr)
    for needle in needles:
        assert needle in lines[0], (args, needle, lines[0])
    assert (path.staging.state(), path.prod.state()) == before, f"{args} changed something"
    return lines[0]


def expect_success(path: ProductionPath, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``zoo-ops ARGS``; it must exit 0."""
    done = path.zoo_ops(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


EDITOR_SCRIPT = """
import json, sys
from pathlib import Path
Path(sys.argv[0]).with_name("opened").write_text("yes")
target = Path(sys.argv[1])
body = "\\n".join(l for l in target.read_text().splitlines() if not l.lstrip().startswith("#"))
data = json.loads(body or "{}")
data["sentiment"] = {"copy": True}
target.write_text(json.dumps(data))
"""


def editor_adding_sentiment(path: ProductionPath) -> Path:
    """Set ``EDITOR`` (for the commands ``path`` runs) to a program that adds
    ``sentiment: {copy: true}`` to what it is given and leaves ``opened`` beside itself."""
    script = path.root / "editor" / "editor.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(EDITOR_SCRIPT)
    path.env["EDITOR"] = f"{sys.executable} {script}"
    return script.with_name("opened")
