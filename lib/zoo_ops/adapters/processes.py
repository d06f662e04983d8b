"""Which process is this, and is a recorded one still alive (host + pid + start time).

A pid alone names a process only while it lives: the kernel recycles pids. The start
time in ``/proc/PID/stat`` (field 22, clock ticks since boot) tells a recycled pid from
the process that was recorded, so a run row or a lock naming ``(host, pid, start)`` is
judged alive only while *that* process exists.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessId:
    """One process, named so that it can be checked later: host, pid and start time."""

    host: str
    pid: int
    started: int | None  # /proc/PID/stat starttime (clock ticks since boot); None: unknown


def hostname() -> str:
    return socket.gethostname()


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name), or None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot), None when unknown."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # field 22 of the full line
    except (IndexError, ValueError):
        return None


def this_process() -> ProcessId:
    pid = os.getpid()
    return ProcessId(hostname(), pid, process_start(pid))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat_fields(pid)
    if fields is None:
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")
    return fields[0] not in ("Z", "X")  # zombie or dead: gone, waiting to be reaped


def process_alive(host: str | None, pid: int | None, started: int | None) -> bool:
    """Whether the recorded process still runs.

    On another host nothing can be checked: True (never declare a live run dead). On this
    host: the pid exists, is not a zombie, and -- when a start time was recorded -- started
    at that time (a recycled pid is another process).
    """
    if pid is None:
        return False
    if host is not None and host != hostname():
        return True
    if not pid_alive(pid):
        return False
    if started is None:
        return True
    now = process_start(pid)
    return now is None or now == started
