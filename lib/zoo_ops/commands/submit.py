"""`zoo-ops submit STEP -m MODEL -e ENV [-p NAME VALUE]... [--confirm ENV]`: a Job runs it.

The runbook runs where the credentials and the network are -- in the environment's
cluster, as ``zoo-ops run`` inside a Job (:mod:`zoo_ops.domain.job_manifest`) -- and its
executed notebook goes to the environment's trail (on a cluster: ``s3://``).

Order (nothing is created until every check passed):

1. the environment has ``[env.ENV.submit]``; the step and model are valid names; every
   ``-p`` is a parameter of the step with a value of its type (the same conversion
   ``zoo-ops run`` applies: the pod would refuse it, after a Job was made); a protected
   environment needs ``--confirm ENV`` (passed on to the run, which checks it again);
2. no Job of the same (env, model) is still active (its labels say so): one at a time,
   and inside the pod the database's lock still applies;
3. create the Job, read it back (the command and labels must be what was sent);
4. follow it until it completes or fails, then read the pod's termination message (the
   run id, outcome, exit code and notebook ``zoo-ops run`` wrote) and, when the run did
   not succeed, the tail of the pod's log. The exit code is the pod's: 0, 1 or 2 like
   ``zoo-ops run``. Ctrl-C stops following, never the Job.
"""

from __future__ import annotations

import getpass
import json
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo_ops.adapters.kube_client import LazyClient, call_api
from zoo_ops.adapters.polling import poll
from zoo_ops.commands.recorded_write import check_confirm
from zoo_ops.config import CONFIG_ENV_VAR, CONFIG_FILE_NAME
from zoo_ops.domain.job_manifest import (
    CONTAINER_NAME,
    job_labels,
    job_manifest,
    job_name,
    run_command,
    same_target_selector,
)
from zoo_ops.domain.names import check_name
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, ConfigError, StepFailed
from zoo_ops.steps.parameters import convert_texts
from zoo_ops.trail import canonical_step

POLL_S = 1.0
LOG_TAIL_LINES = 20
_ON_THE_COMMAND_LINE = ("model", "env")


@dataclass(frozen=True)
class SubmittedJob:
    """A Job as created and read back."""

    name: str
    namespace: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class JobOutcome:
    """How a submitted Job ended."""

    job: str
    namespace: str
    exit_code: int
    outcome: str
    run_id: str | None
    notebook: str | None
    error: str | None
    log_tail: str


def prepare(
    env: Environment,
    step: str,
    model: str,
    parameters: dict[str, str],
    *,
    confirm: str = "",
    operator: str = "",
) -> dict[str, Any]:
    """Every check of step 1 (module doc); the Job's manifest, not yet created."""
    submit = env.config.submit
    if submit is None:
        raise ConfigError(
            f"environment {env.name!r} has no [env.{env.name}.submit] table (image, "
            "config_map, ...); add it to zoo_ops.toml to run runbooks as Jobs"
        )
    step = canonical_step(step)
    check_name("model", model)
    for name in _ON_THE_COMMAND_LINE:
        if name in parameters:
            raise BadInput(f"pass {name} with its own option, not -p {name}")
    converted = convert_texts(step, dict(parameters))
    check_confirm(env, confirm, dry_run=bool(converted.get("dry_run")), command=f"submit {step}")
    texts = dict(parameters)
    if confirm:
        texts["confirm"] = confirm
    texts.setdefault("operator", operator or getpass.getuser())
    labels = job_labels(env.name, model, step)
    return job_manifest(
        name=job_name(env.name, model, step, secrets.token_hex(3)),
        namespace=submit.namespace or env.config.namespace,
        labels=labels,
        image=submit.image,
        command=run_command(step, model, env.name, texts),
        service_account=submit.service_account,
        config_map=submit.config_map,
        config_env_var=CONFIG_ENV_VAR,
        config_file_name=CONFIG_FILE_NAME,
        secrets=submit.secrets,
        active_deadline_s=submit.active_deadline_s,
    )


