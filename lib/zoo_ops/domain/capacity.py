"""Resource maths for the capacity preflight: does a truss's replica fit on some node?

Pure: the cluster adapters turn nodes and pods into :class:`NodeRoom` values (what each
node can allocate and what its running pods already request); this module decides.
Kubernetes quantity strings (``"500m"``, ``"2Gi"``) are parsed by the adapters (with the
official client's parser) and arrive here as Decimals (:meth:`Amounts.from_decimals`).

The rule is the scheduler's: a pod fits on a node when, for every resource it requests
(cpu, memory, ``nvidia.com/gpu``), the node's allocatable amount minus the requests of
the non-terminal pods already bound to it is at least the request; and a GPU request
lands only on a node carrying the asked accelerator type (the node selector the serving
adapter sets). A verdict lists, per resource, what is requested, what is free on the best
candidate node, and what the old version holds, so that a refusal shows its numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from zoo_ops.domain.truss_config import TRUSS_ACCELERATORS, Resources, format_cpu
from zoo_ops.errors import ConfigError

GPU_RESOURCE = "nvidia.com/gpu"

# Truss accelerator names -> the node label value GKE gives nodes carrying that GPU
# (``cloud.google.com/gke-accelerator``). A10G is AWS-only; nodes with it are expected to
# be labelled ``nvidia-a10g`` by convention. A type missing here is labelled by its
# lowercased truss name.
ACCELERATOR_NODE_LABELS: Mapping[str, str] = {
    "T4": "nvidia-tesla-t4",
    "L4": "nvidia-l4",
    "A10G": "nvidia-a10g",
    "V100": "nvidia-tesla-v100",
    "A100": "nvidia-a100-80gb",
    "A100_40GB": "nvidia-tesla-a100",
    "H100": "nvidia-h100-80gb",
    "H200": "nvidia-h200-141gb",
    "B200": "nvidia-b200",
    "L40S": "nvidia-l40s",
    "RTX_PRO_6000": "nvidia-rtx-pro-6000",
    "B300": "nvidia-b300",
    "GB300": "nvidia-gb300",
}
_TYPE_BY_LABEL = {label: gpu_type for gpu_type, label in ACCELERATOR_NODE_LABELS.items()}


def accelerator_type_of_label(label: str) -> str:
    """The truss accelerator name for a node's accelerator label value, else the value."""
    return _TYPE_BY_LABEL.get(label, label)


def node_label_for_accelerator(gpu_type: str) -> str:
    """The node label value a node carrying ``gpu_type`` (a truss name) has."""
    return ACCELERATOR_NODE_LABELS.get(gpu_type, gpu_type.lower())


def format_memory_human(size: int) -> str:
    """Bytes as a short binary quantity: exact (``"8Gi"``) when it divides, else one
    decimal (``"7.5Gi"``), so that free memory reads at a glance."""
    if size < 0:
        return "-" + format_memory_human(-size)
    for unit, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size >= factor:
            whole, rest = divmod(size, factor)
            return f"{whole}{unit}" if rest == 0 else f"{size / factor:.1f}{unit}"
    return str(size)


# --- amounts, nodes, requests -------------------------------------------------------------


@dataclass(frozen=True)
class Amounts:
    """Exact amounts of the three resources a model server requests."""

    cpu_millicores: int = 0
    memory_bytes: int = 0
    gpus: int = 0

    def plus(self, other: Amounts) -> Amounts:
        return Amounts(
            self.cpu_millicores + other.cpu_millicores,
            self.memory_bytes + other.memory_bytes,
            self.gpus + other.gpus,
        )

    def minus(self, other: Amounts) -> Amounts:
        return Amounts(
            self.cpu_millicores - other.cpu_millicores,
            self.memory_bytes - other.memory_bytes,
            self.gpus - other.gpus,
        )

    @classmethod
    def from_decimals(cls, *, cpu: Decimal, memory: Decimal, gpus: Decimal) -> Amounts:
        """From exact amounts in base units (cpu in cores, memory in bytes), as parsed
        from a Kubernetes ``requests``/``allocatable`` map. Fractions round up: a request
        of 0.5 millicores still takes one."""
        return cls(_ceil(cpu * 1000), _ceil(memory), _ceil(gpus))


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class NodeRoom:
    """One node: what it can allocate and what its non-terminal pods already request.

    ``accelerator`` is the truss accelerator name of the node's GPU (``"T4"``), the raw
    label value when it maps to no truss name, and ``""`` for a node without one.
    ``schedulable`` is False for a node that is not Ready, is cordoned, or carries a
    taint model pods do not tolerate.
    """

    name: str
    accelerator: str
    allocatable: Amounts
    requested: Amounts = Amounts()
    schedulable: bool = True
    # Tainted for GPU pods only (``nvidia.com/gpu``, as GKE taints GPU nodes): a CPU-only
    # pod does not tolerate it; a GPU pod does (the serving adapter adds the toleration).
    gpu_only: bool = False

    @property
    def free(self) -> Amounts:
        return self.allocatable.minus(self.requested)


