"""Migration plans: which user versions move from which zoo version to which, and the rules.

A migration repoints user versions (``oracles_oracleversion.proxy_model_version_id``)
from a *source* zoo version to a *target* zoo version. As in Django's
``database_forwards`` / ``database_backwards``, a forward migration and its revert are
one :class:`MigrationPlan` read in two directions: :meth:`MigrationPlan.reversed` swaps
source and target, so one engine runs both.

Pure: the validation rules take facts the caller has already read (a
:class:`ZooVersionFacts` per version, the forward migration's record) and raise a
:class:`~zoo_ops.errors.BadInput` (or subclass) whose one line says what is wrong and
what to do. Nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from zoo_ops.domain.whitelist import COPY_SUFFIX
from zoo_ops.errors import BadInput, GateClosed, NotFound

Direction = Literal["forwards", "backwards"]
Scope = Literal["all", "recorded"]

FORWARDS: Direction = "forwards"
BACKWARDS: Direction = "backwards"
DIRECTIONS: tuple[Direction, ...] = (FORWARDS, BACKWARDS)

SCOPE_ALL: Scope = "all"
SCOPE_RECORDED: Scope = "recorded"
SCOPES: tuple[Scope, ...] = (SCOPE_ALL, SCOPE_RECORDED)

# Migration record statuses (zoo_ops_migration.status).
OPEN = "open"  # running, or interrupted: a rerun resumes it
DONE = "done"  # every row moved and read back
ABANDONED = "abandoned"  # an interrupted forward migration that was reverted, not resumed
ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class ZooVersionFacts:
    """What the rules need to know about one version, as read from the platform."""

    id: str
    status: str
    oracle_name: str
    is_zoo_model: bool  # the owning oracle is a model zoo model of the admin organization


@dataclass(frozen=True)
class MigrationPlan:
    """Move the user versions on ``source_version_id`` to ``target_version_id``.

    ``scope="all"`` moves every user version on the source; ``scope="recorded"`` (a
    revert only) moves those that ``forward_migration_id`` moved and that are still on
    the source, each back to the proxy its journal row recorded.
    """

    model: str
    direction: Direction
    source_version_id: str
    target_version_id: str
    scope: Scope = SCOPE_ALL
    forward_migration_id: str | None = None

    @property
    def mapping(self) -> dict[str, str]:
        """``{source: target}``: the seed's ``MAP_OF_OLD_ZOO_TO_NEW_ZOO_IDS`` forwards,
        ``MAP_OF_NEW_ZOO_TO_OLD_ZOO_IDS`` backwards."""
        return {self.source_version_id: self.target_version_id}

    def reversed(
        self, *, forward_migration_id: str | None = None, scope: Scope = SCOPE_ALL
    ) -> MigrationPlan:
        """The plan that undoes this one: source and target swapped, direction flipped.

        A revert of a forward plan names the forward migration it undoes (its journal
        is what ``scope="recorded"`` reads).
        """
        check_scope(scope)
        flipped: Direction = BACKWARDS if self.direction == FORWARDS else FORWARDS
        return replace(
            self,
            direction=flipped,
            source_version_id=self.target_version_id,
            target_version_id=self.source_version_id,
            scope=scope,
            forward_migration_id=forward_migration_id if flipped == BACKWARDS else None,
        )

    def describe(self) -> str:
        return (
            f"{self.direction} {self.model}: {self.source_version_id} -> {self.target_version_id}"
        )


def forward_plan(model: str, old_version_id: str, new_version_id: str) -> MigrationPlan:
    """The plan of a forward migration (every user version on old goes to new)."""
    return MigrationPlan(model, FORWARDS, old_version_id, new_version_id, SCOPE_ALL, None)


def lock_name(env: str, model: str) -> str:
    """The per-(environment, model) lock a migration in either direction takes."""
    return f"migrate:{env}:{model}"


# -- validation rules ---------------------------------------------------------------------


def check_scope(scope: str) -> Scope:
    if scope == SCOPE_ALL:
        return SCOPE_ALL
    if scope == SCOPE_RECORDED:
        return SCOPE_RECORDED
    raise BadInput(f"scope {scope!r} is not one of 'all', 'recorded'; pick one")


def check_version_id(name: str, value: object) -> str:
    if not isinstance(value, str) or value.strip() == "" or value != value.strip():
        raise BadInput(f"{name} {value!r} is not a version id; pass the zoo version's id")
    return value


def allowed_owners(model: str) -> frozenset[str]:
    """The zoo models whose versions a migration of ``model`` may use: it and its copy."""
    return frozenset({model, model + COPY_SUFFIX})


def check_model_name(model: object) -> str:
    if not isinstance(model, str) or model == "" or any(ch.isspace() for ch in model):
        raise BadInput(f"model {model!r} is not a model zoo model name; pass e.g. 'iris'")
    if model.endswith(COPY_SUFFIX):
        raise BadInput(
            f"model {model!r} is a copy; pass the model zoo model's own name "
            f"{model[: -len(COPY_SUFFIX)]!r}"
        )
    return model


def check_plan(
    plan: MigrationPlan,
    source: ZooVersionFacts | None,
    target: ZooVersionFacts | None,
) -> None:
    """Refuse a plan whose versions do not make sense together.

    Rules, in order: the source exists; the target exists; they differ; each belongs to
    a model zoo model that is ``plan.model`` or ``plan.model + "_copy"`` (mapping
    versions of two different zoo models would hand users someone else's model); the
    target is ACTIVE (users must land on a version that serves).
    """
    check_model_name(plan.model)
    check_version_id("source version", plan.source_version_id)
    check_version_id("target version", plan.target_version_id)
    if source is None:
        raise NotFound(
            f"source version {plan.source_version_id!r} does not exist; check the version id"
        )
    if target is None:
        raise NotFound(
            f"target version {plan.target_version_id!r} does not exist; check the version id"
        )
    if source.id == target.id:
        raise BadInput(
            f"source and target are the same version {source.id!r}; pass two different versions"
        )
    owners = allowed_owners(plan.model)
    for role, facts in (("source", source), ("target", target)):
        if not facts.is_zoo_model:
            raise BadInput(
                f"{role} version {facts.id!r} belongs to {facts.oracle_name!r}, which is not "
                "a model zoo model; pass a version of the zoo model"
            )
        if facts.oracle_name not in owners:
            raise BadInput(
                f"{role} version {facts.id!r} belongs to zoo model {facts.oracle_name!r}, not "
                f"{plan.model!r}; both versions must belong to {plan.model!r} (or its copy)"
            )
    if target.status != ACTIVE:
        raise GateClosed(
            f"target version {target.id!r} is {target.status}, not ACTIVE; "
            "wait for it to become ACTIVE before migrating users onto it"
        )


@dataclass(frozen=True)
class MigrationRecord:
    """One row of ``zoo_ops_migration``: a migration as recorded."""

    id: str
    env: str
    model: str
    direction: str
    source_version_id: str
    target_version_id: str
    forward_migration_id: str | None
    scope: str
    status: str
    run_id: str | None
    operator: str
    moved_count: int
    batch_count: int
    started_at: datetime
    finished_at: datetime | None
    reverted_by: str | None

    @property
    def plan(self) -> MigrationPlan:
        direction = BACKWARDS if self.direction == BACKWARDS else FORWARDS
        return MigrationPlan(
            self.model,
            direction,
            self.source_version_id,
            self.target_version_id,
            check_scope(self.scope),
            self.forward_migration_id,
        )

    @property
    def mapping(self) -> dict[str, str]:
        return {self.source_version_id: self.target_version_id}


def check_revertible(
    forward: MigrationRecord | None,
    reverted_by_status: str | None,
    forward_id: str,
    env: str,
    model: str,
) -> None:
    """Refuse to revert something that is not a forward migration of ``model`` in ``env``.

    An interrupted (open) forward migration may be reverted: that is the way back after
    a crash. A forward migration already reverted by a finished revert
    (``reverted_by_status`` is that revert's status) is refused.
    """
    if forward is None:
        raise NotFound(f"no migration with id {forward_id!r}; pass the forward run's migration_id")
    if forward.direction != FORWARDS:
        raise BadInput(
            f"migration {forward.id!r} is a revert, not a forward migration; "
            "pass the forward run's migration_id"
        )
    if forward.env != env or forward.model != model:
        raise BadInput(
            f"migration {forward.id!r} migrated {forward.model!r} in {forward.env!r}, not "
            f"{model!r} in {env!r}; pass the matching model and env"
        )
    if forward.status not in (DONE, OPEN, ABANDONED):
        raise BadInput(
            f"migration {forward.id!r} has status {forward.status!r}; it cannot be reverted"
        )
    if forward.reverted_by is not None and reverted_by_status == DONE:
        raise GateClosed(
            f"migration {forward.id!r} was already reverted by {forward.reverted_by!r}; "
            "nothing to do"
        )


def check_resumable(plan: MigrationPlan, open_plan: MigrationPlan, open_id: str) -> bool:
    """Whether an open migration of the same model is ``plan`` interrupted (resume it).

    Another open migration of the model (other versions, other direction, other scope)
    is refused: finish or revert that one first, or two plans would interleave.
    """
    same = (
        open_plan.direction == plan.direction
        and open_plan.source_version_id == plan.source_version_id
        and open_plan.target_version_id == plan.target_version_id
    )
    if same and (
        open_plan.scope == plan.scope
        and open_plan.forward_migration_id == plan.forward_migration_id
    ):
        return True
    if same:
        raise BadInput(
            f"interrupted migration {open_id!r} ({open_plan.describe()}, scope "
            f"{open_plan.scope!r}) is open; rerun it with scope {open_plan.scope!r} to finish it"
        )
    raise BadInput(
        f"interrupted migration {open_id!r} ({open_plan.describe()}) is open for this model; "
        "rerun that migration to finish it, or revert it, before starting another"
    )


def reverse_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    """``{new: old}`` from ``{old: new}``; refuses a mapping that is not one-to-one."""
    flipped = {new: old for old, new in mapping.items()}
    if len(flipped) != len(mapping):
        raise BadInput(f"mapping {dict(mapping)!r} is not one-to-one; it cannot be reversed")
    return flipped


# -- facts, decide ------------------------------------------------------------------------
#
# The engine gathers its facts (one MigrationStore.facts call), the functions below
# decide (pure), and the store acts on the decision. Nothing here reads or writes.


@dataclass(frozen=True)
class MigrationRequest:
    """What the caller asks for, before any fact is known.

    Forwards: move the users on ``old_version_id`` to ``new_version_id``. Backwards:
    undo forward migration ``forward_migration_id`` (its versions, read from its
    record, decide the plan) with ``scope``.
    """

    env: str
    model: str
    direction: Direction
    old_version_id: str = ""
    new_version_id: str = ""
    forward_migration_id: str = ""
    scope: str = SCOPE_ALL
    # Forwards: adopt the latest finished forward migration of the same plan whose run did
    # not succeed (a crashed run's, finished by an orphaned kernel) instead of opening a
    # new, empty one. See :func:`adoptable`.
    adopt: bool = False

    @property
    def version_ids(self) -> tuple[str, ...]:
        """The versions the request names itself (a revert names them through its forward)."""
        return tuple(v for v in (self.old_version_id, self.new_version_id) if v)


def forward_request(
    env: str, model: str, old_version_id: str, new_version_id: str, *, adopt: bool = False
) -> MigrationRequest:
    return MigrationRequest(env, model, FORWARDS, old_version_id, new_version_id, adopt=adopt)


def revert_request(
    env: str, model: str, forward_migration_id: str, scope: str = SCOPE_ALL
) -> MigrationRequest:
    return MigrationRequest(
        env, model, BACKWARDS, forward_migration_id=forward_migration_id, scope=scope
    )


@dataclass(frozen=True)
class MigrationFacts:
    """Everything a decision needs, read in one go by ``MigrationStore.facts``."""

    versions: dict[str, ZooVersionFacts] = field(default_factory=dict)
    # Backwards: the forward migration named, and the status of the revert recorded on it.
    forward: MigrationRecord | None = None
    forward_reverted_by_status: str | None = None
    # The model's open (running or interrupted) migrations in the environment, newest first.
    open_migrations: tuple[MigrationRecord, ...] = ()
    # Forwards: the latest forward migration of the same plan (source and target), and the
    # outcome of the run that started it (None: no outcome recorded, or no run row).
    latest_same_plan: MigrationRecord | None = None
    latest_same_plan_run_outcome: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do: run ``plan``, resuming ``resume`` or opening a new record.

    ``abandon_id``: the interrupted forward migration this revert replaces (it becomes
    ``abandoned`` so that it is never resumed on top of its revert). ``reverts``: the
    forward migration that gets ``reverted_by`` when this one is done.
    """

    plan: MigrationPlan
    resume: MigrationRecord | None = None
    abandon_id: str | None = None
    # ``resume`` is a finished record adopted from a run that did not succeed: it is
    # opened again (same id, same journal), swept, and closed again.
    reopen: bool = False

    @property
    def adopted_run_id(self) -> str | None:
        """The run whose migration this one continues (None: a new record)."""
        return None if self.resume is None else self.resume.run_id

    @property
    def reverts(self) -> str | None:
        return self.plan.forward_migration_id if self.plan.direction == BACKWARDS else None


def check_request(request: MigrationRequest, facts: MigrationFacts) -> MigrationPlan:
    """The plan the request means, or a refusal (the plan rules; no lock needed).

    Backwards, the plan is the forward migration's plan reversed, once the forward
    migration is found revertible.
    """
    scope = check_scope(request.scope)
    if request.direction == BACKWARDS:
        check_revertible(
            facts.forward,
            facts.forward_reverted_by_status,
            request.forward_migration_id,
            request.env,
            request.model,
        )
        assert facts.forward is not None  # check_revertible refused None
        plan = facts.forward.plan.reversed(forward_migration_id=facts.forward.id, scope=scope)
    else:
        plan = forward_plan(request.model, request.old_version_id, request.new_version_id)
    check_plan(
        plan,
        facts.versions.get(plan.source_version_id),
        facts.versions.get(plan.target_version_id),
    )
    return plan


def decide(request: MigrationRequest, facts: MigrationFacts) -> Decision:
    """Under the lock: the plan, and whether to resume an open record or open a new one.

    The open record of the same plan is resumed; an open record of another plan is
    refused -- except the interrupted forward migration this plan reverts, which is
    abandoned.
    """
    plan = check_request(request, facts)
    open_migrations = facts.open_migrations
    abandon_id = None
    if plan.direction == BACKWARDS and plan.forward_migration_id is not None:
        if any(r.id == plan.forward_migration_id for r in open_migrations):
            abandon_id = plan.forward_migration_id
            open_migrations = tuple(r for r in open_migrations if r.id != abandon_id)
    current = open_migrations[0] if open_migrations else None
    if current is not None and check_resumable(plan, current.plan, current.id):
        return Decision(plan, resume=current, abandon_id=abandon_id)
    latest = facts.latest_same_plan
    if (
        request.adopt
        and plan.direction == FORWARDS
        and latest is not None
        and adoptable(plan, latest, facts.latest_same_plan_run_outcome)
    ):
        return Decision(plan, resume=latest, abandon_id=abandon_id, reopen=True)
    return Decision(plan, resume=None, abandon_id=abandon_id)


SUCCEEDED_OUTCOME = "succeeded"


def adoptable(plan: MigrationPlan, record: MigrationRecord, run_outcome: str | None) -> bool:
    """Whether a rerun of ``plan`` continues ``record`` instead of opening a new migration.

    The rule ("resume adopts, never forgets"): the latest forward migration of the same
    model, environment, source and target that is finished (``done``), not reverted, and
    whose run did not succeed -- crashed or interrupted (no outcome), failed after moving,
    or gone from the runs table. Such a migration's rows were moved but no notebook
    recorded them; the rerun adopts it so that its ``affected`` is every row. (An open
    record of the plan is resumed by :func:`decide` before this rule is asked.)
    """
    return (
        record.direction == FORWARDS
        and record.status == DONE
        and record.reverted_by is None
        and (record.model, record.source_version_id, record.target_version_id)
        == (plan.model, plan.source_version_id, plan.target_version_id)
        and run_outcome != SUCCEEDED_OUTCOME
    )
