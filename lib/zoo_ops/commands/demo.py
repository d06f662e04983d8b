"""`zoo-ops demo`: build an embedded environment with a demo zoo and user applications.

What it builds: the database schema, the local dynamic-settings ConfigMap
file (automation on, whitelist empty), an admin organization owning the catalog's zoo
models each with a current *legacy* (pre-truss) version served from an artifact
folder, a few organizations and users, a test user for the runbooks, and N user
applications spread round-robin over the zoo models.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from zoo_ops.adapters.platform.schema import ACTIVE
from zoo_ops.adapters.platform.store import ApplicationSpec
from zoo_ops.domain.ids import new_id
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput
from zoo_ops.services.applications import TEST_USER_META_KEY

ADMIN_ORG = "baseten-model-zoo"
DEMO_ORGS = ("acme", "globex", "initech", "umbrella", "hooli")
TEST_USER_EMAIL = "zoo-tester@demo.local"
DEFAULT_APPS = 200


@dataclass(frozen=True)
class DemoModel:
    name: str
    description: str
    legacy: str
    truss: str
    answers_differ: bool


@dataclass(frozen=True)
class DemoCatalog:
    models: tuple[DemoModel, ...]
    secrets: dict[str, str]


def demo_data_dir() -> Path:
    return Path(str(resources.files("zoo_ops") / "demo_data"))


def load_catalog() -> DemoCatalog:
    raw: dict[str, Any] = yaml.safe_load((demo_data_dir() / "catalog.yaml").read_text())
    models = tuple(
        DemoModel(
            name=m["name"],
            description=m.get("description", ""),
            legacy=m["legacy"],
            truss=m["truss"],
            answers_differ=bool(m.get("answers_differ", False)),
        )
        for m in raw["models"]
    )
    return DemoCatalog(models=models, secrets=dict(raw.get("secrets") or {}))


@dataclass(frozen=True)
class DemoSummary:
    env: str
    database: str
    settings: str
    test_user_email: str
    rows: list[dict[str, Any]]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["model", "current_version", "kind", "applications"])


def legacy_artifact(version_id: str) -> str:
    """The artifact reference of a legacy version: a folder under the state directory."""
    return f"legacy:artifacts/{version_id}"


def build_demo(env: Environment, *, apps: int = DEFAULT_APPS, reset: bool = False) -> DemoSummary:
    """Create the demo environment from nothing; refuse an existing one unless ``reset``."""
    from zoo_ops.adapters.settings.local_file import LocalConfigMapFile
    from zoo_ops.domain.whitelist import AUTOMATION_KEY, WHITELIST_KEY

    if apps < 0:
        raise BadInput(f"--apps {apps}: must be 0 or more")
    cfg = env.config
    if not cfg.settings.startswith("file:"):
        raise BadInput(
            f"environment {cfg.name!r} keeps its settings in {cfg.settings!r}; "
            "the demo only builds environments with a local settings file"
        )
    if cfg.protected:
        raise BadInput(f"environment {cfg.name!r} is protected; the demo never writes to it")
    store = env.platform
    settings_path = cfg.path(cfg.settings[len("file:") :])
    exists = store.has_schema() and store.any_zoo_model() is not None
    if exists and not reset:
        raise BadInput(
            f"environment {cfg.name!r} already exists ({cfg.database_url_redacted}); "
            "pass --reset to rebuild it from nothing"
        )
    catalog = load_catalog()
    if reset:
        store.drop_schema()
        shutil.rmtree(cfg.state_path / "artifacts", ignore_errors=True)
        # The trail of a rebuilt demo describes a database that no longer exists.
        shutil.rmtree(cfg.executed_root_path / cfg.name, ignore_errors=True)
    store.create_schema()

    LocalConfigMapFile.create(
        settings_path,
        {
            "ratelimitEnabled": "true",
            AUTOMATION_KEY: "true",
            WHITELIST_KEY: "{}",
        },
        name=cfg.configmap,
        namespace=cfg.namespace,
        overwrite=True,
    )

    admin = store.create_organization(ADMIN_ORG, is_admin=True)
    for name, value in catalog.secrets.items():
        store.set_secret(admin.id, name, value)

    zoo_versions: list[tuple[DemoModel, str]] = []
    for model in catalog.models:
        oracle = store.create_oracle(model.name, admin.id, is_model_zoo=True)
        version_id = new_id()
        target = cfg.state_path / "artifacts" / version_id
        shutil.copytree(demo_data_dir() / "legacy" / model.legacy, target)
        store.add_version(
            oracle.id, status=ACTIVE, artifact=legacy_artifact(version_id), version_id=version_id
        )
        store.set_current_version(oracle.id, version_id)
        zoo_versions.append((model, version_id))

    org_ids = [store.create_organization(name).id for name in DEMO_ORGS]
    for i, org_id in enumerate(org_ids):
        store.create_user(f"owner@{DEMO_ORGS[i]}.example", org_id)
    tester_org = store.create_organization("zoo-testers")
    store.create_user(TEST_USER_EMAIL, tester_org.id)
    store.set_meta(TEST_USER_META_KEY, TEST_USER_EMAIL)

    _insert_applications(env, org_ids, zoo_versions, apps)
    return summarize(env)


def _insert_applications(
    env: Environment, org_ids: list[str], zoo_versions: list[tuple[DemoModel, str]], apps: int
) -> None:
    """N user applications, round-robin over zoo models and organizations, in bulk."""
    if apps == 0 or not zoo_versions:
        return
    env.platform.create_applications(
        [
            ApplicationSpec(
                name=f"{zoo_versions[i % len(zoo_versions)][0].name}-app-{i:05d}",
                organization_id=org_ids[i % len(org_ids)],
                proxy_model_version_id=zoo_versions[i % len(zoo_versions)][1],
            )
            for i in range(apps)
        ]
    )


def summarize(env: Environment) -> DemoSummary:
    """One row per zoo model: its current version, legacy or truss, and how many apps use it."""
    store = env.platform
    models = store.zoo_models()
    currents = {m.name: m.current_version_id for m in models}
    counts = store.proxy_counts([v for v in currents.values() if v])
    rows = []
    for m in models:
        version = store.find_version(m.current_version_id) if m.current_version_id else None
        rows.append(
            {
                "model": m.name,
                "current_version": m.current_version_id,
                "kind": "truss" if version and version.truss_hash else "legacy",
                "applications": counts.get(m.current_version_id or "", 0),
            }
        )
    return DemoSummary(
        env=env.name,
        database=env.config.database_url_redacted,
        settings=env.config.settings,
        test_user_email=store.get_meta(TEST_USER_META_KEY) or "",
        rows=rows,
    )
