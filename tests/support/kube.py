"""A Kubernetes-backed environment fixture (settings, serving, capacity, secrets in the
API stand-in; SQLite platform), shared by the RBAC and concurrency tests."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from zoo_ops.commands.demo import build_demo
from zoo_ops.environment import Environment
from zoo_ops.testing.kube_api import KubeApiStandIn
from zoo_ops.testing.kube_fixtures import (
    BASETEN_NAMESPACE,
    SETTINGS_CONFIGMAP,
)
from zoo_ops.testing.test_secrets import KUBE_SECRET_VALUE

REPO = Path(__file__).resolve().parents[2]
SECRET_NAME = "model-zoo-admin-secrets"


def use_standin(
    kube_api: KubeApiStandIn, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Point the client at the stand-in (no in-cluster credentials) and give it the admin
    organization's Secret, as the platform's cluster has it."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube_api.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": SECRET_NAME, "namespace": BASETEN_NAMESPACE},
                "data": {"hf_access_token": base64.b64encode(KUBE_SECRET_VALUE.encode()).decode()},
            }
        ]
    )


def k8s_config(tmp_path: Path, extra: str = "") -> str:
    """``[env.build]`` (a settings file: the demo builds only there) and ``[env.k8s]``
    (settings, serving, capacity and secrets in the stand-in) over one SQLite platform;
    ``extra`` is appended to ``[env.k8s]``."""
    return f"""
[env.build]
database_url = "sqlite:///{tmp_path / "platform.db"}"
settings = "file:{tmp_path / "state" / "dynamic-settings.yaml"}"
state_dir = "{tmp_path / "state"}"

[env.k8s]
database_url = "sqlite:///{tmp_path / "platform.db"}"
settings = "kubernetes"
state_dir = "{tmp_path / "state"}"
truss_root = "{REPO / "truss_models"}"
executed_root = "{tmp_path / "executed"}"
serving = "kubernetes"
kube_context = "standin"
namespace = "{BASETEN_NAMESPACE}"
configmap = "{SETTINGS_CONFIGMAP}"
secret_name = "{SECRET_NAME}"
predict_url_template = "http://127.0.0.1:9/{{service}}/v1/models/model:predict"
{extra}
"""


@pytest.fixture
def k8s_env(
    kubeconfig: Path,
    kube_api: KubeApiStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_config: Callable[[str], Path],
) -> Iterator[Environment]:
    """Settings, serving, capacity and secrets all in the stand-in; SQLite platform."""
    use_standin(kube_api, kubeconfig, monkeypatch)
    write_config(k8s_config(tmp_path))
    builder = Environment.load("build")  # the demo builds only with a settings file
    build_demo(builder, apps=2)
    builder.dispose()
    env = Environment.load("k8s")
    yield env
    env.dispose()