@dataclass(frozen=True)
class CapacityRequest:
    """What one replica asks for. ``accelerator``: None for no GPU, ``""`` for a GPU of
    any type (truss's legacy ``use_gpu: true``), else a truss accelerator name."""

    amounts: Amounts
    accelerator: str | None = None

    @classmethod
    def from_resources(cls, resources: Resources) -> CapacityRequest:
        accelerator = resources.accelerator
        return cls(
            Amounts(resources.cpu_millicores, resources.memory_bytes, resources.gpu_count),
            None if accelerator is None else accelerator.type,
        )

    @property
    def wants_gpu(self) -> bool:
        return self.amounts.gpus > 0

    def accelerator_text(self) -> str:
        if not self.wants_gpu:
            return "none"
        name = self.accelerator or "any GPU"
        return f"{name} x{self.amounts.gpus}"


def accepts(node: NodeRoom, request: CapacityRequest) -> bool:
    """Whether the request's node selector lets it onto ``node`` (ignoring amounts)."""
    if not node.schedulable:
        return False
    if not request.wants_gpu:
        return not node.gpu_only
    if request.accelerator:
        return node.accelerator == request.accelerator
    return node.allocatable.gpus > 0


def shortfalls(request: CapacityRequest, node: NodeRoom) -> list[str]:
    """The resources (``cpu``, ``memory``, ``nvidia.com/gpu``) ``node`` has too little of."""
    free, want = node.free, request.amounts
    short = []
    if want.cpu_millicores > free.cpu_millicores:
        short.append("cpu")
    if want.memory_bytes > free.memory_bytes:
        short.append("memory")
    if want.gpus > free.gpus:
        short.append(GPU_RESOURCE)
    return short


def fits(request: CapacityRequest, node: NodeRoom) -> bool:
    """The scheduler's verdict for one node: selector accepts it and every amount is free."""
    return accepts(node, request) and not shortfalls(request, node)


def best_node(request: CapacityRequest, nodes: Sequence[NodeRoom]) -> NodeRoom | None:
    """The node to show the request against.

    Algorithm: among the nodes the request's selector accepts, a node where it fits,
    preferring (for a CPU-only request) nodes without a GPU, so GPUs stay free for models
    that need them, then the most free GPUs/cpu/memory; when it fits nowhere, the node
    that comes closest: fewest short resources, then the smallest total shortfall as a
    fraction of the request. None when no node is accepted at all.
    """
    candidates = [n for n in nodes if accepts(n, request)]
    if not candidates:
        return None
    fitting = [n for n in candidates if not shortfalls(request, n)]
    if fitting:
        return min(
            fitting,
            key=lambda n: (
                not request.wants_gpu and n.allocatable.gpus > 0,
                -n.free.gpus,
                -n.free.cpu_millicores,
                -n.free.memory_bytes,
                n.name,
            ),
        )
    return min(
        candidates,
        key=lambda n: (len(shortfalls(request, n)), _shortfall_fraction(request, n), n.name),
    )


def _shortfall_fraction(request: CapacityRequest, node: NodeRoom) -> float:
    want, free = request.amounts, node.free
    total = 0.0
    for asked, have in (
        (want.cpu_millicores, free.cpu_millicores),
        (want.memory_bytes, free.memory_bytes),
        (want.gpus, free.gpus),
    ):
        if asked > have:
            total += (asked - have) / asked
    return total


# --- the verdict -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityRow:
    """One line of the preflight table. ``blocking``: a False ``fits`` refuses the deploy
    (False for warnings, e.g. a GPU the local runtime replaces by the CPU)."""

    what: str
    requested: str
    free_on_best_node: str
    old_version: str
    fits: bool
    detail: str
    blocking: bool = True


