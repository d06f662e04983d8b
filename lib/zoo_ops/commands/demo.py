"""`zoo-ops demo`: build an embedded environment with a demo zoo and user applications.

What it builds: the database schema, the local dynamic-settings ConfigMap
file (automation on, whitelist empty), an admin organization owning the catalog's zoo
models each with a current *legacy* (pre-truss) version served from an artifact
folder, a few organizations and users, a test user for the runbooks, and N user
applications spread round-robin over the zoo models.

``--reset`` deletes, and only after these checks (:func:`reset_targets`), the
environment's ``STATE/artifacts`` and its trail ``EXECUTED_ROOT/ENV``: each must
resolve (symlinks followed) inside its own folder, and neither the state folder nor
the trail root may be, contain or lie inside the configuration's folder, the working
directory, the home folder, zoo-ops's source checkout, ``truss_root`` or each other.
So ``[env.".."]``, ``state_dir = "."`` or a state folder linked to ``/`` delete nothing.
The settings file the demo (re)writes may not be the configuration file nor lie in
``truss_root`` or the trail.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from zoo_ops.adapters.paths import check_apart, check_removable, resolved
from zoo_ops.adapters.platform.schema import ACTIVE
from zoo_ops.adapters.platform.store import ApplicationSpec
from zoo_ops.config import EnvironmentConfig, config_path
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


def _kept_places(cfg: EnvironmentConfig) -> dict[str, Path]:
    """Folders a reset must never delete, nor anything containing them."""
    kept = {
        "configuration folder": cfg.root,
        "configuration file": config_path(),
        "working directory": Path.cwd(),
        "home folder": Path.home(),
    }
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "lib" / "zoo_ops").is_dir():  # running from a source checkout
        kept["zoo-ops source checkout"] = checkout
    return kept


def reset_targets(cfg: EnvironmentConfig) -> list[Path]:
    """The folders ``--reset`` deletes, resolved, each refused in one line when unsafe.

    See the module docstring for the rule; nothing is deleted here.
    """
    kept = _kept_places(cfg)
    state, trail_root, trusses = cfg.state_path, cfg.executed_root_path, cfg.truss_root_path
    folders = {"state folder": state, "executed_root": trail_root, "truss_root": trusses}
    for what, folder in (("state folder", state), ("executed_root", trail_root)):
        others = {k: v for k, v in folders.items() if k != what}
        # The folder as a whole, wherever it is (it may be a link to another disk): what
        # is deleted lies in it, so it must not hold what is kept.
        check_apart(folder, keep={**kept, **others}, outside=others)
    others = {"executed_root": trail_root, "truss_root": trusses}
    artifacts = check_removable(state / "artifacts", state, keep={**kept, **others}, outside=others)
    trail = check_removable(
        cfg.trail_path(),
        trail_root,
        keep={**kept, "state folder": state, "truss_root": trusses},
        outside={"state folder": state, "truss_root": trusses},
    )
    return [artifacts, trail]


def check_settings_target(cfg: EnvironmentConfig, settings_path: Path) -> None:
    """Refuse a settings file the demo must not overwrite (see the module docstring)."""
    real = resolved(settings_path, "settings file")
    if real == resolved(config_path(), "configuration file"):
        raise BadInput(f"settings file {real} is the configuration file; point settings elsewhere")
    for what, folder in (("truss_root", cfg.truss_root_path), ("trail", cfg.executed_root_path)):
        if real.is_relative_to(resolved(folder, what)):
            raise BadInput(f"settings file {real} lies inside the {what}; point settings elsewhere")
    if real.exists() and not real.is_file():
        raise BadInput(f"settings file {real} is not a regular file; point settings elsewhere")


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
    # Checked before anything is written or dropped, also without --reset: the demo
    # writes into the state folder and the settings file either way.
    doomed = reset_targets(cfg)
    check_settings_target(cfg, settings_path)
    exists = store.has_schema() and store.any_zoo_model() is not None
    if exists and not reset:
        raise BadInput(
            f"environment {cfg.name!r} already exists ({cfg.database_url_redacted}); "
            "pass --reset to rebuild it from nothing"
        )
    catalog = load_catalog()
    if reset:
        store.drop_schema()
        # artifacts, and the trail: a rebuilt demo's trail describes a database that no
        # longer exists.
        for folder in doomed:
            shutil.rmtree(folder, ignore_errors=True)
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
