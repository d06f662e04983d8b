"""Is there room for an executed notebook? Checked before a run reserves anything."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from zoo_ops.errors import TrailUnwritable

# The trail's folder must have this much free space before a run starts; the variable
# overrides it (tests, and a deliberately small trail volume).
TRAIL_MIN_FREE_BYTES = 16 * 1024 * 1024
TRAIL_MIN_FREE_ENV = "ZOO_OPS_TRAIL_MIN_FREE_BYTES"


def check_trail_writable(folder: Path) -> None:
    """Prove ``folder`` can take an executed notebook: it exists (created if missing),
    a probe file can be created and removed, and it has ``TRAIL_MIN_FREE_BYTES`` free.
    Raises TrailUnwritable (exit 2) otherwise; changes nothing else."""
    minimum = TRAIL_MIN_FREE_BYTES
    if os.environ.get(TRAIL_MIN_FREE_ENV):
        try:
            minimum = int(os.environ[TRAIL_MIN_FREE_ENV])
        except ValueError as exc:
            raise TrailUnwritable(f"{TRAIL_MIN_FREE_ENV} must be a number of bytes") from exc
    probe = folder / f".zoo-ops-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b"zoo-ops")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise TrailUnwritable(
            f"the trail folder {folder} is not writable ({exc.strerror or exc}); "
            "fix its permissions or space, then rerun"
        ) from exc
    if free < minimum:
        raise TrailUnwritable(
            f"the trail folder {folder} has {free // 1024} KiB free, less than the "
            f"{minimum // 1024} KiB a run needs; free some space, then rerun"
        )
