"""Procedures over the dynamic settings: show the whitelist, set or remove one entry.

Used by ``zoo-ops whitelist`` and by the runbooks (01_copy sets ``copy: true``,
03_migrate sets ``copy: false``). Every change validates the CURRENT settings first — a
malformed value already in the ConfigMap is refused, naming the key and the problem, and
nothing is written — then is applied as one conditional update, re-applied on conflict
(see :meth:`zoo_ops.adapters.settings.ConditionalStore.apply`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zoo_ops.adapters.settings import SettingsStore
from zoo_ops.domain.whitelist import (
    DynamicSettings,
    Whitelist,
    WhitelistDiffRow,
    check_model_name,
    diff_whitelists,
    lost_entry_problem,
    target_zoo_model,
    with_whitelist,
)
from zoo_ops.errors import StepFailed

if TYPE_CHECKING:
    import pandas as pd

    from zoo_ops.environment import Environment

# An edit of the whitelist alone: Whitelist in, Whitelist out (pure).
_Edit = Callable[[Whitelist], Whitelist]


@dataclass(frozen=True)
class SettingsView:
    """The dynamic settings of one environment as read at ``resource_version``."""

    env: str
    location: str
    resource_version: str
    settings: DynamicSettings

    @property
    def automation_enabled(self) -> bool:
        return self.settings.automation_enabled

    @property
    def whitelist(self) -> Whitelist:
        return self.settings.whitelist

    def to_frame(self) -> pd.DataFrame:
        """One row per whitelisted model: model, copy, deploys_as."""
        import pandas as pd

        rows = [
            {"model": e.model, "copy": e.copy, "deploys_as": target_zoo_model(e)}
            for e in self.whitelist.values()
        ]
        return pd.DataFrame(rows, columns=["model", "copy", "deploys_as"])


@dataclass(frozen=True)
class WhitelistChange:
    """The outcome of one set/remove: the whitelist before and after, and what was written.

    ``before`` is the whitelist the change was computed from (after any conflict retry);
    ``changed`` is False when the entry already had the asked value (nothing written,
    resourceVersion unchanged) and on a dry run ``written`` is False whatever ``changed``.
    """

    env: str
    location: str
    model: str
    before: Whitelist
    after: Whitelist
    resource_version_before: str
    resource_version_after: str
    dry_run: bool
    diff: list[WhitelistDiffRow] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def written(self) -> bool:
        return self.changed and not self.dry_run

    def to_frame(self) -> pd.DataFrame:
        """One row per model in either whitelist: model, before, after, change.

        ``before``/``after`` show the zoo model the automation deploys to (``iris_copy``
        for copy true, ``iris`` for copy false); empty when not whitelisted.
        """
        import pandas as pd

        rows = [
            {
                "model": r.model,
                "before": _copy_text(r.before),
                "after": _copy_text(r.after),
                "deploys_as": r.after_target or r.before_target,
                "change": r.change,
            }
            for r in self.diff
        ]
        return pd.DataFrame(rows, columns=["model", "before", "after", "deploys_as", "change"])


def _copy_text(copy: bool | None) -> str:
    return "" if copy is None else f"copy={'true' if copy else 'false'}"


def show_settings(env: Environment) -> SettingsView:
    """Read and validate the environment's dynamic settings."""
    store: SettingsStore = env.settings
    snapshot = store.read()
    return SettingsView(
        env=env.name,
        location=store.location,
        resource_version=snapshot.resource_version,
        settings=DynamicSettings.from_data(snapshot.data),
    )


def set_whitelist_entry(
    env: Environment, model: str, copy: bool, *, dry_run: bool = False
) -> WhitelistChange:
    """Whitelist ``model`` with ``{"copy": copy}`` (add or replace); see module docstring."""
    check_model_name(model)
    return _change_whitelist(env, model, lambda wl: wl.set(model, copy), dry_run=dry_run)


