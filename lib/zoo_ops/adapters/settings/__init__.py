"""Settings stores: where the dynamic-settings ConfigMap's ``data`` lives (DESIGN §4).

Two implementations behind one protocol, chosen by the scheme of the environment's
``settings`` value (the choice is made in :mod:`zoo_ops.adapters.wiring`):

- ``file:PATH``  -> :class:`~zoo_ops.adapters.settings.local_file.LocalConfigMapFile`
- ``kubernetes`` -> :class:`~zoo_ops.adapters.settings.kubernetes.KubernetesConfigMap`

Both give the same guarantees: :meth:`SettingsStore.apply` is a conditional update of ONE
change, optimistic on the ``resourceVersion`` that was read, re-read and re-applied on
conflict, never touching keys the change did not touch, and read back after writing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity import wait_random_exponential as full_jitter

from zoo_ops.domain.bounded_yaml import one_line, value_problem
from zoo_ops.errors import ConfigError, ConflictError, SettingsError, StepFailed, ZooOpsError

Change = Callable[[dict[str, str]], dict[str, str]]

DEFAULT_MAX_ATTEMPTS = 60
_BACKOFF_FIRST_S = 0.005
_BACKOFF_CAP_S = 0.25


@dataclass(frozen=True)
class SettingsSnapshot:
    """The ConfigMap's ``data`` as read or written, and the ``resourceVersion`` it had.

    On what :meth:`SettingsStore.apply` returns, ``previous_resource_version`` and
    ``previous_data`` are the version and data the change was applied to (the final
    attempt's read; equal to the current ones when the change was a no-op and nothing was
    written). On a plain read they are empty.
    """

    data: Mapping[str, str] = field(default_factory=dict)
    resource_version: str = ""
    previous_resource_version: str = ""
    previous_data: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class SettingsStore(Protocol):
    """Read and conditionally update the dynamic-settings ConfigMap's data."""

    @property
    def location(self) -> str:
        """Where the settings live, for messages (a path, or context/namespace/name)."""
        ...

    def read(self) -> SettingsSnapshot: ...

    def apply(self, change: Change) -> SettingsSnapshot:
        """Apply ``change`` (full data in -> full data out) conditionally; see ConditionalStore."""
        ...


class WriteConflict(Exception):
    """Raised by ``_replace`` when the stored object is no longer the one that was read."""


class ConditionalStore:
    """The optimistic read -> change -> conditional-write loop shared by both stores.

    Subclasses provide ``_read_state() -> (snapshot, token)`` (token: whatever the write
    needs, e.g. the full object that was read) and ``_replace(token, snapshot, new_data)
    -> new resourceVersion``, which must raise :class:`WriteConflict` unless the stored
    object is still the one read; optionally ``_attempt_guard()``.
    """

    location: str = ""

    def __init__(self, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1")
        self.max_attempts = max_attempts

    # -- to implement ------------------------------------------------------------------

    def _read_state(self) -> tuple[SettingsSnapshot, object]:
        raise NotImplementedError

    def _replace(self, token: object, snapshot: SettingsSnapshot, new_data: dict[str, str]) -> str:
        raise NotImplementedError

    def _attempt_guard(self) -> AbstractContextManager[object]:
        """Held around one read -> change -> write attempt; none by default (optimistic).

        A store whose writers can serialise cheaply (a local lock) holds it here, so its
        own writers never conflict and the precondition only catches outside edits.
        """
        return nullcontext()

    # -- the protocol ------------------------------------------------------------------

    def read(self) -> SettingsSnapshot:
        return self._read_checked()[0]

    def _read_checked(self) -> tuple[SettingsSnapshot, object]:
        """``_read_state`` whose data is text: a lone surrogate (a ``\\ud800`` JSON or YAML
        escape) would crash the first print of it, so it is refused here, in one line."""
        snapshot, token = self._read_state()
        for key, value in snapshot.data.items():
            for what in (key, value):
                if isinstance(what, str) and value_problem(what) is not None:
                    raise SettingsError(
                        f"{self.location}: data key {one_line(repr(key))} holds a string that "
                        "is not valid UTF-8 text (a lone surrogate); fix the ConfigMap"
                    )
        return snapshot, token

    def apply(self, change: Change) -> SettingsSnapshot:
        """Apply one change conditionally on the resourceVersion read; retry on conflict.

        Algorithm: read (data, rv); ``new = change(copy of data)``; if ``new == data``
        return the read snapshot without writing (no resourceVersion bump). Otherwise
        replace the WHOLE data conditional on rv — a merge onto a newer object would apply
        a change computed from a stale base. On conflict re-read and re-run ``change`` on
        the fresh data (so other writers' keys and entries survive), with jittered
        exponential backoff, at most ``max_attempts`` times, then :class:`ConflictError`.
        After a write, read back: at the written rv the data must be exactly ``new``; at a
        later rv ``change`` must be a no-op on what is there (our effect survived).
        Exceptions raised by ``change`` (e.g. a malformed value) propagate; nothing is
        written.
        """
        # Full jitter: before attempt n+1 sleep uniform(0, min(first * 2**(n-1), cap)).
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=full_jitter(multiplier=_BACKOFF_FIRST_S, max=_BACKOFF_CAP_S),
            retry=retry_if_exception_type(WriteConflict),
        )
        try:
            return retrying(self._apply_once, change)
        except RetryError:
            raise ConflictError(
                f"{self.location}: gave up after {self.max_attempts} conflicting writes "
                "(other writers kept changing the ConfigMap); retry the command"
            ) from None

    def _apply_once(self, change: Change) -> SettingsSnapshot:
        """One read -> change -> conditional write -> read back; WriteConflict to retry."""
        with self._attempt_guard():
            snapshot, token = self._read_checked()
            base = dict(snapshot.data)
            new = change(dict(base))
            _check_data(new)
            if new == base:
                return replace(
                    snapshot,
                    previous_resource_version=snapshot.resource_version,
                    previous_data=dict(base),
                )
            written_rv = self._replace(token, snapshot, new)
        written = SettingsSnapshot(
            data=dict(new),
            resource_version=written_rv,
            previous_resource_version=snapshot.resource_version,
            previous_data=base,
        )
        self._verify(written, change)
        return written

    def _verify(self, written: SettingsSnapshot, change: Change) -> None:
        """Read back after a write and check the change's effect is there."""
        back = self.read()
        if back.resource_version == written.resource_version:
            if dict(back.data) != dict(written.data):
                raise StepFailed(
                    f"{self.location}: read back at resourceVersion {written.resource_version} "
                    "differs from what was written; inspect the ConfigMap"
                )
            return
        try:
            survived = change(dict(back.data)) == dict(back.data)
        except ZooOpsError as exc:
            raise ConflictError(
                f"{self.location}: wrote resourceVersion {written.resource_version} but a later "
                f"write ({back.resource_version}) left settings zoo-ops cannot read: {exc}"
            ) from None
        if not survived:
            raise ConflictError(
                f"{self.location}: wrote resourceVersion {written.resource_version} but a later "
                f"write ({back.resource_version}) undid the change; re-read and retry"
            )


def _check_data(data: object) -> None:
    """A change must return ConfigMap data: a dict of str -> str."""
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise TypeError("a settings change must return a dict[str, str]")
