"""`zoo-ops submit` (issue 16): a runbook as a Kubernetes Job, followed to its end.

The production path of :mod:`support.e2e` (PostgreSQL platform databases, TLS stand-ins
with tokens, the platform's automation) with the trail in a real S3 server
(:mod:`support.s3`). The cluster's part is played by the stand-in and
:class:`~zoo_ops.testing.job_runner.JobRunner`, which runs a Job's container as a local
process with exactly the manifest's command and environment (ConfigMap and Secret
resolved from the stand-in). In a cluster the pod reaches the API with its
ServiceAccount; here the Secret also carries ``KUBECONFIG`` (the stand-in's), the one
credential a local process needs in its place.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
from support.e2e import (
    CLI,
    DATABASE_PASSWORD,
    ProductionPath,
    environment_table,
    production_path,  # noqa: F401 - the fixture `production`
)
from support.s3 import S3, SECRET_KEY, s3_server  # noqa: F401 - the fixture `s3`

from zoo_ops.domain.job_manifest import job_labels, job_manifest, job_name, run_command
from zoo_ops.domain.whitelist import WHITELIST_KEY
from zoo_ops.testing.job_runner import JobRunner
from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE, SETTINGS_CONFIGMAP

TRAIL = "s3://zoo-trail/executed"
IMAGE = "registry.example.com/zoo-ops:0.4.0"
SUPPORTED = ("1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0")
SUBMIT_TABLE = f"""
[env.{{env}}.submit]
image = "{IMAGE}"
namespace = "{BASETEN_NAMESPACE}"
config_map = "zoo-ops-config"
secrets = ["zoo-ops-credentials"]
"""


def sample_manifest() -> dict:
    step, model, env = "03_migrate", "iris_copy", "staging"
    return job_manifest(
        name=job_name(env, model, step, "a1b2c3"),
        namespace=BASETEN_NAMESPACE,
        labels=job_labels(env, model, step),
        image=IMAGE,
        command=run_command(step, model, env, {"batch_size": "500", "operator": "alice"}),
        service_account="zoo-ops",
        config_map="zoo-ops-config",
        config_env_var="ZOO_OPS_CONFIG",
        config_file_name="zoo_ops.toml",
        secrets=("zoo-ops-db", "zoo-ops-aws"),
        active_deadline_s=3600,
    )


@pytest.mark.parametrize("version", SUPPORTED)
def test_the_job_manifest_is_valid_for_every_supported_cluster_version(version: str) -> None:
    manifest = sample_manifest()
    kubernetes_validate.validate(manifest, version, strict=True)
    spec = manifest["spec"]
    assert (spec["backoffLimit"], spec["template"]["spec"]["restartPolicy"]) == (0, "Never")
    assert manifest["metadata"]["name"] == "zoo-ops-staging-iris-copy-03-a1b2c3"
    # Configuration and credentials by reference only.
    container = spec["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [
        {"secretRef": {"name": "zoo-ops-db"}},
        {"secretRef": {"name": "zoo-ops-aws"}},
    ]
    assert {e["name"] for e in container["env"]} == {"ZOO_OPS_CONFIG", "ZOO_OPS_TERMINATION_LOG"}


def test_a_long_name_is_cut_to_a_dns_label_keeping_its_suffix() -> None:
    name = job_name("staging", "m" * 63, "04_revert", "ffffff")
    assert len(name) == 63 and name.endswith("-04-ffffff")


class Operator:
    def __init__(self, p: ProductionPath, s3: S3) -> None:
        self.root = p.root / "alice"
        self.root.mkdir()
        email = p.staging.db.test_user_email
        config = (
            environment_table("staging", self.root, p.server)
            + SUBMIT_TABLE.format(env="staging")
            + environment_table("prod", self.root, p.server, extra="protected = true\n")
            + SUBMIT_TABLE.format(env="prod")
        ).replace("{email}", email)
        config = re.sub(r'executed_root = ".*"', f'executed_root = "{TRAIL}"', config)
        (self.root / "zoo_ops.toml").write_text(config)
        self.env = {
            **p.env,
            **s3.env(),
            "ZOO_OPS_CONFIG": str(self.root / "zoo_ops.toml"),
            "HOME": str(self.root),
            "USER": "alice",
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CLI, *args], cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600
        )
        out = done.stdout + done.stderr
        assert DATABASE_PASSWORD not in out and SECRET_KEY not in out, f"{args} printed a secret"
        return done


def in_cluster_configuration(p: ProductionPath, s3: S3) -> None:
    """What the platform team keeps in the staging cluster for submit's Jobs: the
    ConfigMap holding the pod's zoo_ops.toml and the Secret of its credentials."""
    pod_root = p.root / "pod"
    pod_root.mkdir()
    config = environment_table("staging", pod_root, p.server).replace(
        "{email}", p.staging.db.test_user_email
    )
    config = re.sub(r'executed_root = ".*"', f'executed_root = "{TRAIL}"', config)
    credentials = {
        "STAGING_DATABASE_URL": p.staging.url,
        "KUBECONFIG": p.env["KUBECONFIG"],
        **s3.env(),
    }
    p.staging.kube.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "zoo-ops-config", "namespace": BASETEN_NAMESPACE},
                "data": {"zoo_ops.toml": config},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "zoo-ops-credentials", "namespace": BASETEN_NAMESPACE},
                "stringData": credentials,
            },
        ]
    )


