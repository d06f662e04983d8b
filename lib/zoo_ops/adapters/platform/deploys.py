"""DeployLog: the automation's writes — target zoo models, claimed versions, the deploy log.

The guard that makes two reconciles at once deploy nothing twice lives here:
:meth:`DeployLog.claim` checks for a non-DELETED version with the truss hash and inserts
the new DEPLOYING version (and its ``zoo_ops_deploy`` row) in ONE transaction that first
locks the target model's ``oracles_oracle`` row (``SELECT ... FOR UPDATE`` on PostgreSQL;
on SQLite every write transaction is ``BEGIN IMMEDIATE``, which serialises them). A
second claimer therefore waits for the first to commit and then sees its version.

A reason is stored only through :func:`zoo_ops.adapters.known_secrets.redact`: a model's
``load`` that fails quoting a secret leaves the secret out of the deploy log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.schema import utcnow
from zoo_ops.adapters.platform.store import Oracle, OracleVersion, PlatformStore, _version
from zoo_ops.errors import NotFound, StepFailed


@dataclass(frozen=True)
class DeployRecord:
    """One row of ``zoo_ops_deploy``: a version the automation deployed, and how it went."""

    version_id: str
    zoo_model: str
    truss_name: str
    truss_hash: str
    status: str
    reason: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`DeployLog.claim`: exactly one of the two is set."""

    version: OracleVersion | None  # the new DEPLOYING version: this caller deploys it
    existing: OracleVersion | None  # a non-DELETED version that already has the hash


class DeployLog:
    def __init__(self, engine: Engine, *, platform: PlatformStore | None = None) -> None:
        self.engine = engine
        self.platform = platform if platform is not None else PlatformStore(engine)

    def find_or_create_zoo_model(self, name: str) -> tuple[Oracle, bool]:
        """The admin organization's zoo model ``name``, created when missing; (model, created).
        Two creators at once: the unique (organization, name) lets one win; the other
        reads the winner's row."""
        found = self.platform.find_zoo_model(name)
        if found is not None:
            return found, False
        admin = self.platform.admin_organization()
        try:
            return self.platform.create_oracle(name, admin.id, is_model_zoo=True), True
        except IntegrityError:
            found = self.platform.find_zoo_model(name)
            if found is None:
                raise StepFailed(
                    f"cannot create zoo model {name!r}: an oracle of that name exists in the "
                    "admin organization but is not a model zoo model; rename or fix it"
                ) from None
            return found, False

    def claim(self, oracle: Oracle, *, truss_name: str, truss_hash: str) -> Claim:
        """Create a DEPLOYING version of ``oracle`` for ``truss_hash`` unless a non-DELETED
        version already has it; atomic against concurrent claimers (module docstring)."""
        with self.engine.begin() as conn:
            locked = conn.execute(
                select(s.oracles.c.id).where(s.oracles.c.id == oracle.id).with_for_update()
            ).first()
            if locked is None:
                raise NotFound(f"zoo model {oracle.name!r} ({oracle.id}) vanished; re-run")
            row = conn.execute(
                select(s.oracle_versions)
                .where(
                    s.oracle_versions.c.oracle_id == oracle.id,
                    s.oracle_versions.c.truss_hash == truss_hash,
                    s.oracle_versions.c.status != s.DELETED,
                )
                .order_by(s.oracle_versions.c.created_at, s.oracle_versions.c.id)
            ).first()
            if row is not None:
                return Claim(None, _version(row))
            version = self.platform.add_version(
                oracle.id, status=s.DEPLOYING, truss_hash=truss_hash, conn=conn
            )
            conn.execute(
                insert(s.deploy_log).values(
                    version_id=version.id,
                    zoo_model=oracle.name,
                    truss_name=truss_name,
                    truss_hash=truss_hash,
                    status=s.DEPLOYING,
                    reason=None,
                    started_at=version.created_at,
                    finished_at=None,
                )
            )
        return Claim(version, None)

    def finish(self, version_id: str, status: str, reason: str | None = None) -> DeployRecord:
        """Record how a deploy ended (ACTIVE or FAILED, with the reason, secrets scrubbed);
        read back."""
        stored = None if reason is None else known_secrets.redact(reason)
        with self.engine.begin() as conn:
            conn.execute(
                update(s.deploy_log)
                .where(s.deploy_log.c.version_id == version_id)
                .values(status=status, reason=stored, finished_at=utcnow())
            )
        record = self.record(version_id)
        if record is None or record.status != status:
            raise StepFailed(f"deploy log of version {version_id} did not become {status}")
        return record

    def record(self, version_id: str) -> DeployRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.deploy_log).where(s.deploy_log.c.version_id == version_id)
            ).first()
        return None if row is None else _record(row)

    def records(self, zoo_model: str | None = None) -> list[DeployRecord]:
        """Deploy log rows, oldest first; of one zoo model when given."""
        stmt = select(s.deploy_log)
        if zoo_model is not None:
            stmt = stmt.where(s.deploy_log.c.zoo_model == zoo_model)
        with self.engine.connect() as conn:
            rows = conn.execute(
                stmt.order_by(s.deploy_log.c.started_at, s.deploy_log.c.version_id)
            ).all()
        return [_record(r) for r in rows]


def _record(row: object) -> DeployRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return DeployRecord(**{k: m[k] for k in DeployRecord.__dataclass_fields__})