def remove_whitelist_entry(
    env: Environment, model: str, *, dry_run: bool = False
) -> WhitelistChange:
    """Take ``model`` off the whitelist; a model not on it is no change (nothing written)."""
    check_model_name(model)
    return _change_whitelist(env, model, lambda wl: wl.remove(model), dry_run=dry_run)


def _change_whitelist(
    env: Environment,
    model: str,
    edit: _Edit,
    *,
    dry_run: bool,
) -> WhitelistChange:
    """Apply ``edit`` to the whitelist as one conditional update, then check the effect.

    Algorithm: read and validate both settings (refuse a malformed current value before
    anything is written). Dry run: compute ``edit`` on what was read and stop. Otherwise
    hand the store a change function that re-validates whatever data it is given (each
    conflict retry sees fresh data), applies ``edit`` and, only if the whitelist changes,
    replaces the whitelist key with its canonical serialization; every other key is
    passed through untouched. The whitelist the final attempt started from is ``before``;
    the written data must parse to ``after``.
    """
    store: SettingsStore = env.settings
    snapshot = store.read()
    before = DynamicSettings.from_data(snapshot.data).whitelist
    if dry_run:
        after = edit(before)
        return _result(
            env,
            store,
            model,
            before,
            after,
            snapshot.resource_version,
            snapshot.resource_version,
            True,
        )

    def change(data: dict[str, str]) -> dict[str, str]:
        current = DynamicSettings.from_data(data).whitelist
        updated = edit(current)
        return data if updated == current else with_whitelist(data, updated)

    written = store.apply(change)
    before = DynamicSettings.from_data(written.previous_data).whitelist
    after = DynamicSettings.from_data(written.data).whitelist
    if after != edit(before):
        raise StepFailed(
            f"{store.location}: the whitelist written for {model!r} does not read back as "
            "intended; inspect the ConfigMap"
        )
    return _result(
        env,
        store,
        model,
        before,
        after,
        written.previous_resource_version,
        written.resource_version,
        False,
    )


def _result(
    env: Environment,
    store: SettingsStore,
    model: str,
    before: Whitelist,
    after: Whitelist,
    rv_before: str,
    rv_after: str,
    dry_run: bool,
) -> WhitelistChange:
    return WhitelistChange(
        env=env.name,
        location=store.location,
        model=model,
        before=before,
        after=after,
        resource_version_before=rv_before,
        resource_version_after=rv_after,
        dry_run=dry_run,
        diff=diff_whitelists(before, after),
    )


def check_entry_kept(env: Environment, model: str, copy: bool, *, waiting_for: str = "") -> None:
    """Re-read the whitelist: StepFailed, naming the entry, unless it still holds
    ``{model: {"copy": copy}}``.

    Every step that waits after writing its entry calls this while and after it waits: a
    concurrent ``kubectl edit`` (which patches without a resourceVersion) can remove the
    entry, and the platform's automation then never deploys it, or deploys something else.
    """
    store: SettingsStore = env.settings
    whitelist = DynamicSettings.from_data(store.read().data).whitelist
    problem = lost_entry_problem(whitelist, model, copy)
    if problem is not None:
        during = f" while waiting for {waiting_for}" if waiting_for else ""
        raise StepFailed(
            f"{store.location}: {problem}{during}; do not `kubectl edit` that key (use "
            f"`zoo-ops whitelist edit`), then rerun the step"
        )


def entry_guard(
    env: Environment,
    model: str,
    copy: bool,
    *,
    waiting_for: str = "",
    every_s: float = 1.0,
) -> Callable[[], None]:
    """:func:`check_entry_kept` for a polling wait: call it on every poll; it re-reads the
    settings at most once every ``every_s`` seconds (monotonic clock), so a wait that
    polls the database often does not hammer the ConfigMap."""
    import time

    last = [float("-inf")]

    def guard() -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            check_entry_kept(env, model, copy, waiting_for=waiting_for)

    return guard
