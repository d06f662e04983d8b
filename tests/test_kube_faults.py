"""Faults of a real apiserver during every Kubernetes call of 01_copy, 03_migrate and
05_retire, on an environment with ``settings = "kubernetes"`` and ``serving =
"kubernetes"``, over HTTPS with a bearer token (the stand-in's fault plan).

* transient: the first attempt of every distinct call a step makes (each (verb, path))
  answers 429 with Retry-After, resets the connection before or after doing the request,
  or stalls past the read timeout; 503 comes as a burst (the first :data:`BURST` attempts
  of every call, an apiserver restarting): the step retries and succeeds, within its
  documented timeouts, and leaves exactly what a clean run leaves (one Deployment and
  Service per version, the whitelist as asked);
* persistent: every distinct call a step makes, in turn, keeps failing (the kinds
  rotating over the calls): the step (the operator's real command, ``zoo-ops run``) ends
  with exit 1 and one line on stderr naming the call and the last cause, and nothing
  half-written; then the operator reruns it (deleting a version the failure left FAILED,
  which the automation does not redeploy), and the next call not yet faulted keeps
  failing, until a rerun makes no call that was not faulted and succeeds. A call is its
  verb and path with the object's name as ``{name}`` (:func:`call_of`); a watch is not
  faulted persistently (a broken watch makes the wait poll: documented, no error).

The calls are not listed here: each test checks that every distinct call the step made
(from the stand-in's request log) got its fault, so a call added later is faulted too.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support.runs import CLI, MIGRATE_ALONE

from zoo_ops.adapters.kube_client import user_agent
from zoo_ops.adapters.platform import schema as s
from zoo_ops.environment import Environment
from zoo_ops.execute import execute_runbook
from zoo_ops.testing.kube_api import FAULT_KINDS, Fault, KubeApiStandIn, KubeRequest
from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE, SETTINGS_CONFIGMAP

pytestmark = pytest.mark.long  # minutes each: conftest spreads them over the run

READ_TIMEOUT_S = 1.0
CALL_DEADLINE_S = 5.0
# Consecutive 503s on the same call: backoff 0.5 + 1 + 2 s (plus jitter) before the 4th
# attempt, within CALL_DEADLINE_S.
BURST = 3
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("01_copy", {}),
    # 02_verify cannot predict here (no model server behind the stand-in's Services): 03
    # passes the step-order gate the one recorded way.
    ("03_migrate", dict(MIGRATE_ALONE)),
    ("05_retire", {"min_age_days": 0}),
]


@pytest.fixture
def env(k8s_env: Environment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Environment]:
    """The Kubernetes environment with short client timeouts (the kernel inherits them)."""
    monkeypatch.setenv("ZOO_OPS_KUBE_READ_TIMEOUT_S", str(READ_TIMEOUT_S))
    monkeypatch.setenv("ZOO_OPS_KUBE_CALL_DEADLINE_S", str(CALL_DEADLINE_S))
    yield k8s_env


def calls_since(api: KubeApiStandIn, start: int) -> set[tuple[str, str]]:
    return {(r.verb, r.path) for r in api.request_log[start:] if r.user_agent == user_agent()}


def state(env: Environment, api: KubeApiStandIn) -> dict[str, Any]:
    """What a step may change: the whitelist ConfigMap, Deployments, Services, and the
    platform's version rows (the zoo models' and the users' own)."""
    cm = api.get_object("ConfigMap", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP) or {}
    with env.platform.engine.connect() as conn:
        versions = sorted(tuple(r) for r in conn.execute(s.oracle_versions.select()).all())
    return {
        "settings": cm.get("data"),
        "deployments": sorted(
            d["metadata"]["name"] for d in api.list_objects("Deployment", BASETEN_NAMESPACE)
        ),
        "services": sorted(
            d["metadata"]["name"]
            for d in api.list_objects("Service", BASETEN_NAMESPACE)
            if d["metadata"]["name"].startswith("zoo-")
        ),
        "versions": versions,
    }


