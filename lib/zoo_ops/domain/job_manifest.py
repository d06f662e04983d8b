"""The Kubernetes Job `zoo-ops submit` creates: one runbook run, as `zoo-ops run` in a pod.

Algorithm (pure; the caller passes every name):

* the Job's name is ``zoo-ops-<env>-<model>-<step number>-<suffix>``, lowered, ``_`` as
  ``-``, cut to 63 characters with the suffix kept (a DNS-1123 label);
* labels say what runs (``zoo-ops/env``, ``zoo-ops/model``, ``zoo-ops/step``): they are how
  ``submit`` finds a Job of the same (env, model) still active;
* the container's command is ``zoo-ops run STEP -m MODEL -e ENV [-p NAME VALUE]...``, the
  same command an operator types; the operator who submitted is passed as ``-p operator``;
* configuration by reference only: the ConfigMap holding ``zoo_ops.toml`` is mounted
  read-only and named by ``ZOO_OPS_CONFIG``; every Secret named in ``submit.secrets``
  becomes environment through ``envFrom``; nothing of either is copied into the manifest;
* ``restartPolicy: Never`` and ``backoffLimit: 0``: a migration is never started a second
  time behind the operator's back (a rerun is the operator's decision, and resumes);
* the run's result (run id, outcome, exit code, notebook) is the container's termination
  message, so ``submit`` reports it without reading the database;
* a writable working folder (``emptyDir``) is the pod's working directory; the rest of
  the container runs as a non-root user without privilege escalation.
"""

from __future__ import annotations

import re
from typing import Any

CONTAINER_NAME = "zoo-ops"
CONFIG_MOUNT_PATH = "/etc/zoo-ops"
WORK_MOUNT_PATH = "/var/lib/zoo-ops"
TERMINATION_LOG_PATH = "/dev/termination-log"
TERMINATION_LOG_ENV = "ZOO_OPS_TERMINATION_LOG"
LABEL_PREFIX = "zoo-ops/"
APP_LABEL = ("app.kubernetes.io/name", "zoo-ops")
FINISHED_TTL_S = 7 * 24 * 3600  # a finished Job (and its pod's log) is kept a week

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def dns_name_problem(name: str) -> str | None:
    """Why ``name`` is not a DNS-1123 subdomain (ConfigMap, Secret, ServiceAccount,
    Namespace names), or None."""
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        return (
            "is not a Kubernetes object name: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    return None


def job_name(env: str, model: str, step: str, suffix: str) -> str:
    """``zoo-ops-ENV-MODEL-NN-SUFFIX`` as a DNS-1123 label (see the module doc)."""
    tail = f"-{step[:2]}-{suffix}".lower()
    head = f"zoo-ops-{env}-{model}".lower().replace("_", "-")
    name = head[: 63 - len(tail)].rstrip("-") + tail
    assert _LABEL.fullmatch(name), name
    return name


def job_labels(env: str, model: str, step: str) -> dict[str, str]:
    """What a Job runs, as labels (names obey zoo-ops's name rule: valid label values)."""
    return {
        APP_LABEL[0]: APP_LABEL[1],
        f"{LABEL_PREFIX}env": env,
        f"{LABEL_PREFIX}model": model,
        f"{LABEL_PREFIX}step": step,
    }


def same_target_selector(env: str, model: str) -> str:
    """The label selector of every Job of (env, model)."""
    return f"{LABEL_PREFIX}env={env},{LABEL_PREFIX}model={model}"


def run_command(step: str, model: str, env: str, parameters: dict[str, str]) -> list[str]:
    """``zoo-ops run STEP -m MODEL -e ENV -p NAME VALUE ...`` (parameters in name order)."""
    command = ["zoo-ops", "run", step, "-m", model, "-e", env]
    for name in sorted(parameters):
        command += ["-p", name, parameters[name]]
    return command


def job_manifest(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    image: str,
    command: list[str],
    service_account: str,
    config_map: str,
    config_env_var: str,
    config_file_name: str,
    secrets: tuple[str, ...],
    active_deadline_s: int,
) -> dict[str, Any]:
    """The batch/v1 Job (see the module doc)."""
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": command,
        "workingDir": WORK_MOUNT_PATH,
        "env": [
            {"name": config_env_var, "value": f"{CONFIG_MOUNT_PATH}/{config_file_name}"},
            {"name": TERMINATION_LOG_ENV, "value": TERMINATION_LOG_PATH},
        ],
        "envFrom": [{"secretRef": {"name": secret}} for secret in secrets],
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT_PATH, "readOnly": True},
            {"name": "work", "mountPath": WORK_MOUNT_PATH},
        ],
        "terminationMessagePath": TERMINATION_LOG_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": active_deadline_s,
            "ttlSecondsAfterFinished": FINISHED_TTL_S,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "serviceAccountName": service_account,
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_map}},
                        {"name": "work", "emptyDir": {}},
                    ],
                },
            },
        },
    }
