"""Observing the platform's own automation (``automation = "platform"``, DESIGN §8).

On such an environment zoo-ops writes the whitelist and never deploys: the platform's
automation reads ``truss_root/MODEL`` (its copy of it), creates a version of the target
zoo model (``MODEL_copy`` for ``copy: true``, ``MODEL`` for ``copy: false``), DEPLOYING
then ACTIVE, and makes it the target's current version. This module waits for that and
reads it back; it creates no version row, no Deployment, no Service, no deploy-log row.

The wait's verdict, per probe (:func:`platform_verdict`, pure over the rows read):

1. a version of the target carrying the expected truss hash that is ACTIVE and current:
   done;
2. that version FAILED: fail at once (the reason is in the platform's logs, not here);
3. a version the target did not have settled when the wait began (``known_ids``) carrying
   another hash (or none): the platform deployed other content than zoo-ops hashed;
   fail at once naming both hashes;
4. otherwise keep waiting; at ``timeout_s`` fail naming what was last seen.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.store import OracleVersion
from zoo_ops.adapters.polling import poll
from zoo_ops.environment import Environment
from zoo_ops.errors import StepFailed

_POLL_FIRST_S = 0.05
_POLL_CAP_S = 1.0
OBSERVED = "observed"


@dataclass(frozen=True)
class Verdict:
    """One probe's reading: ``version`` when done, ``failure`` to stop, else ``seen``."""

    version: OracleVersion | None = None
    failure: str = ""
    seen: str = ""


def _short(truss_hash: str | None) -> str:
    return (truss_hash or "none")[:12]


def platform_verdict(
    target: str,
    truss_hash: str,
    versions: Sequence[OracleVersion],
    current_version_id: str | None,
    known_ids: Collection[str],
) -> Verdict:
    """Decide from the target's versions (oldest first) and its current version id.

    Algorithm: the newest non-DELETED version carrying ``truss_hash`` decides when there
    is one (ACTIVE and current: done; FAILED: failure; else wait); before that, any
    version not in ``known_ids`` carrying another hash is a failure naming both hashes.
    """
    live = [v for v in versions if v.status != s.DELETED]
    foreign = [v for v in live if v.id not in known_ids and v.truss_hash != truss_hash]
    if foreign:
        other = foreign[-1]
        return Verdict(
            failure=(
                f"the platform deployed {target} version {other.id} with truss hash "
                f"{_short(other.truss_hash)}, not {_short(truss_hash)} (the truss zoo-ops "
                "hashed); the platform reads another truss: make truss_root match it"
            )
        )
    matching = [v for v in live if v.truss_hash == truss_hash]
    if not matching:
        newest = f"; newest is {live[-1].id} ({_short(live[-1].truss_hash)})" if live else ""
        return Verdict(seen=f"no version of {target} with this hash yet{newest}")
    version = matching[-1]
    if version.status == s.FAILED:
        return Verdict(
            failure=(
                f"{target} version {version.id} ({_short(truss_hash)}) FAILED in the "
                "platform's automation; see the platform's deploy logs"
            )
        )
    if version.status != s.ACTIVE:
        return Verdict(seen=f"version {version.id} is {version.status}")
    if current_version_id != version.id:
        return Verdict(seen=f"version {version.id} is ACTIVE but not yet current")
    return Verdict(version=version)


def known_version_ids(env: Environment, target: str) -> frozenset[str]:
    """The ids of the target's settled versions now (not DEPLOYING): what the platform had
    before this wait. A DEPLOYING one may be the platform's answer to the whitelist write
    just made (the step writes, then waits), so it is judged like a new one."""
    oracle = env.platform.find_zoo_model(target)
    if oracle is None:
        return frozenset()
    return frozenset(v.id for v in env.platform.versions_of(oracle.id) if v.status != s.DEPLOYING)


def wait_for_platform_deploy(
    env: Environment,
    target: str,
    truss_hash: str,
    *,
    timeout_s: float,
    known_ids: Collection[str],
) -> OracleVersion:
    """Wait until the platform's automation serves ``truss_hash`` as ``target``'s current
    version (module docstring); StepFailed in one line otherwise."""
    seen = f"no zoo model {target} yet"

    def probe() -> OracleVersion | None:
        nonlocal seen
        oracle = env.platform.find_zoo_model(target)
        if oracle is None:
            return None
        verdict = platform_verdict(
            target,
            truss_hash,
            env.platform.versions_of(oracle.id),
            env.platform.oracle(oracle.id).current_version_id,
            known_ids,
        )
        if verdict.failure:
            raise StepFailed(verdict.failure)
        seen = verdict.seen
        return verdict.version

    version = poll(probe, timeout_s=timeout_s, first_s=_POLL_FIRST_S, cap_s=_POLL_CAP_S)
    if version is None:
        raise StepFailed(
            f"{target} has no ACTIVE current version with truss hash {_short(truss_hash)} "
            f'after {timeout_s:g}s ({seen}); automation = "platform" in [env.{env.name}]: '
            "check that the platform's automation runs and reads this whitelist"
        )
    return version
