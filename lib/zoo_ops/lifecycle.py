"""Whether this process's run should stop: one flag, set from outside, read at safe points.

``zoo-ops run`` asks its kernel to stop (an operator's Ctrl-C, SIGTERM, SIGHUP) and the
kernel's watchdog notices when ``zoo-ops run`` itself is gone; both call
:func:`request_stop`. Long-running work -- the migration engine before each batch --
calls :func:`check_stop`, which raises :class:`~zoo_ops.errors.Interrupted` at that safe
point, so a stopped run never leaves a batch half done and never starts a new one.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from zoo_ops.errors import Interrupted

# Set by `zoo-ops run` in the kernel's environment: the run it reserved, and the file whose
# appearance asks the kernel to stop (its text is the reason).
RUN_ID_ENV = "ZOO_OPS_RUN_ID"
STOP_FILE_ENV = "ZOO_OPS_STOP_FILE"
# ... and where the executed notebook goes (the run row names it).
EXECUTED_PATH_ENV = "ZOO_OPS_EXECUTED_PATH"

PARENT_DIED = "zoo-ops run died"

_stop = threading.Event()
_reason: list[str] = []
_parent: list[int] = []


def request_stop(reason: str) -> None:
    """Ask the run in this process to stop at its next safe point (idempotent)."""
    if not _stop.is_set():
        _reason.append(reason)
        _stop.set()


def stop_requested() -> bool:
    """Whether this run should stop. Besides the flag, it looks (one stat, no waiting)
    for the stop file ``zoo-ops run`` writes and for the death of the watched parent, so
    a stop takes effect at the very next safe point, not at the watchdog's next poll."""
    if not _stop.is_set():
        if _parent and os.getppid() != _parent[0]:
            request_stop(PARENT_DIED)
        elif _parent and os.environ.get(RUN_ID_ENV) and (why := parent_stopping(_parent[0])):
            request_stop(why)
        else:
            stop_file = os.environ.get(STOP_FILE_ENV)
            if stop_file and os.path.exists(stop_file):
                request_stop(read_stop_reason(stop_file))
    return _stop.is_set()


# A signal zoo-ops run is about to take (pending), or the kernel's flag of a process
# already exiting: the kernel stops then, not when the CLI gets the CPU to say so.
_STOP_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PF_EXITING = 0x4  # include/linux/sched.h


def parent_stopping(pid: int) -> str | None:
    """Why ``zoo-ops run`` (process ``pid``) is going, read from Linux's /proc: a pending
    SIGKILL, SIGTERM, SIGINT or SIGHUP (``SigPnd``/``ShdPnd`` of ``/proc/PID/status``), or
    the exiting flag of ``/proc/PID/stat``; None when neither (or no /proc).

    Under load the CLI may wait milliseconds for the CPU before its handler writes the
    stop file or before it dies; batches take a millisecond. Looking at the signal itself
    makes the kernel stop within one batch of the signal's delivery.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            flags = int(fh.read().rsplit(b")", 1)[1].split()[6])  # field 9: flags
        if flags & _PF_EXITING:
            return "zoo-ops run is exiting"
        with open(f"/proc/{pid}/status", "rb") as fh:
            status = fh.read()
    except (OSError, ValueError, IndexError):
        return None
    pending = 0
    for line in status.splitlines():
        if line.startswith((b"SigPnd:", b"ShdPnd:")):
            pending |= int(line.split()[1], 16)
    for sig in _STOP_SIGNALS:
        if pending & (1 << (sig - 1)):
            return f"{sig.name} to zoo-ops run"
    return None


def read_stop_reason(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError:
        text = ""
    return text or "stop requested by zoo-ops run"


def watch_parent(pid: int) -> None:
    """This process (a kernel) stops its run when ``pid`` is no longer its parent."""
    _parent[:] = [pid]


def stop_reason() -> str | None:
    return _reason[0] if _reason else None


def check_stop() -> None:
    """Raise Interrupted when a stop was requested: call it only where stopping is safe."""
    if stop_requested():
        raise Interrupted(f"run stopped at a safe point: {stop_reason()}; rerun to resume")


def reset() -> None:
    """Forget a stop request (a new run in the same kernel; tests)."""
    _stop.clear()
    _reason.clear()


# --- the kernel side: is a cell running, and who closes the run when the kernel must go --

_busy = threading.Event()
_abandon: list[Callable[[str], None]] = []


def cell_started() -> None:
    _busy.set()


def cell_finished() -> None:
    _busy.clear()


def cell_running() -> bool:
    """Whether the kernel is executing a cell (the watchdog interrupts only then)."""
    return _busy.is_set()


def on_abandon(callback: Callable[[str], None] | None) -> None:
    """Set (None: clear) what records the current run as interrupted when the kernel must
    exit on its own (``zoo-ops run`` died): called from the watchdog thread."""
    _abandon.clear()
    if callback is not None:
        _abandon.append(callback)


def abandon(reason: str) -> None:
    for callback in list(_abandon):
        callback(reason)
