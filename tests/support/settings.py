"""Settings-store harnesses shared by the settings tests: the local ConfigMap file and
the Kubernetes ConfigMap in the API stand-in, each with a second, independent writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from zoo_ops.adapters.settings.kubernetes import KubernetesConfigMap
from zoo_ops.adapters.settings.local_file import LocalConfigMapFile
from zoo_ops.domain.whitelist import AUTOMATION_KEY, WHITELIST_KEY

NAMESPACE = "baseten"


CONFIGMAP = "baseten-django-dynamic-settings"


SEED_DATA = {
    "ratelimitEnabled": "true",
    WHITELIST_KEY: '{"iris": {"copy": true}}',
    AUTOMATION_KEY: "true",
    "someOtherJson": '{"b":1,  "a":[1,2]}',
    "multiLine": "line one\n  line two\n\ttabbed: yes\n",
    "unicode": "müller — ☃",
    "emptyValue": "",
}


class LocalHarness:
    """The local store: a manifest file in tmp_path; the other writer edits the file itself."""

    kind = "local"
    env_name = "local"

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "state" / "dynamic-settings.yaml"
        self.config_text = f'[env.local]\nsettings = "file:{self.path}"\n'

    def setup(self, data: dict[str, str]) -> None:
        LocalConfigMapFile.create(self.path, data, overwrite=True)

    def store(self, **kwargs: Any) -> LocalConfigMapFile:
        return LocalConfigMapFile(self.path, **kwargs)

    def plant(self, data: dict[str, str]) -> None:
        """Replace the data as a text editor would: no zoo-ops code, no validation."""
        manifest = yaml.safe_load(self.path.read_text())
        manifest["data"] = dict(data)
        rv = str(manifest["metadata"].get("resourceVersion", "0"))
        manifest["metadata"]["resourceVersion"] = str(int(rv) + 1)
        self.path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=1 << 20))

    def poke(self, key: str, value: str) -> None:
        data = self.data()
        data[key] = value
        self.plant(data)

    def data(self) -> dict[str, str]:
        return dict(yaml.safe_load(self.path.read_text())["data"])

    def resource_version(self) -> str:
        return str(yaml.safe_load(self.path.read_text())["metadata"]["resourceVersion"])

    def fingerprint(self) -> object:
        return self.path.read_bytes()

    def delete(self) -> None:
        self.path.unlink()


class KubeHarness:
    """The Kubernetes store against the stand-in; the other writer is a separate client."""

    kind = "kubernetes"
    env_name = "k8s"

    def __init__(self, kubeconfig: Path, context: str) -> None:
        from kubernetes import client, config

        self.kubeconfig = kubeconfig
        self.context = context
        self.config_text = (
            "[env.k8s]\n"
            'settings = "kubernetes"\n'
            f'kube_context = "{context}"\n'
            f'namespace = "{NAMESPACE}"\n'
            f'configmap = "{CONFIGMAP}"\n'
        )
        api_client = config.new_client_from_config(
            config_file=str(kubeconfig), context=context, persist_config=False
        )
        self.api = client.CoreV1Api(api_client)
        self._client = client

    def setup(self, data: dict[str, str]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_config_map(CONFIGMAP, NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
        body = self._client.V1ConfigMap(
            metadata=self._client.V1ObjectMeta(
                name=CONFIGMAP, namespace=NAMESPACE, labels={"app": "django"}
            ),
            data=dict(data),
        )
        self.api.create_namespaced_config_map(NAMESPACE, body)

    def store(self, **kwargs: Any) -> KubernetesConfigMap:
        return KubernetesConfigMap(
            namespace=NAMESPACE, name=CONFIGMAP, context=self.context, **kwargs
        )

    def _read(self) -> Any:
        return self.api.read_namespaced_config_map(CONFIGMAP, NAMESPACE)

    def plant(self, data: dict[str, str]) -> None:
        obj = self._read()
        obj.data = dict(data)
        self.api.replace_namespaced_config_map(CONFIGMAP, NAMESPACE, obj)

    def poke(self, key: str, value: str) -> None:
        # A strategic-merge patch of one key: what `kubectl patch` sends.
        self.api.patch_namespaced_config_map(CONFIGMAP, NAMESPACE, {"data": {key: value}})

    def data(self) -> dict[str, str]:
        return dict(self._read().data or {})

    def resource_version(self) -> str:
        return str(self._read().metadata.resource_version)

    def fingerprint(self) -> object:
        obj = self._read()
        return (obj.metadata.resource_version, obj.data, obj.metadata.labels)

    def delete(self) -> None:
        self.api.delete_namespaced_config_map(CONFIGMAP, NAMESPACE)


Harness = LocalHarness | KubeHarness


def make_harness(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: dict[str, str] | None = None,
) -> Harness:
    """A store of ``kind`` seeded with ``data``, and ZOO_OPS_CONFIG pointing at its env."""
    harness: Harness
    if kind == "local":
        harness = LocalHarness(tmp_path)
    else:
        # The stand-in and its kubeconfig come from zoo_ops.testing.kube_fixtures.
        kubeconfig = Path(request.getfixturevalue("kubeconfig"))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        context = yaml.safe_load(kubeconfig.read_text())["current-context"]
        harness = KubeHarness(kubeconfig, context)
    config = tmp_path / "zoo_ops.toml"
    config.write_text(harness.config_text)
    monkeypatch.setenv("ZOO_OPS_CONFIG", str(config))
    harness.setup(dict(SEED_DATA if data is None else data))
    return harness
