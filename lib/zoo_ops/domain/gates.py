"""The staging-before-prod gate (DESIGN §2 `requires`), as a pure rule.

A mutating step in an environment that ``requires`` another may run only when the same
step has succeeded there for the same model and the same truss hash. An explicit
override reason lets it through and is recorded. A dry run is never blocked: it
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateVerdict:
    open: bool
    rule: str
    detail: str
    overridden: bool = False


def staging_gate(
    *,
    env: str,
    requires: str,
    step: str,
    model: str,
    truss_hash: str | None,
    succeeded_hashes: set[str],
    override_reason: str,
    dry_run: bool,
) -> GateVerdict:
    """Open when there is no requirement, on a dry run, on a recorded success, or overridden."""
    if not requires:
        return GateVerdict(True, "none", f"{env} requires no other environment")
    rule = f"{step} for {model} succeeded in {requires} for the same truss hash"
    short = (truss_hash or "?")[:12]
    if truss_hash and truss_hash in succeeded_hashes:
        return GateVerdict(True, rule, f"{step} succeeded in {requires} for truss {short}")
    if dry_run:
        return GateVerdict(
            True, rule, f"dry run: not blocked (no success in {requires} for truss {short})"
        )
    if override_reason:
        return GateVerdict(
            True,
            rule,
            f"overridden: {override_reason} (no success in {requires} for truss {short})",
            True,
        )
    return GateVerdict(
        False,
        rule,
        f"{env}: {step} for {model} has not succeeded in {requires} for truss {short}; "
        f"run it in {requires} first, or pass gate_override_reason",
    )