def jobs(p: ProductionPath, side: str = "staging") -> list[dict]:
    return p.side(side).kube.list_objects("Job", BASETEN_NAMESPACE)


def end_state(p: ProductionPath, side: str, run_url: str, s3: S3) -> tuple:
    """What a 01_copy leaves: the run row, its notebook in the bucket, the whitelist, the
    copy version ACTIVE with the truss hash."""
    s = p.side(side)
    ((outcome, notebook),) = s.rows(
        "SELECT outcome, notebook_path FROM zoo_ops_run WHERE env = :e AND step = '01_copy'",
        e=side,
    )
    key = run_url.removeprefix("s3://zoo-trail/")
    scraps = json.loads(s3.get(key))["cells"]
    assert scraps, key
    cm = s.kube.get_object("ConfigMap", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP)
    whitelist = json.loads(cm["data"][WHITELIST_KEY])
    copy = s.rows(
        "SELECT v.status, v.truss_hash FROM oracles_oracleversion v JOIN oracles_oracle o "
        "ON o.id = v.oracle_id WHERE o.name = 'iris_copy'"
    )
    return (outcome, notebook == run_url, whitelist.get("iris"), sorted(copy))


@pytest.mark.long
def test_submit_runs_the_step_as_a_job_to_the_same_end_as_run(
    production: ProductionPath, s3: S3
) -> None:
    p = production
    alice = Operator(p, s3)
    assert alice("init", "-e", "staging").returncode == 0
    assert alice("init", "-e", "prod", "--confirm", "prod").returncode == 0
    in_cluster_configuration(p, s3)

    # Bad input is refused before anything is created.
    for bad in (("-p", "no_such", "1"), ("-p", "wait_timeout_s", "soon"), ("-p", "model", "x")):
        done = alice("submit", "01_copy", "-m", "iris", "-e", "staging", *bad)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    protected = alice("submit", "01_copy", "-m", "iris", "-e", "prod")
    assert protected.returncode != 0 and "--confirm prod" in protected.stderr
    assert jobs(p) == [] and jobs(p, "prod") == []

    with JobRunner(p.staging.kube, Path(p.env["KUBECONFIG"])) as runner:
        done = alice("submit", "01_copy", "-m", "iris", "-e", "staging")
        assert done.returncode == 0, (done.stdout, done.stderr, runner.errors)
        url = done.stdout.strip().splitlines()[-1]
        assert url.startswith(f"{TRAIL}/staging/iris/") and url.endswith("-01_copy.ipynb"), url
        (job,) = jobs(p)
        container = job["spec"]["template"]["spec"]["containers"][0]
        (ran,) = runner.ran.values()
        assert ran.args == container["command"]  # the manifest's command, as a process
        assert container["command"][:7] == [
            "zoo-ops",
            "run",
            "01_copy",
            "-m",
            "iris",
            "-e",
            "staging",
        ]
        assert ["-p", "operator", "alice"] == container["command"][7:10]

        # A failing run: 03 before 02 is refused by the gate inside the pod; submit exits
        # with the pod's code and says why.
        failed = alice("submit", "03_migrate", "-m", "iris", "-e", "staging")
        codes = [r.returncode for r in runner.ran.values()]
        assert failed.returncode == max(codes) != 0, failed.stderr
        assert "zoo-ops: error: Job" in failed.stderr and "02_verify" in failed.stderr
        assert not runner.errors, runner.errors

    # The same step through `zoo-ops run` in prod (the gate passes on staging's Job run).
    run = alice("run", "01_copy", "-m", "iris", "-e", "prod", "-p", "confirm", "prod")
    assert run.returncode == 0, run.stderr
    by_job = end_state(p, "staging", url, s3)
    by_run = end_state(p, "prod", run.stdout.strip().splitlines()[-1], s3)
    assert by_job == by_run and by_job[0] == "succeeded" and by_job[1], (by_job, by_run)

    # One Job per (env, model) at a time: a Job still active refuses a second.
    p.staging.kube.seed(
        [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "zoo-ops-staging-iris-02-000000",
                    "namespace": BASETEN_NAMESPACE,
                    "labels": job_labels("staging", "iris", "02_verify"),
                },
                "spec": sample_manifest()["spec"],
            }
        ]
    )
    before = len(jobs(p))
    again = alice("submit", "02_verify", "-m", "iris", "-e", "staging")
    assert again.returncode == 2 and "still running" in again.stderr, again.stderr
    assert len(jobs(p)) == before
