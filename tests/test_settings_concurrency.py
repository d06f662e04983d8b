"""50 whitelist updates of 50 different models, started at once, lose nothing (issue 3).

On each store the writers are a mix of threads in this process (some sharing one
Environment, some with their own), separate `zoo-ops whitelist set` processes, and — on
the Kubernetes store — operators using real kubectl. Every writer waits at a start line
so that they all race; afterwards every one of the 50 models must be present.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.settings import CONFIGMAP, NAMESPACE, SEED_DATA, Harness, make_harness

from zoo_ops.domain.whitelist import WHITELIST_KEY, parse_whitelist
from zoo_ops.environment import Environment
from zoo_ops.services.settings import set_whitelist_entry
from zoo_ops.testing.kube_fixtures import Kubectl

MODELS = [f"m{i:02d}" for i in range(50)]

# A separate process: import everything, say ready, wait for the start signal, then run
# the real CLI entry point (as the `zoo-ops` console script does).
PROCESS_WRAPPER = """
import sys, time
from pathlib import Path
import zoo_ops.cli, zoo_ops.cli.output, zoo_ops.environment, zoo_ops.services.settings
if sys.argv[3] == "kubernetes":
    import kubernetes.client, zoo_ops.adapters.settings.kubernetes
else:
    import zoo_ops.adapters.settings.local_file
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.002)
sys.exit(zoo_ops.cli.main(sys.argv[4:]))
"""


def kubectl_set(kubectl: Kubectl, model: str, attempts: int = 200) -> int:
    """What a careful operator does with kubectl: read, edit the whitelist, and patch
    conditionally on the resourceVersion read (a merge patch carrying
    ``metadata.resourceVersion`` is refused with 409 if anyone wrote since); on 409, again.

    A plain ``kubectl patch --type merge`` of the whitelist key would replace the whole
    JSON string computed from a stale read and silently drop a concurrent writer's entry.
    Returns the number of attempts used.
    """
    for attempt in range(1, attempts + 1):
        got = kubectl("-n", NAMESPACE, "get", "configmap", CONFIGMAP, "-o", "json", check=True)
        obj = json.loads(got.stdout)
        whitelist = json.loads(obj["data"].get(WHITELIST_KEY) or "{}")
        whitelist[model] = {"copy": True}
        patch = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "data": {WHITELIST_KEY: json.dumps(whitelist, sort_keys=True)},
        }
        done = kubectl(
            "-n",
            NAMESPACE,
            "patch",
            "configmap",
            CONFIGMAP,
            "--type",
            "merge",
            "-p",
            json.dumps(patch),
        )
        if done.returncode == 0:
            return attempt
        if "the object has been modified" not in done.stderr:
            raise AssertionError(f"kubectl patch failed: {done.stderr.strip()}")
    raise AssertionError(f"kubectl: {model} not written after {attempts} attempts")


def run_race(harness: Harness, tmp_path: Path, kubectl: Kubectl | None) -> list[str]:
    """Start all 50 writers together; return a list of failures (empty: all succeeded)."""
    if kubectl is None:
        threads_n, processes_n = 42, 8
    else:
        threads_n, processes_n = 34, 8
    in_threads = MODELS[:threads_n]
    in_processes = MODELS[threads_n : threads_n + processes_n]
    via_kubectl = MODELS[threads_n + processes_n :]
    assert kubectl is not None or not via_kubectl

    go = tmp_path / "go"
    procs = []
    for model in in_processes:
        ready = tmp_path / f"ready-{model}"
        argv = ["whitelist", "-e", harness.env_name, "set", model, "--copy", "true"]
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        PROCESS_WRAPPER,
                        str(ready),
                        str(go),
                        harness.kind,
                        *argv,
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )

    failures: list[str] = []
    barrier = threading.Barrier(len(in_threads) + len(via_kubectl) + 1)
    shared = Environment.load(harness.env_name)

    def guarded(name: str, fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait(timeout=120)
                fn()
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(f"{name}: {type(exc).__name__}: {exc}")

        return run

    def thread_writer(index: int, model: str) -> Callable[[], object]:
        def write() -> object:
            env = shared if index % 2 == 0 else Environment.load(harness.env_name)
            change = set_whitelist_entry(env, model, True)
            assert change.changed and change.after[model].copy is True
            return change

        return write

    workers = [
        threading.Thread(target=guarded(m, thread_writer(i, m))) for i, m in enumerate(in_threads)
    ]
    if kubectl is not None:
        workers += [
            threading.Thread(target=guarded(m, lambda m=m: kubectl_set(kubectl, m)))
            for m in via_kubectl
        ]
    for worker in workers:
        worker.start()

    deadline = time.monotonic() + 120
    try:
        while not all(ready.exists() for ready, _ in procs):
            dead = [p for _, p in procs if p.poll() is not None]
            assert not dead, f"a writer process died early: {dead[0].communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "writer processes did not get ready in 120 s"
            time.sleep(0.01)
    except BaseException:
        barrier.abort()  # release the waiting threads now, not at their timeout
        for _, proc in procs:
            proc.kill()
        raise
    go.touch()
    barrier.wait(timeout=120)  # threads, kubectl operators and processes all go now

    for worker in workers:
        worker.join(timeout=300)
    for (_, proc), model in zip(procs, in_processes, strict=True):
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failures.append(f"process {model}: exit {proc.returncode}: {err.strip()}")
    shared.dispose()
    return failures


@pytest.mark.parametrize("store", ["local", "kubernetes"])
def test_fifty_concurrent_updates_all_land(
    store: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = make_harness(store, request, tmp_path, monkeypatch)
    kubectl = request.getfixturevalue("kubectl") if store == "kubernetes" else None
    rv_before = int(harness.resource_version())

    failures = run_race(harness, tmp_path, kubectl)

    assert failures == []
    data = harness.data()
    whitelist = parse_whitelist(data[WHITELIST_KEY])
    assert sorted(whitelist) == sorted([*MODELS, "iris"])
    assert all(whitelist[m].copy for m in MODELS)
    assert {k: v for k, v in data.items() if k != WHITELIST_KEY} == {
        k: v for k, v in SEED_DATA.items() if k != WHITELIST_KEY
    }
    # Every writer wrote exactly once more than before (no write was lost or doubled) —
    # on the local file each write bumps the version by one.
    if store == "local":
        assert int(harness.resource_version()) == rv_before + len(MODELS)
