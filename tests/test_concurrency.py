"""Concurrency: two migrations of one model at once; reconcile racing reconcile.

Each racer is its own process, started together from a start line (every child imports
everything, says ready, and waits for one file to appear), so the two really overlap.

The third race of issue 9 -- 50 whitelist writers at once through zoo-ops and
``kubectl`` with no update lost -- is ``tests/test_settings_concurrency.py``
(``test_fifty_concurrent_updates_all_land``, on the local file and on the Kubernetes
ConfigMap with real kubectl among the writers); it is not repeated here. Reconcile racing
reconcile on local serving is in ``tests/test_automation.py`` (threads and processes);
here it races on the Kubernetes serving adapter, where a second deploy would be a
second Deployment in the cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.migration import Platform, build_platform, poll_until, table_checksum

from zoo_ops.adapters.platform import schema as s
from zoo_ops.environment import Environment
from zoo_ops.migration.plan import DONE
from zoo_ops.services.settings import set_whitelist_entry
from zoo_ops.testing.kube_api import KubeApiStandIn
from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE

ROWS = 5_000

MIGRATE = """
import os, sys, time
from zoo_ops.environment import Environment
from zoo_ops.errors import ZooOpsError
from zoo_ops.migration.engine import forward_migrate
env = Environment.load("local")
env.platform.engine.connect().close()
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
try:
    r = forward_migrate(env, "iris", old_version_id=sys.argv[3], new_version_id=sys.argv[4],
                        batch_size=int(sys.argv[5]), progress=False, lock_wait_s=0.0)
except ZooOpsError as exc:
    print(f"{type(exc).__name__}: {exc}")
    sys.exit(exc.exit_code)
print(f"moved {r.moved_count} {r.migration_id}")
"""

RECONCILE = """
import os, sys, time
from zoo_ops.cli import main
import zoo_ops.services.automation, zoo_ops.adapters.serving.kubernetes, kubernetes.client
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.002)
sys.exit(main(["automation", "-e", "k8s", "reconcile"]))
"""


def racers_alive(procs: list[subprocess.Popen[str]]) -> None:
    assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]


def race(
    script: str, args: list[list[str]], tmp_path: Path
) -> list[subprocess.CompletedProcess[str]]:
    """Start one child per argument list, wait until all are ready, release them together."""
    go = tmp_path / "go"
    procs = []
    readies = []
    for i, extra in enumerate(args):
        ready = tmp_path / f"ready{i}"
        readies.append(ready)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", script, str(ready), str(go), *extra],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(os.environ),
            )
        )
    poll_until(
        lambda: all(r.exists() for r in readies),
        each=lambda: racers_alive(procs),
        timeout_s=60,
        interval_s=0.01,
        message="the racers did not get ready",
    )
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


@pytest.fixture
def platform(local_env: Environment) -> Platform:
    return build_platform(local_env, apps=ROWS)


def test_two_migrations_of_one_model_at_once_exactly_one_proceeds(
    platform: Platform, tmp_path: Path
) -> None:
    p = platform
    before = table_checksum(p.engine)
    # Small batches keep the winner at work for seconds: the two overlap even when the
    # machine is busy enough to hold one racer back for a second after the start.
    racer = [p.old, p.new, "1"]
    results = race(MIGRATE, [racer, racer], tmp_path)

    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [(r.returncode, r.stdout, r.stderr) for r in results]
    (winner,) = [r for r in results if r.returncode == 0]
    (loser,) = [r for r in results if r.returncode == 2]
    assert winner.stdout.startswith(f"moved {ROWS} "), winner.stdout
    lines = loser.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("LockHeld: "), loser.stdout + loser.stderr
    assert "holds the lock" in lines[0]
    # Nothing was changed by the refused one: one record, one journal, every row once.
    with p.engine.connect() as conn:
        records = conn.execute(select(s.migrations)).all()
        journal = conn.execute(select(func.count()).select_from(s.migration_journal)).scalar()
        locks = conn.execute(select(func.count()).select_from(s.locks)).scalar()
    assert len(records) == 1 and records[0].status == DONE and records[0].moved_count == ROWS
    assert winner.stdout.split()[2] == records[0].id
    assert (journal, locks) == (ROWS, 0)
    assert p.env.platform.proxy_counts([p.old, p.new, p.bert]) == {p.old: 0, p.new: ROWS, p.bert: 7}
    assert table_checksum(p.engine) != before  # the winner's rows did move


def test_two_reconciles_on_kubernetes_deploy_once(
    k8s_env: Environment,  # noqa: F811 - the imported fixture
    kube_api: KubeApiStandIn,
    tmp_path: Path,
) -> None:
    set_whitelist_entry(k8s_env, "iris", True)
    results = race(RECONCILE, [[], []], tmp_path)

    assert [r.returncode for r in results] == [0, 0], [(r.stdout, r.stderr) for r in results]
    actions = sorted(
        word
        for r in results
        for word in r.stdout.split()
        if word in ("deployed", "skipped-duplicate")
    )
    assert actions == ["deployed", "skipped-duplicate"], [r.stdout for r in results]
    copy = k8s_env.platform.zoo_model("iris_copy")
    versions = k8s_env.platform.versions_of(copy.id)
    assert len(versions) == 1 and versions[0].status == s.ACTIVE
    deployments = kube_api.list_objects("Deployment", BASETEN_NAMESPACE)
    assert [d["metadata"]["labels"]["zoo-ops/version"] for d in deployments] == [versions[0].id]
    creates = kube_api.requests_for(verb="create", resource="deployments")
    assert len(creates) == 1
