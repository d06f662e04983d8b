"""Whether this process's run should stop: one flag, set from outside, read at safe points.

``zoo-ops run`` asks its kernel to stop (an operator's Ctrl-C, SIGTERM, SIGHUP) and the
kernel's watchdog notices when ``zoo-ops run`` itself is gone; both call
:func:`request_stop`. Long-running work -- the migration engine before each batch --
calls :func:`check_stop`, which raises :class:`~zoo_ops.errors.Interrupted` at that safe
point, so a stopped run never leaves a batch half done and never starts a new one.
"""

from __future__ import annotations

import threading

from zoo_ops.errors import Interrupted

_stop = threading.Event()
_reason: list[str] = []


def request_stop(reason: str) -> None:
    """Ask the run in this process to stop at its next safe point (idempotent)."""
    if not _stop.is_set():
        _reason.append(reason)
        _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def stop_reason() -> str | None:
    return _reason[0] if _reason else None


def check_stop() -> None:
    """Raise Interrupted when a stop was requested: call it only where stopping is safe."""
    if _stop.is_set():
        raise Interrupted(f"run stopped at a safe point: {stop_reason()}; rerun to resume")


def reset() -> None:
    """Forget a stop request (a new run in the same kernel; tests)."""
    _stop.clear()
    _reason.clear()
