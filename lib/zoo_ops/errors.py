"""The error hierarchy: every failure a user sees is one line saying what and what to do.

Exit codes follow DESIGN §6: 2 for bad usage or bad input (nothing was changed),
1 for a step that failed while running.
"""

from __future__ import annotations

from collections.abc import Callable

# Filters every ZooOpsError message goes through when it is made. This module is the
# lowest layer and imports nothing of zoo-ops: the layer that knows secret values
# installs its redaction here (zoo_ops.adapters.known_secrets, on import).
_MESSAGE_FILTERS: list[Callable[[str], str]] = []


def add_message_filter(message_filter: Callable[[str], str]) -> None:
    """Apply ``message_filter`` to the message of every ZooOpsError made from now on."""
    if message_filter not in _MESSAGE_FILTERS:
        _MESSAGE_FILTERS.append(message_filter)


class ZooOpsError(Exception):
    """Base of every error zoo-ops raises on purpose. ``str(err)`` is one line, and holds
    no secret value the process knows (the message filters run on it)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        # One line: a multi-line message would be cut in a CLI or a notebook error box.
        text = " ".join(str(message).split())
        for message_filter in _MESSAGE_FILTERS:
            text = message_filter(text)
        super().__init__(text)


class BadInput(ZooOpsError):
    """The caller gave something invalid; nothing was changed."""

    exit_code = 2


class ConfigError(BadInput):
    """zoo_ops.toml, an environment or a ${VAR} is wrong."""


class NotFound(BadInput):
    """A model, version, user, run or file named by the caller does not exist."""


class SettingsError(BadInput):
    """A dynamic setting (whitelist, automation flag) is malformed."""


class TrussError(BadInput):
    """A truss package is unreadable or malformed; the message names the file."""


class GateClosed(BadInput):
    """A safety gate (staging-before-prod, protected env, retire guards) refused the step."""


class StepFailed(ZooOpsError):
    """A step ran and did not reach its goal (a deploy failed, a comparison mismatched)."""

    exit_code = 1


class DatabaseUnreachable(Exception):  # noqa: N818 - named for what the operator meets
    """An environment's database did not accept a connection (refused, unknown host, wrong
    port, a SQLite file that cannot be opened). ``str(err)`` is one line naming the
    redacted URL; ``url`` is that URL, so the CLI can name the environment.

    It replaces the driver's connect error and is deliberately *not* a ZooOpsError: it
    travels where the driver's error travelled, so that code reading a ZooOpsError as
    "no such run" or "a step failed" (and acting on it) never mistakes a database that
    is down for an answer. The CLI's one error handler prints it (exit 1).
    """

    exit_code = 1

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(" ".join(str(message).split()))
        self.url = url


class ConflictError(StepFailed):
    """A concurrent writer kept winning (resourceVersion conflicts, a held lock)."""


class LockHeld(ConflictError):
    """Another run holds the per-(environment, model) lock."""

    exit_code = 2


class Interrupted(StepFailed):
    """The operator (or the death of ``zoo-ops run``) stopped the run at a safe point.

    Raised between batches, never inside one: everything committed is journaled, and a
    rerun resumes. The CLI exits 128 + the signal's number (130 for SIGINT).
    """

    exit_code = 130


class TrailUnwritable(BadInput):
    """The audit trail's folder cannot take the executed notebook (permissions, free
    space): the run is refused before anything changes."""


class CapacityRefused(StepFailed):
    """The cluster cannot hold what the step would start (old + copy + new per accelerator
    type); refused before any write, so nothing changed: exit 2 like bad input."""

    exit_code = 2
