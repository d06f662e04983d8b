"""The `zoo-ops` kernel: ipykernel, plus a watchdog so the kernel never outlives its run.

``python -m zoo_ops.kernel_launcher -f CONNECTION_FILE`` starts a daemon thread, then
ipykernel's launcher. Every :data:`POLL_S` the watchdog checks

* **the parent**: when the process that started the kernel (``zoo-ops run``, papermill,
  a Jupyter server) is gone -- ``os.getppid()`` differs from the parent at start; a
  container's subreaper is not pid 1, so "ppid == 1" is not the test -- it asks the run
  to stop (:func:`zoo_ops.lifecycle.request_stop`), gives the running cell
  :data:`ORPHAN_GRACE_S` to reach a safe point, records the run ``interrupted`` if it is
  still open, and exits: the kernel is gone within 2 s and starts no new batch;
* **a stop request**: the file named by ``$ZOO_OPS_STOP_FILE`` (``zoo-ops run`` writes
  it on SIGINT, SIGTERM or SIGHUP; its text is the reason) -> ``request_stop``; a cell
  still running :data:`INTERRUPT_AFTER_S` later (one that has no safe point, e.g. not
  the migration engine) gets a KeyboardInterrupt.

The start of every cell is a safe point too: once a stop was requested, a cell that
starts runs :func:`zoo_ops.lifecycle.check_stop` before its first line (an IPython input
transformer prepends the call), so a stopped run executes no further cell -- it does not
walk through the deploy and the new application on its way to the engine's next check.
"""

from __future__ import annotations

import _thread
import os
import sys
import threading
import time
from typing import Any

from zoo_ops import lifecycle

POLL_S = 0.1
ORPHAN_GRACE_S = 1.2
ABANDON_WRITE_S = 0.5
INTERRUPT_AFTER_S = 1.5
ORPHANED_REASON = lifecycle.PARENT_DIED
ORPHAN_EXIT_CODE = 3


class Watchdog:
    def __init__(self, parent: int) -> None:
        self.parent = parent
        self.stop_since: float | None = None
        self.last_interrupt = 0.0
        self.hooked = False

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="zoo-ops-watchdog", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        while True:
            time.sleep(POLL_S)
            try:
                if self.tick():
                    return
            except Exception:  # noqa: BLE001 - the watchdog must outlive any surprise
                pass

    def tick(self) -> bool:
        """One check; True when the kernel is going away."""
        self._hook_cells()
        if os.getppid() != self.parent:
            self.orphaned()
            return True
        now = time.monotonic()
        if self.stop_since is None and lifecycle.stop_requested():  # reads the stop file
            self.stop_since = now
        if (
            self.stop_since is not None
            and lifecycle.cell_running()
            and now - self.stop_since >= INTERRUPT_AFTER_S
            and now - self.last_interrupt >= INTERRUPT_AFTER_S
        ):
            self.last_interrupt = now
            _thread.interrupt_main()
        return False

    def orphaned(self) -> None:
        lifecycle.request_stop(ORPHANED_REASON)
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while lifecycle.cell_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        writer = threading.Thread(target=lifecycle.abandon, args=(ORPHANED_REASON,), daemon=True)
        writer.start()
        writer.join(ABANDON_WRITE_S)
        os._exit(ORPHAN_EXIT_CODE)

    def _hook_cells(self) -> None:
        """Once IPython's shell exists, track whether a cell is running."""
        if self.hooked or "IPython.core.interactiveshell" not in sys.modules:
            return
        from IPython.core.interactiveshell import InteractiveShell

        if not InteractiveShell.initialized():
            return
        events = InteractiveShell.instance().events

        def started(*_: Any) -> None:
            lifecycle.cell_started()

        def finished(*_: Any) -> None:
            lifecycle.cell_finished()

        events.register("pre_run_cell", started)
        events.register("post_run_cell", finished)
        InteractiveShell.instance().input_transformers_post.append(stop_before_cell)
        self.hooked = True


STOP_CHECK_LINE = "__import__('zoo_ops.lifecycle').lifecycle.check_stop()\n"


def stop_before_cell(lines: list[str]) -> list[str]:
    """An IPython input transformer: a cell that starts after a stop request first raises
    :class:`~zoo_ops.errors.Interrupted` (nothing of it runs); otherwise unchanged."""
    if lifecycle.stop_requested():
        return [STOP_CHECK_LINE, *lines]
    return lines


def main() -> None:
    parent = os.getppid()
    lifecycle.watch_parent(parent)
    Watchdog(parent).start()
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # as ipykernel_launcher: the cwd is not an import root
    from ipykernel import kernelapp

    if os.name == "posix":
        # ipykernel's own parent poller exits the kernel (os._exit, within a second) when
        # the parent changes -- racing the watchdog, which first lets the run record its
        # end. The watchdog does that job here.
        kernelapp.IPKernelApp.init_poller = _no_poller  # type: ignore[method-assign]
    kernelapp.launch_new_instance()


def _no_poller(self: Any) -> None:
    self.poller = None


if __name__ == "__main__":
    main()