def run_clean(step: str, params: dict[str, Any]) -> None:
    result = execute_runbook(step, model="iris", env="k8s", parameters=params)
    assert result.exit_code == 0, result.error


def zoo_ops_run(step: str, params: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, "run", step, "-m", "iris", "-e", "k8s"]
    for name, value in params.items():
        argv += ["-p", name, str(value)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_call_of_every_step_survives_a_transient_fault(
    env: Environment, kube_api: KubeApiStandIn, kind: str
) -> None:
    deployments: dict[str, list[str]] = {}
    for step, params in STEPS:
        kube_api.faults.clear()
        kube_api.faults.served.clear()
        times = BURST if kind == "503" else 1
        fault = kube_api.fault(kind, per_call=True, times=times, retry_after_s=1, stall_s=2.5)
        start = len(kube_api.request_log)
        started = time.monotonic()
        result = execute_runbook(step, model="iris", env="k8s", parameters=params)
        elapsed = time.monotonic() - started
        assert result.exit_code == 0, f"{step} with {kind}: {result.error}"
        made = calls_since(kube_api, start)
        faulted = {(f.request.verb, f.request.path) for f in kube_api.faults.served}
        assert made and faulted == made, f"{step}: calls not faulted: {made - faulted}"
        if kind == "503":  # a burst: every call got BURST 503s in a row, then succeeded
            # (a broken watch is not retried: the wait polls instead, a call of its own)
            counts = Counter(
                (f.request.verb, f.request.path)
                for f in kube_api.faults.served
                if f.request.verb != "watch"
            )
            assert counts and set(counts.values()) == {BURST}, counts
        # Each call retried within its deadline: the step is far from its own timeouts.
        assert elapsed < 120, elapsed
        assert fault.kind == kind
        after = state(env, kube_api)
        # Exactly what a clean run leaves: no duplicate Deployment, Service or version.
        assert after["deployments"] == after["services"]
        live = [v for v in after["versions"] if v[0] and f"zoo-{v[0]}" in after["deployments"]]
        assert len(live) == len(after["deployments"]), (step, after)
        deployments[step] = after["deployments"]
    # 01 deployed the copy, 03 the new version beside it, 05 retired the copy.
    (copy,) = deployments["01_copy"]
    (new,) = set(deployments["03_migrate"]) - {copy}
    assert deployments["05_retire"] == [new]


def call_of(request: KubeRequest) -> tuple[str, str]:
    """A call as the persistent test counts it: the verb and the path, the object's name
    as ``{name}`` (a Deployment's or Service's holds a version id, new in every run)."""
    parts = request.path.split("/")
    if request.name and request.name in parts:
        at = len(parts) - 1 - parts[::-1].index(request.name)
        parts[at] = "{name}"
    return request.verb, "/".join(parts)


@dataclass
class KeepsFailing(Fault):
    """A fault that persists on one call: the first call zoo-ops makes in the step that is
    not in ``faulted``. A watch is left alone: one that keeps failing is no error, the
    wait polls instead (:func:`zoo_ops.adapters.polling.wait_watching`), and its polls
    are calls of their own."""

    faulted: frozenset[tuple[str, str]] = frozenset()
    target: tuple[str, str] | None = None

    def matches(self, request: KubeRequest) -> bool:
        if request.verb == "watch" or not request.user_agent.startswith(self.agent):
            return False
        call = call_of(request)
        if self.target is None and call not in self.faulted:
            self.target = call
        return call == self.target


# Reruns of a step, each with one more call failing, before the clean one; more is a loop.
MAX_RUNS = 40
CAUSES = {
    "429": "failed with HTTP 429",
    "503": "failed with HTTP 503",
    "reset": "cannot ",
    "reset-after": "cannot ",
    "stall": "cannot ",
}


@pytest.mark.parametrize("step", [name for name, _ in STEPS])
def test_every_call_that_keeps_failing_ends_the_step_in_one_line(
    env: Environment, kube_api: KubeApiStandIn, step: str
) -> None:
    index = [name for name, _ in STEPS].index(step)
    for before_step, params in STEPS[:index]:
        run_clean(before_step, params)
    faulted: dict[tuple[str, str], str] = {}  # call -> the kind that kept failing it
    for turn in range(MAX_RUNS):
        kube_api.faults.clear()
        kube_api.faults.served.clear()
        # The kinds rotate over the calls (shifted per step: each kind on different calls).
        kind = FAULT_KINDS[(turn + index) % len(FAULT_KINDS)]
        fault = KeepsFailing(
            kind, times=None, retry_after_s=1, stall_s=2.5, faulted=frozenset(faulted)
        )
        kube_api.faults.add(fault)
        before = state(env, kube_api)
        start = len(kube_api.request_log)
        started = time.monotonic()
        result = zoo_ops_run(step, dict(STEPS[index][1]))
        elapsed = time.monotonic() - started
        if fault.target is None:
            # Every call this rerun made has kept failing once: it succeeds, cleanly.
            assert result.returncode == 0, (step, result.stdout, result.stderr)
            made = {
                call_of(r) for r in kube_api.request_log[start:] if r.user_agent == user_agent()
            }
            assert made and {c for c in made if c[0] != "watch"} <= set(faulted), made
            after = state(env, kube_api)
            assert after["deployments"] == after["services"], after
            break
        faulted[fault.target] = kind
        what = f"{step}: {kind} on {fault.target}"
        assert result.returncode == 1, (what, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (what, lines)
        line = lines[0]
        served = kube_api.faults.served
        request = served[0].request
        # The line names the call (the object's kind and name) and the last cause.
        assert request.resource.split("/")[0].removesuffix("s") in line.lower(), (what, line)
        assert not request.name or request.name in line, (what, line)
        assert CAUSES[kind] in line, (what, line)
        assert str(kube_api.token) not in result.stdout + result.stderr
        assert len(served) >= 2, f"{what}: the failing call was not retried"
        assert f"after {len(served)} attempts in" in line, (what, line)
        # Retried within the call's deadline (one call: its attempts span at most that).
        assert served[-1].at - served[0].at <= CALL_DEADLINE_S, (what, [f.at for f in served])
        assert elapsed < 100, (what, elapsed)
        after = state(env, kube_api)
        verb, path = fault.target
        assert_nothing_half_written(step, verb, path, before, after)
        # A FAILED version is not deployed again until it is deleted (services.automation):
        # the operator deletes it before rerunning.
        for row in after["versions"]:
            if row[4] == s.FAILED and row not in before["versions"]:
                env.platform.set_version_status(row[0], s.DELETED)
    else:
        pytest.fail(f"{step}: still a call not faulted after {MAX_RUNS} runs: {faulted}")
    # The kinds rotated: every kind kept failing a call of this step (one kind a call, so
    # with fewer calls than kinds, as many kinds as calls).
    uses = Counter(faulted.values())
    assert len(uses) == min(len(faulted), len(FAULT_KINDS)), (step, faulted)


def assert_nothing_half_written(
    step: str, verb: str, path: str, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """The ConfigMap unchanged or fully changed; no Deployment without its Service; a new
    version row is either FAILED with nothing left in the cluster, or has both."""
    assert after["deployments"] == after["services"] or (
        # a delete that failed half-way is not retried by the step: both still there
        step == "05_retire" and set(after["deployments"]) <= set(before["deployments"])
    ), after
    before_rows = {row[0]: row for row in before["versions"]}
    for row in after["versions"]:
        deployed = f"zoo-{row[0]}" in after["deployments"]
        if row[0] not in before_rows:  # a version the step created
            assert deployed is (row[4] != "FAILED"), (row, after)
        elif row[4] == "DELETED" != before_rows[row[0]][4]:  # a version the step retired
            assert not deployed, ("marked DELETED while its Deployment is left", row, after)
    if verb == "update":
        assert after == before
