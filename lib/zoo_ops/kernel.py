"""The `zoo-ops` Jupyter kernel that runbooks name in their metadata.

Its kernelspec says ``python``, which jupyter_client replaces by the interpreter that
starts the kernel; so a runbook runs in the environment zoo-ops is installed in, even
when the user has a ``python3`` kernelspec of their own pointing at another
interpreter. A regular install puts the kernelspec in ``PREFIX/share/jupyter/kernels``;
an editable install does not carry data files, so `zoo-ops demo`, `zoo-ops run` and
the test suite install it into ``sys.prefix`` when it is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

KERNEL_NAME = "zoo-ops"
KERNELSPEC_DIR = Path(__file__).resolve().parent / "kernelspec"


def ensure_kernel() -> str:
    """The ``zoo-ops`` kernelspec's name, installing it into this environment if missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        try:
            manager.install_kernel_spec(str(KERNELSPEC_DIR), KERNEL_NAME, prefix=sys.prefix)
        except FileExistsError:
            # Another process (a parallel run, a test worker) installed it just now.
            manager.get_kernel_spec(KERNEL_NAME)
    return KERNEL_NAME
