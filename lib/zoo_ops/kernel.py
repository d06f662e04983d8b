"""The `zoo-ops` Jupyter kernel that runbooks name in their metadata.

Its kernelspec says ``python``, which jupyter_client replaces by the interpreter that
starts the kernel; so a runbook runs in the environment zoo-ops is installed in, even
when the user has a ``python3`` kernelspec of their own pointing at another
interpreter. A regular install puts the kernelspec in ``PREFIX/share/jupyter/kernels``;
an editable install does not carry data files, so `zoo-ops demo`, `zoo-ops run` and
the test suite install it into ``sys.prefix`` when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

KERNEL_NAME = "zoo-ops"
KERNELSPEC_DIR = Path(__file__).resolve().parent / "kernelspec"


def ensure_kernel() -> str:
    """The ``zoo-ops`` kernelspec's name, installing it into this environment if missing.

    An installed spec whose ``argv`` differs from this version's (an older zoo-ops that
    started ``ipykernel_launcher`` without the watchdog) is replaced.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    wanted = json.loads((KERNELSPEC_DIR / "kernel.json").read_text())["argv"]
    manager = KernelSpecManager()
    try:
        installed = manager.get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        installed = None
    if installed is not None and _argv(installed.argv) == _argv(wanted):
        return KERNEL_NAME
    try:
        manager.install_kernel_spec(
            str(KERNELSPEC_DIR), KERNEL_NAME, prefix=sys.prefix, replace=installed is not None
        )
    except (FileExistsError, OSError):
        # Another process (a parallel run, a test worker) is installing it right now: its
        # folder exists before its kernel.json is copied in, so wait for the spec to show.
        spec = _installed_by_another(manager)
        if _argv(spec.argv) != _argv(wanted):
            raise
    return KERNEL_NAME


def _installed_by_another(manager: Any) -> Any:
    """The kernelspec another process is installing, once its copy is complete (≤5 s)."""
    from jupyter_client.kernelspec import NoSuchKernel
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    for attempt in Retrying(
        retry=retry_if_exception_type(NoSuchKernel),
        stop=stop_after_delay(5),
        wait=wait_fixed(0.05),
        reraise=True,
    ):
        with attempt:
            return manager.get_kernel_spec(KERNEL_NAME)
    raise AssertionError("unreachable")  # pragma: no cover - Retrying reraises


def _argv(argv: list[str]) -> list[str]:
    # jupyter_client writes the interpreter's path where the spec says "python".
    return ["python" if i == 0 else a for i, a in enumerate(argv)]


class LocalSocketKernelManager(AsyncKernelManager):
    """A kernel whose channels are Unix sockets in a private folder of its own.

    jupyter_client picks a TCP kernel's five ports by binding port 0 and releasing it;
    between that and the kernel's own bind, another process on the machine (a second
    ``zoo-ops run``, a test worker, a Jupyter server) can take the same port. The kernel
    then dies with "Address already in use" while its client, talking to the other
    kernel's socket, waits 60 s for an answer that never comes. Sockets named inside a
    folder created for this kernel alone cannot collide, and are not reachable from the
    network either. The folder goes with the kernel.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"
        # Short on purpose: a Unix socket's path is limited to 107 bytes.
        self.socket_dir = tempfile.mkdtemp(prefix="zoo-ops-kernel-")
        self.ip = os.path.join(self.socket_dir, "k")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]


KERNEL_MANAGER_CLASS = f"{__name__}.{LocalSocketKernelManager.__name__}"
