"""This machine as the one node the in-process runtime serves on.

CPUs from ``os.cpu_count()`` (the affinity mask when the OS has one), memory from psutil
when installed, else ``/proc/meminfo`` (MemTotal, MemAvailable). No GPU: the in-process
runtime serves every model on the CPU, so a GPU request is a warning, and because
nothing is reserved locally, a shortfall is a warning too.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from zoo_ops.domain.capacity import Amounts, CapacityRequest, NodeRoom

NO_GPU_NOTE = "warning: no GPU locally; the in-process runtime serves this model on the CPU"


def cpu_millicores() -> int:
    """The CPUs this process may run on, in millicores."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    return count * 1000


def memory_total_available() -> tuple[int, int]:
    """(total, available) bytes of memory; (0, 0) when neither source answers."""
    try:
        import psutil  # optional: present in most installs (ipykernel uses it)

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        pass
    return parse_meminfo(_read_meminfo())


def _read_meminfo() -> str:
    try:
        return Path("/proc/meminfo").read_text()
    except OSError:
        return ""


def parse_meminfo(text: str) -> tuple[int, int]:
    """(MemTotal, MemAvailable) in bytes from ``/proc/meminfo`` text (values in kB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * 1024
    total = values.get("MemTotal", 0)
    return total, values.get("MemAvailable", values.get("MemFree", total))


class LocalMachine:
    """The :class:`~zoo_ops.adapters.cluster.Cluster` of a ``serving = "local"`` env."""

    enforced = False
    no_gpu_note = NO_GPU_NOTE

    def __init__(self, artifacts_dir: Path) -> None:
        self.artifacts_dir = artifacts_dir
        self.hostname = socket.gethostname() or "localhost"

    @property
    def location(self) -> str:
        return f"local machine {self.hostname}"

    def nodes(self) -> list[NodeRoom]:
        total, available = memory_total_available()
        cpu = cpu_millicores()
        return [
            NodeRoom(
                name=self.hostname,
                accelerator="",
                allocatable=Amounts(cpu, total, 0),
                requested=Amounts(0, max(total - available, 0), 0),
            )
        ]

    def version_footprint(self, version_id: str) -> CapacityRequest | None:
        """A truss version's resources from its artifact's config.yaml; None for legacy."""
        from zoo_ops.adapters.truss_runtime import read_truss
        from zoo_ops.errors import TrussError

        folder = self.artifacts_dir / version_id
        if not (folder / "config.yaml").is_file():
            return None
        try:
            return CapacityRequest.from_resources(read_truss(folder).config.resources)
        except TrussError:
            return None