@dataclass(frozen=True)
class CapacityVerdict:
    """Whether the request fits, the rows that show why, and the node it was shown against."""

    ok: bool
    summary: str
    rows: tuple[CapacityRow, ...]
    node: str | None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def assess_capacity(
    request: CapacityRequest,
    nodes: Sequence[NodeRoom],
    old: CapacityRequest | None = None,
    *,
    enforced: bool = True,
    no_gpu_note: str = "",
) -> CapacityVerdict:
    """The preflight verdict for ``request`` on ``nodes``, beside the old version's ``old``.

    Algorithm: pick :func:`best_node`; one row each for the accelerator, cpu, memory and
    ``nvidia.com/gpu`` comparing requested with free on that node; ``ok`` when the best
    node fits. With ``enforced`` False (a local machine, where nothing is reserved) a
    short row is a warning, never a refusal, and a GPU request is judged against the
    machine without its GPU (``no_gpu_note`` says what happens instead).
    """
    judged = request
    if not enforced and request.wants_gpu and not any(accepts(n, request) for n in nodes):
        judged = CapacityRequest(
            Amounts(request.amounts.cpu_millicores, request.amounts.memory_bytes)
        )
    node = best_node(judged, nodes)
    short = set(shortfalls(judged, node)) if node else set()
    want, free = request.amounts, node.free if node else None
    old_amounts = old.amounts if old else None

    def old_text(value: int | None, fmt: str) -> str:
        if old_amounts is None or value is None:
            return "unknown"
        return _fmt(value, fmt)

    rows: list[CapacityRow] = []
    accel_ok = node is not None
    accel_detail = _accelerator_detail(request, nodes, node)
    if not enforced and judged is not request:
        accel_detail = no_gpu_note or "warning: no GPU here; the model would run on the CPU"
    rows.append(
        CapacityRow(
            what="accelerator",
            requested=request.accelerator_text(),
            free_on_best_node=(node.accelerator or "none") if node else "-",
            old_version=old.accelerator_text() if old else "unknown",
            fits=accel_ok and judged is request,
            detail=accel_detail,
            blocking=enforced,
        )
    )
    for what, asked, have, old_value, fmt in (
        ("cpu", want.cpu_millicores, free.cpu_millicores if free else None,
         old_amounts.cpu_millicores if old_amounts else None, "cpu"),
        ("memory", want.memory_bytes, free.memory_bytes if free else None,
         old_amounts.memory_bytes if old_amounts else None, "memory"),
        (GPU_RESOURCE, want.gpus, free.gpus if free else None,
         old_amounts.gpus if old_amounts else None, "count"),
    ):  # fmt: skip
        row_fits = node is not None and what not in short
        detail = _amount_detail(what, asked, have, node, enforced, row_fits)
        if what == GPU_RESOURCE and judged is not request:
            row_fits, detail = False, accel_detail
        rows.append(
            CapacityRow(
                what=what,
                requested=_fmt(asked, fmt),
                free_on_best_node="-" if have is None else _fmt(have, fmt),
                old_version=old_text(old_value, fmt),
                fits=row_fits,
                detail=detail,
                blocking=enforced,
            )
        )

    fits_best = node is not None and not short and judged is request
    ok = fits_best or not enforced
    warnings = tuple(f"{r.what}: {r.detail}" for r in rows if not r.fits and not r.blocking)
    summary = _summary(request, nodes, node, short, fits_best, enforced, judged is not request)
    return CapacityVerdict(ok, summary, tuple(rows), node.name if node else None, warnings)


def _fmt(value: int, kind: str) -> str:
    if kind == "cpu":
        return format_cpu(value) if value >= 0 else "-" + format_cpu(-value)
    if kind == "memory":
        return format_memory_human(value)
    return str(value)


def _accelerator_detail(
    request: CapacityRequest, nodes: Sequence[NodeRoom], node: NodeRoom | None
) -> str:
    if not request.wants_gpu:
        return "no GPU requested"
    matching = [n.name for n in nodes if accepts(n, request)]
    if matching:
        return (
            f"{len(matching)} node(s) with {request.accelerator or 'a GPU'}: {', '.join(matching)}"
        )
    present = sorted({n.accelerator for n in nodes if n.accelerator})
    have = ", ".join(present) if present else "none"
    return f"no schedulable node has {request.accelerator or 'a GPU'} (accelerators in the cluster: {have})"