def finished(job: Any) -> str | None:
    """``Complete`` or ``Failed`` when the Job has finished (its condition), else None."""
    for condition in (job.status and job.status.conditions) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def create(env: Environment, manifest: dict[str, Any]) -> SubmittedJob:
    """Steps 2 and 3 (module doc): refuse a second active Job of (env, model), create, read back."""
    batch = LazyClient(env.config.kube_context).api("BatchV1Api")
    meta = manifest["metadata"]
    namespace, labels = meta["namespace"], meta["labels"]
    env_name, model = labels["zoo-ops/env"], labels["zoo-ops/model"]
    jobs = call_api(
        f"Jobs in namespace {namespace}",
        "list",
        batch.list_namespaced_job,
        namespace,
        label_selector=same_target_selector(env_name, model),
    )
    active = sorted(j.metadata.name for j in jobs.items if finished(j) is None)
    if active:
        raise BadInput(
            f"Job {active[0]} for {model} in {env_name} is still running; one Job per "
            f"model and environment at a time: follow it (kubectl -n {namespace} get job "
            f"{active[0]}) or delete it first; nothing created"
        )
    where = f"Job {namespace}/{meta['name']}"
    call_api(where, "create", batch.create_namespaced_job, namespace, manifest)
    back = call_api(where, "read", batch.read_namespaced_job, meta["name"], namespace)
    container = back.spec.template.spec.containers[0]
    wanted = manifest["spec"]["template"]["spec"]["containers"][0]
    if container.command != wanted["command"] or back.metadata.labels != labels:
        raise StepFailed(f"{where} read back with another command or labels; delete it")
    return SubmittedJob(meta["name"], namespace, manifest)


def follow(
    env: Environment,
    job: SubmittedJob,
    *,
    poll_s: float = POLL_S,
    on_wait: Callable[[str], None] = lambda line: None,
) -> JobOutcome:
    """Step 4 (module doc): wait for the Job to finish; its pod's result and log tail."""
    client = LazyClient(env.config.kube_context)
    batch, core = client.api("BatchV1Api"), client.api("CoreV1Api")
    where = f"Job {job.namespace}/{job.name}"
    said = ""

    def probe() -> JobOutcome | None:
        current = call_api(where, "read", batch.read_namespaced_job, job.name, job.namespace)
        ended = finished(current)
        pod = _pod_of(core, job)
        phase = (pod.status.phase if pod is not None and pod.status else None) or "Pending"
        if ended is not None:
            return _outcome(core, job, current, pod, ended)
        line = f"{where}: pod {pod.metadata.name if pod else '(not yet)'} {phase}"
        nonlocal said
        if line != said:
            on_wait(line)
            said = line
        return None

    # No deadline: the Job's own activeDeadlineSeconds ends it; every poll_s, not backing off.
    outcome = poll(probe, timeout_s=math.inf, first_s=poll_s, cap_s=poll_s)
    assert outcome is not None  # an endless wait returns only with an answer
    return outcome


def _pod_of(core: Any, job: SubmittedJob) -> Any:
    pods = call_api(
        f"pods of Job {job.namespace}/{job.name}",
        "list",
        core.list_namespaced_pod,
        job.namespace,
        label_selector=f"job-name={job.name}",
    )
    items = sorted(pods.items, key=lambda p: p.metadata.creation_timestamp or 0)
    return items[-1] if items else None


def _outcome(core: Any, job: SubmittedJob, current: Any, pod: Any, ended: str) -> JobOutcome:
    terminated = None
    for status in (pod.status.container_statuses or []) if pod is not None else []:
        if status.name == CONTAINER_NAME and status.state and status.state.terminated:
            terminated = status.state.terminated
    result: dict[str, Any] = {}
    if terminated is not None and terminated.message:
        try:
            parsed = json.loads(terminated.message)
            result = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            result = {}
    if terminated is not None:
        code = int(terminated.exit_code)
    else:
        code = 0 if ended == "Complete" else 1
    log_tail = ""
    if pod is not None and code != 0:
        text = call_api(
            f"log of pod {job.namespace}/{pod.metadata.name}",
            "read",
            core.read_namespaced_pod_log,
            pod.metadata.name,
            job.namespace,
            tail_lines=LOG_TAIL_LINES,
            tolerate=(400, 404),
        )
        log_tail = str(text or "")
    error = None
    if code != 0:
        conditions = (current.status and current.status.conditions) or []
        reasons = [f"{c.reason}: {c.message}" for c in conditions if c.type == "Failed"]
        last = log_tail.strip().splitlines()[-1:] if log_tail.strip() else []
        error = (last or reasons or [f"the Job ended {ended}"])[0]
    return JobOutcome(
        job=job.name,
        namespace=job.namespace,
        exit_code=code,
        outcome=str(result.get("outcome") or ("succeeded" if code == 0 else "failed")),
        run_id=result.get("run_id"),
        notebook=result.get("notebook"),
        error=error,
        log_tail=log_tail,
    )
