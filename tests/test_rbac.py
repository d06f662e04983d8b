"""Least privilege: deploy/rbac.yaml allows every Kubernetes call zoo-ops makes, and no more.

zoo-ops's ApiClient says ``User-Agent: zoo-ops/<version>`` (adapters/kube_client.py), and
the stand-in records each request's user agent, so zoo-ops's own calls are told apart
from the harness's (kubectl, the plain client a test seeds objects with).

Two checks:

* here, an end-to-end flow through every Kubernetes adapter (settings read and update,
  automation reconcile with the Kubernetes serving adapter, a repeated deploy, a
  readiness timeout, capacity, secrets, a version's footprint, retire's delete): every
  zoo-ops request is allowed by the manifest, and every rule of the manifest is used by
  some request (nothing granted that zoo-ops does not use);
* over the whole session: ``zoo_ops.testing.kube_fixtures`` collects every zoo-ops
  request any stand-in served in any test and fails the session if one is not allowed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.kube import SECRET_NAME

from zoo_ops.adapters.kube_client import user_agent
from zoo_ops.adapters.serving.kubernetes import KubernetesServing
from zoo_ops.adapters.truss_runtime import read_truss
from zoo_ops.environment import Environment
from zoo_ops.errors import StepFailed
from zoo_ops.services.automation import reconcile
from zoo_ops.services.preflight import preflight_capacity, preflight_secrets
from zoo_ops.services.settings import set_whitelist_entry
from zoo_ops.testing.kube_api import NEVER_READY_ANNOTATION, KubeApiStandIn, KubeRequest
from zoo_ops.testing.kube_fixtures import (
    BASETEN_NAMESPACE,
    SETTINGS_CONFIGMAP,
    Kubectl,
    load_rbac,
    rbac_allows,
    rule_allows,
)
from zoo_ops.testing.test_secrets import KUBE_SECRET_VALUE

REPO = Path(__file__).resolve().parent.parent
RBAC = REPO / "deploy" / "rbac.yaml"


def zoo_ops_calls(api: KubeApiStandIn) -> list[KubeRequest]:
    return [r for r in api.request_log if r.user_agent == user_agent()]


def run_every_adapter(env: Environment, kubectl: Kubectl, kube_api: KubeApiStandIn) -> None:
    """One pass through every Kubernetes call zoo-ops has."""
    # The harness's own calls (kubectl): they must not count as zoo-ops's.
    kubectl("-n", BASETEN_NAMESPACE, "get", "configmaps", "-o", "name", check=True)
    set_whitelist_entry(env, "iris", True)  # settings: get, update
    reconcile(env, wait_timeout_s=30)  # serving: create Deployment + Service, status
    truss = read_truss(REPO / "truss_models" / "iris")
    serving = env.serving
    assert isinstance(serving, KubernetesServing)
    copy = env.platform.zoo_model("iris_copy")
    version = env.platform.current_version(copy)
    # The same version deployed again: create answers 409, then get + update.
    serving.deploy(version.id, truss.path, truss.config, model="iris_copy")
    stuck = KubernetesServing(
        namespace=BASETEN_NAMESPACE,
        context="standin",
        predict_url_template=env.config.predict_url_template,
        extra_annotations={NEVER_READY_ANNOTATION: "true"},
    )
    artifact = stuck.deploy("v-stuck", truss.path, truss.config, model="iris_copy")
    with pytest.raises(StepFailed, match="not ready"):  # and lists its pods to say why
        stuck.wait_ready("v-stuck", artifact, timeout_s=0.2)
    sentiment = REPO / "truss_models" / "sentiment"
    preflight_capacity(env, "sentiment", sentiment)  # nodes, pods of every namespace
    preflight_secrets(env, read_truss(sentiment).config)  # the admin Secret
    assert env.secrets.values() == {"hf_access_token": KUBE_SECRET_VALUE}
    env.cluster.version_footprint(version.id)  # pods of the namespace by label
    serving.delete(version)  # retire: Deployment and Service
    submit_a_job_that_fails(env, kube_api)


def submit_a_job_that_fails(env: Environment, kube_api: KubeApiStandIn) -> None:
    """submit: list the Jobs of (env, model), create one, read it back; follow it to its
    failure: the Job, its pod, the pod's log."""
    import os
    import sys

    from zoo_ops.commands.submit import create, follow
    from zoo_ops.domain.job_manifest import job_labels, job_manifest
    from zoo_ops.testing.job_runner import JobRunner

    kube_api.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "zoo-ops-config", "namespace": BASETEN_NAMESPACE},
                "data": {"zoo_ops.toml": ""},
            }
        ]
    )
    manifest = job_manifest(
        name="zoo-ops-rbac-iris-01-abcdef",
        namespace=BASETEN_NAMESPACE,
        labels=job_labels(env.name, "iris", "01_copy"),
        image="registry.example.com/zoo-ops:test",
        command=[sys.executable, "-c", "print('boom'); raise SystemExit(1)"],
        service_account="zoo-ops",
        config_map="zoo-ops-config",
        config_env_var="ZOO_OPS_CONFIG",
        config_file_name="zoo_ops.toml",
        secrets=(),
        active_deadline_s=60,
    )
    job = create(env, manifest)
    runner = JobRunner(kube_api, Path(os.environ["KUBECONFIG"]))
    batch = runner.batch
    runner.run(batch.read_namespaced_job(job.name, job.namespace))
    done = follow(env, job, poll_s=0.05)
    assert (done.exit_code, done.log_tail.strip()) == (1, "boom")


