"""Capacity for old + copy + new, per accelerator type, with scalable pools.

The cluster is the Kubernetes stand-in's default: a CPU node and one GPU node with a
single T4. ``resnet50`` (the demo model whose truss declares a T4) has a legacy current
version with no pods the cluster can attribute to it; its recorded artifact
(``legacy.yaml``: ``gpu: T4``) says it needs a T4, counted as not yet placed: the rollout
needs 3 T4s at once (old, copy, new) and there is 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.kube import k8s_config, use_standin

from zoo_ops.commands.demo import build_demo
from zoo_ops.domain.capacity import (
    GPU_RESOURCE,
    Amounts,
    CapacityRequest,
    Footprint,
    NodeRoom,
    check_scalable_pools,
    rollout_pool_rows,
    rollout_refusal,
)
from zoo_ops.environment import Environment
from zoo_ops.errors import CapacityRefused, ConfigError
from zoo_ops.services.preflight import rollout_capacity
from zoo_ops.steps import s01_copy, s03_migrate
from zoo_ops.testing.kube_api import KubeApiStandIn
from zoo_ops.testing.kube_fixtures import BASETEN_NAMESPACE, SETTINGS_CONFIGMAP

REPO = Path(__file__).resolve().parents[1]
T4 = CapacityRequest(Amounts(2000, 8 * 2**30, 1), "T4")


def t4_node(free_gpus: int = 1) -> NodeRoom:
    return NodeRoom(
        "gpu-node-1",
        "T4",
        Amounts(8000, 32 * 2**30, 1),
        Amounts(0, 0, 1 - free_gpus),
        gpu_only=True,
    )


# --- the rule, pure ----------------------------------------------------------------------------


def test_old_copy_and_new_are_counted_at_once_per_accelerator() -> None:
    footprints = [
        Footprint("old", T4, held=False, known=False),
        Footprint("copy", T4, held=False),
        Footprint("new", T4, held=False),
    ]
    (row,) = rollout_pool_rows(T4, footprints, [t4_node()], {})
    assert (row.pool, row.resource, row.needed, row.available) == ("T4", GPU_RESOURCE, 3, 1)
    assert not row.fits
    assert rollout_refusal([row]) == (
        "T4 GPUs: needs 3 (old 1, copy 1, new 1) at once, available 1 (free 1, held 0, "
        "scalable 0); old counted as the truss's request (footprint unknown)"
    )
    (scaled,) = rollout_pool_rows(T4, footprints, [t4_node()], {"T4": 2})
    assert scaled.fits and scaled.available == 3


def test_what_the_rollout_already_runs_counts_as_available() -> None:
    # In 03: the copy's pods hold the only T4 (free 0); old is on another pool (CPU).
    old = CapacityRequest(Amounts(1000, 2**30, 0))
    footprints = [
        Footprint("old", old, held=True),
        Footprint("copy", T4, held=True),
        Footprint("new", T4, held=False),
    ]
    rows = rollout_pool_rows(T4, footprints, [t4_node(free_gpus=0)], {})
    gpu = rows[0]
    assert (gpu.pool, gpu.needed, gpu.free, gpu.held, gpu.available) == ("T4", 2, 0, 1, 1)
    assert not gpu.fits
    assert {r.pool for r in rows[1:]} == {"cpu nodes"}  # the old version's own pool


def test_a_scale_from_zero_pool_is_not_refused() -> None:
    footprints = [Footprint("copy", T4, held=False), Footprint("new", T4, held=False)]
    (row,) = rollout_pool_rows(T4, footprints, [], {"T4": 2})
    assert row.fits and row.free == 0


def test_scalable_pools_must_name_a_truss_accelerator() -> None:
    check_scalable_pools({"T4": 2, "B200": 8}, "zoo_ops.toml [env.k8s.capacity]")
    with pytest.raises(ConfigError) as caught:
        check_scalable_pools({"T5": 1}, "zoo_ops.toml [env.k8s.capacity]")
    assert str(caught.value).startswith(
        'zoo_ops.toml [env.k8s.capacity].scalable_pools "T5": not a GPU type truss knows'
    )
    assert caught.value.exit_code == 2


# --- on the stand-in with the demo zoo ---------------------------------------------------------


@pytest.fixture
def capacity_env(
    kubeconfig: Path,
    kube_api: KubeApiStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    write_config: Callable[[str], Path],
) -> Iterator[Callable[[str], Environment]]:
    """``make(capacity_section)``: the demo zoo (SQLite) with settings, serving, capacity
    and secrets in the stand-in, and ``capacity_section`` appended to ``[env.k8s]``."""
    use_standin(kube_api, kubeconfig, monkeypatch)
    envs: list[Environment] = []

    def make(capacity: str = "") -> Environment:
        write_config(k8s_config(tmp_path, capacity))
        if not (tmp_path / "platform.db").exists():
            builder = Environment.load("build")
            build_demo(builder, apps=2)
            builder.dispose()
        env = Environment.load("k8s")
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.dispose()


def whitelist(kube_api: KubeApiStandIn) -> str:
    configmap = kube_api.get_object("ConfigMap", BASETEN_NAMESPACE, SETTINGS_CONFIGMAP)
    assert configmap is not None
    return str(configmap["data"]["automaticallyDeployedModelZooModelsWhitelist"])


def run_step(step: str, model: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", "run", step, "-m", model, "-e", "k8s"],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )


def test_01_is_refused_naming_t4_with_nothing_changed(
    capacity_env: Callable[[str], Environment], kube_api: KubeApiStandIn
) -> None:
    env = capacity_env("")
    versions = len(env.platform.versions_of(env.platform.zoo_model("resnet50").id))
    before = whitelist(kube_api)

    result = run_step("01_copy", "resnet50")

    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "capacity" in line]
    assert errors, result.stderr
    assert (
        "T4 GPUs: needs 3 (old 1, copy 1, new 1) at once, available 1 (free 1, held 0, "
        "scalable 0); nothing was changed" in errors[-1]
    )
    assert "nothing was changed" in errors[-1]
    assert whitelist(kube_api) == before == "{}"
    assert len(env.platform.versions_of(env.platform.zoo_model("resnet50").id)) == versions
    assert env.platform.find_zoo_model("resnet50_copy") is None
    assert kube_api.list_objects("Deployment", BASETEN_NAMESPACE) == []


def test_01_preflight_shows_old_copy_and_new(capacity_env: Callable[[str], Environment]) -> None:
    env = capacity_env("")
    check = s01_copy.preflight(env, "resnet50")
    row = next(c for c in check.checks if c.check == "capacity")
    assert not row.ok
    assert isinstance(row.error, CapacityRefused) and row.error.exit_code == 2
    frame = check.details["capacity"].set_index("what")
    pool = frame.loc[f"T4 {GPU_RESOURCE} at once (old + copy + new)"]
    assert pool["requested"] == "3 (old 1, copy 1, new 1)"
    assert pool["old_version"] == "1"  # legacy.yaml: gpu: T4
    assert not pool["fits"]


def test_01_passes_with_a_scalable_t4_pool(capacity_env: Callable[[str], Environment]) -> None:
    env = capacity_env("[env.k8s.capacity]\nscalable_pools = { T4 = 2 }")
    report = rollout_capacity(env, "resnet50")
    assert report.fits, report.summary()
    check = s01_copy.preflight(env, "resnet50")
    assert next(c for c in check.checks if c.check == "capacity").ok
    frame = check.details["capacity"].set_index("what")
    pool = frame.loc[f"T4 {GPU_RESOURCE} at once (old + copy + new)"]
    assert pool["free_on_best_node"] == "3 (free 1, held 0, scalable 2)"


def test_an_unknown_scalable_pool_is_refused_when_the_configuration_loads(
    capacity_env: Callable[[str], Environment],
) -> None:
    # ConfigError: one line, exit 2 at the CLI; refused before any step can start.
    with pytest.raises(ConfigError, match='scalable_pools "T5": not a GPU type truss knows'):
        capacity_env("[env.k8s.capacity]\nscalable_pools = { T5 = 2 }")


def test_03_is_refused_before_any_write(
    capacity_env: Callable[[str], Environment], kube_api: KubeApiStandIn
) -> None:
    env = capacity_env("")
    with pytest.raises(CapacityRefused, match="T4 GPUs: needs 3"):
        s03_migrate.note_old_version(env, "resnet50")
    before = whitelist(kube_api)
    zoo = env.platform.zoo_model("resnet50")
    versions = len(env.platform.versions_of(zoo.id))

    result = run_step("03_migrate", "resnet50")

    assert result.returncode == 2, result.stderr
    assert "T4 GPUs: needs 3" in result.stderr
    assert whitelist(kube_api) == before  # copy: false was never written
    assert kube_api.list_objects("Deployment", BASETEN_NAMESPACE) == []
    assert len(env.platform.versions_of(zoo.id)) == versions
    assert env.platform.zoo_model("resnet50").current_version_id == zoo.current_version_id


def test_with_a_scalable_pool_01_deploys_and_03_counts_the_running_copy(
    capacity_env: Callable[[str], Environment], kube_api: KubeApiStandIn
) -> None:
    capacity_env("[env.k8s.capacity]\nscalable_pools = { T4 = 2 }")

    copied = run_step("01_copy", "resnet50")

    assert copied.returncode == 0, copied.stderr
    env = capacity_env("")  # the pool is gone: only the one T4, which the copy now holds
    report = rollout_capacity(env, "resnet50")
    frame = report.to_frame().set_index("what")
    pool = frame.loc[f"T4 {GPU_RESOURCE} at once (old + copy + new)"]
    assert pool["requested"] == "3 (old 1, copy 1, new 1)"
    assert pool["free_on_best_node"] == "1 (free 0, held 1, scalable 0)"
    before = whitelist(kube_api)

    migrated = run_step("03_migrate", "resnet50")

    assert migrated.returncode == 2, migrated.stderr
    assert "T4 GPUs: needs 3 (old 1, copy 1, new 1) at once, available 1" in migrated.stderr
    assert whitelist(kube_api) == before  # still copy: true
    deployments = kube_api.list_objects("Deployment", BASETEN_NAMESPACE)
    assert len(deployments) == 1  # the copy's; no new version was deployed