def _amount_detail(
    what: str, asked: int, have: int | None, node: NodeRoom | None, enforced: bool, ok: bool
) -> str:
    if node is None:
        return "no candidate node"
    if ok:
        return f"fits on {node.name}"
    fmt = {"cpu": "cpu", "memory": "memory"}.get(what, "count")
    missing = asked - (have or 0)
    text = f"{_fmt(missing, fmt)} short on {node.name}"
    return text if enforced else f"warning: {text}; nothing is reserved locally"


def _summary(
    request: CapacityRequest,
    nodes: Sequence[NodeRoom],
    node: NodeRoom | None,
    short: set[str],
    fits_best: bool,
    enforced: bool,
    gpu_dropped: bool,
) -> str:
    want = request.amounts
    asked = f"{format_cpu(want.cpu_millicores)} cpu, {format_memory_human(want.memory_bytes)}"
    if request.wants_gpu:
        asked += f", {request.accelerator_text()}"
    if fits_best and node is not None:
        return f"fits on {node.name} ({asked})"
    if node is None:
        return f"fits on no node: {_accelerator_detail(request, nodes, None)} (needs {asked})"
    free = node.free
    parts = []
    if "cpu" in short:
        parts.append(
            f"cpu {format_cpu(want.cpu_millicores)} requested, {_fmt(free.cpu_millicores, 'cpu')} free"
        )
    if "memory" in short:
        parts.append(
            f"memory {format_memory_human(want.memory_bytes)} requested, "
            f"{format_memory_human(free.memory_bytes)} free"
        )
    if GPU_RESOURCE in short:
        parts.append(f"{GPU_RESOURCE} {want.gpus} requested, {free.gpus} free")
    if not enforced:
        what = "; ".join(parts) if parts else "fits"
        gpu = "; no GPU here, the local runtime serves on the CPU" if gpu_dropped else ""
        return f"{what}{gpu} (warnings only; needs {asked})"
    return f"fits on no node (needs {asked}); best candidate {node.name}: {'; '.join(parts)}"


def rooms_by_accelerator(nodes: Sequence[NodeRoom]) -> list[dict[str, object]]:
    """Per accelerator type: how many nodes, the most free on one node, and free GPUs in all."""
    groups: dict[str, list[NodeRoom]] = {}
    for node in nodes:
        if node.schedulable:
            groups.setdefault(node.accelerator or "none", []).append(node)
    rows = []
    for accelerator, members in sorted(groups.items()):
        rows.append(
            {
                "accelerator": accelerator,
                "nodes": len(members),
                "max_free_cpu": _fmt(max(n.free.cpu_millicores for n in members), "cpu"),
                "max_free_memory": format_memory_human(max(n.free.memory_bytes for n in members)),
                "max_free_gpus": max(n.free.gpus for n in members),
                "free_gpus_total": sum(max(n.free.gpus, 0) for n in members),
            }
        )
    return rows


# --- the rollout: old + copy + new at once ----------------------------------------------------

ROLES = ("old", "copy", "new")


@dataclass(frozen=True)
class Footprint:
    """One of the versions a rollout keeps running at once.

    ``role``: ``old`` (the zoo model's current version), ``copy`` (``MODEL_copy``'s) or
    ``new`` (the truss as a new version of the zoo model). ``held``: its pods are already
    bound, so their requests are inside the nodes' ``requested`` (and not in ``free``).
    ``known``: False when its footprint could not be read and the truss's request stands
    in for it.
    """

    role: str
    request: CapacityRequest
    held: bool
    known: bool = True
    version_id: str | None = None