def test_every_call_of_the_end_to_end_flow_is_allowed_and_every_rule_is_used(
    k8s_env: Environment, kube_api: KubeApiStandIn, kubectl: Kubectl
) -> None:
    run_every_adapter(k8s_env, kubectl, kube_api)
    calls = zoo_ops_calls(kube_api)
    assert calls, "zoo-ops made no call with its user agent"
    assert any(r.user_agent.startswith("kubectl/") for r in kube_api.request_log)
    rbac = load_rbac(RBAC)
    denied = sorted({r for r in calls if not rbac_allows(rbac, r)})
    assert denied == []
    role_rules, cluster_rules, namespace = rbac
    assert namespace == BASETEN_NAMESPACE
    unused = [
        (rule["resources"], verb)
        for rule in role_rules + cluster_rules
        for verb in rule["verbs"]
        if not any(
            rule_allows({**rule, "verbs": [verb]}, r.verb, r.api_group, r.resource, r.name)
            for r in calls
        )
    ]
    assert unused == [], "granted but never used by zoo-ops"


def request(
    verb: str, resource: str, namespace: str = BASETEN_NAMESPACE, name: str = ""
) -> KubeRequest:
    group = "apps" if resource.startswith("deployments") else ""
    prefix = f"/apis/{group}/v1" if group else "/api/v1"
    path = f"{prefix}/namespaces/{namespace}/{resource}" if namespace else f"{prefix}/{resource}"
    return KubeRequest(verb, path + (f"/{name}" if name else ""), resource, namespace, name)


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        (request("get", "configmaps", name=SETTINGS_CONFIGMAP), True),
        (request("update", "configmaps", name=SETTINGS_CONFIGMAP), True),
        (request("get", "configmaps", name="another-configmap"), False),
        (request("list", "configmaps"), False),
        (request("patch", "configmaps", name=SETTINGS_CONFIGMAP), False),
        (request("delete", "configmaps", name=SETTINGS_CONFIGMAP), False),
        (request("get", "secrets", name=SECRET_NAME), True),
        (request("get", "secrets", name="someone-elses"), False),
        (request("list", "secrets"), False),
        (request("update", "secrets", name=SECRET_NAME), False),
        (request("create", "deployments"), True),
        (request("delete", "deployments", name="zoo-x"), True),
        (request("patch", "deployments", name="zoo-x"), False),
        (request("watch", "deployments"), True),
        (request("watch", "deployments", namespace="kube-system"), False),
        (request("watch", "configmaps"), False),
        (request("watch", "secrets"), False),
        (request("watch", "pods"), False),
        (request("deletecollection", "deployments"), False),
        (request("get", "deployments", namespace="kube-system", name="coredns"), False),
        (request("update", "deployments/status", name="zoo-x"), False),
        (request("list", "pods", namespace=""), True),
        (request("delete", "pods", name="p"), False),
        (request("list", "nodes", namespace=""), True),
        (request("update", "nodes", namespace="", name="n"), False),
        (request("create", "secrets"), False),
    ],
)
def test_the_role_grants_only_what_zoo_ops_uses(call: KubeRequest, allowed: bool) -> None:
    assert rbac_allows(load_rbac(RBAC), call) is allowed


def test_the_manifest_is_one_service_account_bound_to_its_roles() -> None:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    for d in docs:
        if d["kind"] in ("Role", "ClusterRole"):
            for rule in d["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert not {"patch", "deletecollection", "escalate", "bind"} & set(rule["verbs"])
                # watch: only of Deployments (waiting for a rollout), never of Secrets.
                assert "watch" not in rule["verbs"] or rule["resources"] == ["deployments"]
    secrets_rules = [
        r for d in docs if d["kind"] == "Role" for r in d["rules"] if "secrets" in r["resources"]
    ]
    assert secrets_rules == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [SECRET_NAME],
            "verbs": ["get"],
        }
    ]


