"""Adapter wiring: which implementation serves which role, for one environment's config.

The one place that maps configuration values to adapter classes (DESIGN §1, layer 4).
Every family has one :class:`~zoo_ops.adapters.registry.Registry` and one factory type;
a factory takes the configuration and only the collaborators it needs (never the whole
:class:`~zoo_ops.environment.Environment`) and is declared to return the family's
Protocol, so mypy checks every implementation against its Protocol:

============  ======================  ==========================================  =========================
family        chosen by               ``local`` / ``file:PATH``                   ``kubernetes``
============  ======================  ==========================================  =========================
settings      ``settings`` (scheme)   LocalConfigMapFile(config, path)            KubernetesConfigMap(config)
secrets       ``serving``             DatabaseSecretStore(platform)               KubernetesSecretStore(config)
serving       ``serving``             LocalServing(config, secrets)               KubernetesServing(config)
cluster       ``serving``             LocalMachine(config)                        KubernetesCluster(config)
============  ======================  ==========================================  =========================

Who deploys (``automation``: the embedded reconciler or the platform's own automation)
is a procedure, not an adapter: its registry is ``zoo_ops.services.deploy.DEPLOYERS``.

Collaborators are passed as providers (``() -> PlatformStore``): an adapter that does
not need one never builds it (a Kubernetes secret store opens no database).

Implementation modules are imported when their factory runs, so that loading an
environment does not import the Kubernetes client or the truss runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from zoo_ops.adapters.cluster import Cluster
from zoo_ops.adapters.registry import Registry
from zoo_ops.adapters.secrets import SecretStore
from zoo_ops.adapters.serving import Serving
from zoo_ops.adapters.settings import SettingsStore
from zoo_ops.domain.url_templates import (
    IMAGE_FIELDS,
    LEGACY_URL_FIELDS,
    TRUSS_URL_FIELDS,
    template_problem,
)
from zoo_ops.errors import ConfigError

if TYPE_CHECKING:
    from zoo_ops.adapters.cluster.kubernetes import KubernetesCluster
    from zoo_ops.adapters.cluster.local import LocalMachine
    from zoo_ops.adapters.platform.store import PlatformStore
    from zoo_ops.adapters.secrets.kubernetes import KubernetesSecretStore
    from zoo_ops.adapters.secrets.local import DatabaseSecretStore
    from zoo_ops.adapters.serving.kubernetes import KubernetesServing
    from zoo_ops.adapters.serving.local import LocalServing
    from zoo_ops.adapters.settings.kubernetes import KubernetesConfigMap
    from zoo_ops.adapters.settings.local_file import LocalConfigMapFile
    from zoo_ops.config import EnvironmentConfig

    # Every registered implementation, as its family's Protocol: mypy checks each class
    # against the Protocol here, besides each factory's declared return type.
    _SETTINGS_CLASSES: tuple[type[SettingsStore], ...] = (LocalConfigMapFile, KubernetesConfigMap)
    _SECRETS_CLASSES: tuple[type[SecretStore], ...] = (DatabaseSecretStore, KubernetesSecretStore)
    _SERVING_CLASSES: tuple[type[Serving], ...] = (LocalServing, KubernetesServing)
    _CLUSTER_CLASSES: tuple[type[Cluster], ...] = (LocalMachine, KubernetesCluster)

T = TypeVar("T")
#: ``automation`` value under which zoo-ops itself deploys (and so may delete) versions.
ZOO_OPS_AUTOMATION = "zoo-ops"
Provider: TypeAlias = Callable[[], T]

#: ``factory(config, argument)``: ``argument`` is the settings value after ``scheme:``.
SettingsFactory: TypeAlias = Callable[["EnvironmentConfig", str], SettingsStore]
SecretStoreFactory: TypeAlias = Callable[
    ["EnvironmentConfig", "Provider[PlatformStore]"], SecretStore
]
ServingFactory: TypeAlias = Callable[["EnvironmentConfig", "Provider[SecretStore]"], Serving]
ClusterFactory: TypeAlias = Callable[["EnvironmentConfig"], Cluster]

SETTINGS: Registry[SettingsFactory] = Registry("settings store")
SECRETS: Registry[SecretStoreFactory] = Registry("secret store")
SERVING: Registry[ServingFactory] = Registry("serving adapter")
CLUSTER: Registry[ClusterFactory] = Registry("cluster adapter")

# How a settings scheme is written in messages (schemes taking an argument).
_SETTINGS_FORMS = {"file": "file:PATH"}


# --- settings ----------------------------------------------------------------------------


def _local_file_settings(config: EnvironmentConfig, path: str) -> SettingsStore:
    from zoo_ops.adapters.settings.local_file import LocalConfigMapFile

    if not path:
        raise ConfigError(f"[env.{config.name}] settings = 'file:' needs a path after 'file:'")
    return LocalConfigMapFile(config.path(path), name=config.configmap, namespace=config.namespace)


def _kubernetes_settings(config: EnvironmentConfig, argument: str) -> SettingsStore:
    from zoo_ops.adapters.settings.kubernetes import KubernetesConfigMap

    if argument:
        raise ConfigError(
            f"[env.{config.name}] settings = 'kubernetes' takes no argument; "
            "set kube_context, namespace and configmap instead"
        )
    return KubernetesConfigMap(
        namespace=config.namespace, name=config.configmap, context=config.kube_context
    )


# --- secrets -----------------------------------------------------------------------------


def _database_secrets(config: EnvironmentConfig, platform: Provider[PlatformStore]) -> SecretStore:
    from zoo_ops.adapters.secrets.local import DatabaseSecretStore

    return DatabaseSecretStore(platform())


def _kubernetes_secrets(
    config: EnvironmentConfig, platform: Provider[PlatformStore]
) -> SecretStore:
    from zoo_ops.adapters.secrets.kubernetes import KubernetesSecretStore

    return KubernetesSecretStore(
        namespace=config.namespace, name=config.secret_name, context=config.kube_context
    )


# --- serving -----------------------------------------------------------------------------


def _local_serving(config: EnvironmentConfig, secrets: Provider[SecretStore]) -> Serving:
    from zoo_ops.adapters.serving.local import LocalServing

    # Secrets are read only when a truss model loads, and go nowhere but the model.
    return LocalServing(config.state_path, secrets=lambda: secrets().values())


def _kubernetes_serving(config: EnvironmentConfig, secrets: Provider[SecretStore]) -> Serving:
    from zoo_ops.adapters.serving.kubernetes import KubernetesServing

    # The pods mount the Secret ``secret_name`` themselves; no value passes through here.
    # ``image`` and ``image_pull_secrets`` are used only when zoo-ops deploys
    # (automation = "zoo-ops"); on a platform-automated cluster the adapter predicts and
    # retires, and deletes nothing it did not make (``manages_versions``).
    return KubernetesServing(
        namespace=config.namespace,
        context=config.kube_context,
        predict_url_template=config.predict_url_template,
        legacy_predict_url_template=config.legacy_predict_url_template,
        secret_name=config.secret_name,
        image_template=config.image,
        image_pull_secrets=config.image_pull_secrets,
        manages_versions=config.automation == ZOO_OPS_AUTOMATION,
    )


# --- cluster -----------------------------------------------------------------------------


def _local_cluster(config: EnvironmentConfig) -> Cluster:
    from zoo_ops.adapters.cluster.local import LocalMachine

    return LocalMachine(config.state_path / "artifacts")


def _kubernetes_cluster(config: EnvironmentConfig) -> Cluster:
    from zoo_ops.adapters.cluster.kubernetes import KubernetesCluster

    return KubernetesCluster(context=config.kube_context, namespace=config.namespace)


SETTINGS.register("file", _local_file_settings)
SETTINGS.register("kubernetes", _kubernetes_settings)
SECRETS.register("local", _database_secrets)
SECRETS.register("kubernetes", _kubernetes_secrets)
SERVING.register("local", _local_serving)
SERVING.register("kubernetes", _kubernetes_serving)
CLUSTER.register("local", _local_cluster)
CLUSTER.register("kubernetes", _kubernetes_cluster)


# --- choosing ----------------------------------------------------------------------------


def settings_store_for(config: EnvironmentConfig) -> SettingsStore:
    """The store the ``settings`` value names: ``SCHEME`` or ``SCHEME:ARGUMENT``."""
    value = config.settings.strip()
    scheme, _, argument = value.partition(":")
    factory = SETTINGS.get(scheme)
    if factory is None:
        known = ", ".join(repr(_SETTINGS_FORMS.get(n, n)) for n in SETTINGS.names())
        raise ConfigError(
            f"[env.{config.name}] settings = {config.settings!r} is not a known store; "
            f"use one of {known}"
        )
    return factory(config, argument)


def check_serving_templates(config: EnvironmentConfig) -> None:
    """Refuse (ConfigError, one line) an ``image`` or predict URL template using a field
    it does not have (:mod:`zoo_ops.domain.url_templates`).

    Run whenever any adapter chosen by ``serving`` is built, so that the preflights
    (capacity, secrets) refuse a bad template before a step writes anything."""
    for key, allowed in (
        ("image", IMAGE_FIELDS),
        ("predict_url_template", TRUSS_URL_FIELDS),
        ("legacy_predict_url_template", LEGACY_URL_FIELDS),
    ):
        problem = template_problem(getattr(config, key), allowed)
        if problem:
            raise ConfigError(f"[env.{config.name}] {key} = {problem}; fix zoo_ops.toml")


def _by_serving(registry: Registry[T], config: EnvironmentConfig) -> T:
    factory = registry.get(config.serving)
    if factory is None:
        raise ConfigError(
            f"[env.{config.name}] serving = {config.serving!r} has no {registry.what}; "
            f"use one of {', '.join(registry.names())}"
        )
    check_serving_templates(config)
    return factory


def secret_store_for(config: EnvironmentConfig, platform: Provider[PlatformStore]) -> SecretStore:
    """The admin organization's secret store for the ``serving`` value (the secrets live
    where the models are served)."""
    return _by_serving(SECRETS, config)(config, platform)


def serving_for(config: EnvironmentConfig, secrets: Provider[SecretStore]) -> Serving:
    """The serving adapter the ``serving`` value names."""
    return _by_serving(SERVING, config)(config, secrets)


def cluster_for(config: EnvironmentConfig) -> Cluster:
    """The cluster (capacity) adapter for the ``serving`` value."""
    return _by_serving(CLUSTER, config)(config)