@dataclass(frozen=True)
class PoolRow:
    """One resource of one pool: what the rollout needs at once against what there is.

    ``pool`` is a truss accelerator name for GPUs, ``"any GPU"`` for a GPU of any type, and
    ``"cpu nodes"`` for the cpu and memory of a CPU-only model. ``available`` is
    ``free + held + scalable``: room free now, room the rollout's own running versions
    already hold, and what the autoscaler can still add (``capacity.scalable_pools``).
    """

    pool: str
    resource: str
    by_role: tuple[tuple[str, int], ...]
    free: int
    held: int
    scalable: int
    unknown_roles: tuple[str, ...] = ()

    @property
    def needed(self) -> int:
        return sum(amount for _, amount in self.by_role)

    @property
    def available(self) -> int:
        return self.free + self.held + self.scalable

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def text(self, fmt: str) -> tuple[str, str]:
        """(needed, available) as shown: ``"3 (old 1, copy 1, new 1)"``,
        ``"1 (free 1, held 0, scalable 0)"``."""
        roles = ", ".join(f"{role} {_fmt(amount, fmt)}" for role, amount in self.by_role)
        needed = f"{_fmt(self.needed, fmt)} ({roles})"
        available = (
            f"{_fmt(self.available, fmt)} (free {_fmt(self.free, fmt)}, "
            f"held {_fmt(self.held, fmt)}, scalable {_fmt(self.scalable, fmt)})"
        )
        return needed, available


def check_scalable_pools(pools: Mapping[str, int], where: str) -> None:
    """Refuse a ``scalable_pools`` key that is not a truss accelerator name (one line)."""
    for name in sorted(pools):
        if name not in TRUSS_ACCELERATORS:
            raise ConfigError(
                f'{where}.scalable_pools "{name}": not a GPU type truss knows; '
                f"use one of {', '.join(TRUSS_ACCELERATORS)}"
            )


def _pool_of(request: CapacityRequest) -> str:
    if not request.wants_gpu:
        return "cpu nodes"
    return request.accelerator or "any GPU"


def rollout_pool_rows(
    request: CapacityRequest,
    footprints: Sequence[Footprint],
    nodes: Sequence[NodeRoom],
    scalable_pools: Mapping[str, int],
) -> list[PoolRow]:
    """What the rollout of ``request`` needs at once, per pool and resource.

    The rule: the old version keeps serving until 05_retire deletes it, the copy stays
    until 05 too, and 03 adds the new version beside both; so from 01 to 05 all three
    run at once, and 01 and 03 each check that all three fit. For the pool of the truss's
    accelerator type (or the CPU nodes, for a CPU-only truss), per resource:
    ``needed`` is the sum over the three footprints in that pool (a footprint in another
    pool, e.g. a legacy version on another GPU type, is checked in its own pool);
    ``available`` is the free room of the schedulable nodes the pool's pods may land on,
    plus what the footprints already running hold there, plus ``scalable_pools`` for that
    accelerator type (GPUs only: a scaled-up node brings its own cpu and memory, so for a
    GPU pool only the GPU count is summed).
    """
    by_pool: dict[str, list[Footprint]] = {}
    for footprint in footprints:
        by_pool.setdefault(_pool_of(footprint.request), []).append(footprint)
    rows: list[PoolRow] = []
    for pool in sorted(by_pool, key=lambda p: (p != _pool_of(request), p)):
        members = by_pool[pool]
        sample = members[0].request
        accepting = [n for n in nodes if accepts(n, sample)]
        unknown = tuple(f.role for f in members if not f.known)
        if sample.wants_gpu:
            resources = [(GPU_RESOURCE, lambda a: a.gpus)]
        else:
            resources = [("cpu", lambda a: a.cpu_millicores), ("memory", lambda a: a.memory_bytes)]
        for resource, amount_of in resources:
            rows.append(
                PoolRow(
                    pool=pool,
                    resource=resource,
                    by_role=tuple((f.role, amount_of(f.request.amounts)) for f in members),
                    free=sum(max(amount_of(n.free), 0) for n in accepting),
                    held=sum(amount_of(f.request.amounts) for f in members if f.held),
                    scalable=scalable_pools.get(pool, 0) if sample.wants_gpu else 0,
                    unknown_roles=unknown,
                )
            )
    return rows


def rollout_refusal(rows: Sequence[PoolRow]) -> str:
    """The one line naming every pool that is short: accelerator, needed vs available."""
    parts = []
    for row in rows:
        if row.fits:
            continue
        fmt = {"cpu": "cpu", "memory": "memory"}.get(row.resource, "count")
        needed, available = row.text(fmt)
        what = f"{row.pool} GPUs" if row.resource == GPU_RESOURCE else f"{row.pool} {row.resource}"
        unknown = (
            f"; {', '.join(row.unknown_roles)} counted as the truss's request (footprint unknown)"
            if row.unknown_roles
            else ""
        )
        parts.append(f"{what}: needs {needed} at once, available {available}{unknown}")
    return "; ".join(parts)