def test_the_session_collector_sees_zoo_ops_calls_only(
    k8s_env: Environment, kube_api: KubeApiStandIn, kubectl: Kubectl
) -> None:
    from zoo_ops.testing.kube_fixtures import zoo_ops_requests

    before = len(zoo_ops_requests())
    kubectl("-n", BASETEN_NAMESPACE, "get", "deployments", check=True)
    assert len(zoo_ops_requests()) == before
    k8s_env.settings.read()
    new = zoo_ops_requests()[before:]
    assert [(r.verb, r.resource, r.name) for r in new] == [
        ("get", "configmaps", SETTINGS_CONFIGMAP)
    ]


# --- the secret scan (zoo_ops.testing.secret_scan): the other security proof of issue 9 -----


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory OUTSIDE the session's base temp: these tests plant secrets on purpose,
    and the session's own scan must not find them."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zoo-ops-scan-") as name:
        yield Path(name)


def test_the_secret_scan_finds_raw_base64_sqlite_and_parquet_leaks(scratch: Path) -> None:
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq

    from zoo_ops.testing.secret_scan import scan_tree
    from zoo_ops.testing.test_secrets import (
        CREDENTIAL_FILE_PATTERNS,
        RUNBOOK_DATABASE_PASSWORD,
        SECRET_STORE_TABLES,
        all_secret_values,
    )

    secret = KUBE_SECRET_VALUE
    (scratch / "nb").mkdir()
    (scratch / "nb" / "run.ipynb").write_text(f'{{"text": "url {RUNBOOK_DATABASE_PASSWORD}"}}')
    (scratch / "log.txt").write_text(base64.b64encode(secret.encode()).decode())
    (scratch / "kubeconfig").write_text(f"token: {secret}")  # a credential file by design
    (scratch / "ctx.yaml").write_text(  # a kubeconfig by content, whatever its name
        f"apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user: {{token: {secret}}}\n"
    )
    pq.write_table(pa.table({"x": [secret] * 1000}), scratch / "a.parquet")
    db = sqlite3.connect(scratch / "platform.db")
    db.execute("CREATE TABLE secrets_secret (name TEXT, value TEXT)")
    db.execute("CREATE TABLE zoo_ops_run (error TEXT)")
    db.execute("INSERT INTO secrets_secret VALUES ('hf', ?)", (secret,))  # the store: fine
    db.commit()
    clean = scratch / "clean.db"
    db.execute("VACUUM INTO ?", (str(clean),))
    db.execute("INSERT INTO zoo_ops_run VALUES (?)", (f"failed with {secret}",))  # a leak
    db.commit()
    db.close()

    leaks = scan_tree(
        scratch,
        all_secret_values(),
        credential_patterns=CREDENTIAL_FILE_PATTERNS,
        secret_store_tables=SECRET_STORE_TABLES,
    )
    found = sorted((leak.path.name, leak.value[:4], leak.where) for leak in leaks)
    assert found == [
        ("a.parquet", "hf_s", "bytes"),  # plain pages; compressed ones are decoded
        ("log.txt", "hf_s", "base64"),
        ("platform.db", "hf_s", "table zoo_ops_run"),
        ("run.ipynb", "pg-s", "bytes"),
    ]
    assert leaks[0].line(scratch).startswith("secret leak: ")


def test_the_secret_scan_fails_the_session_with_one_line_per_leak(scratch: Path) -> None:
    import subprocess
    import sys

    from zoo_ops.testing.test_secrets import DEMO_DATABASE_PASSWORD

    (scratch / "test_leaky.py").write_text(
        f"""
def test_writes_a_password(tmp_path):
    (tmp_path / "report.html").write_text("postgresql://u:{DEMO_DATABASE_PASSWORD}@h/db")

def test_clean(tmp_path):
    (tmp_path / "report.html").write_text("postgresql://u:***@h/db")
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "zoo_ops.testing.secret_scan", "-p", "no:cacheprovider",
         "--basetemp", str(scratch / "base"), "-q", "test_leaky.py"],
        cwd=scratch, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    leak_lines = [line for line in result.stdout.splitlines() if line.startswith("secret leak:")]
    assert result.returncode == 1, result.stdout
    assert "2 passed" in result.stdout
    assert len(leak_lines) == 1 and "report.html: pw-d... (bytes)" in leak_lines[0], leak_lines
    assert DEMO_DATABASE_PASSWORD not in result.stdout
