"""What a migration leaves in the executed notebook, for 03_migrate and 04_revert alike:
its progress bar (the engine's progress events rendered by tqdm) and its ``affected``
record (inline rows, or a parquet file beside the notebook).

A parquet record is ``{"path": "NAME-affected.parquet", "rows": N, "sha256": HEX}``: the
path is relative to the notebook's folder, so a trail that is moved or copied elsewhere
keeps reading its own files; :func:`read_affected` resolves it and refuses a file whose
sha256 differs. Older records hold an absolute path, which is still read (and, when that
file is gone, the file of the same name beside the notebook).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from zoo_ops.errors import BadInput
from zoo_ops.migration.engine import (
    MigrationProgress,
    MigrationResult,
)


class TqdmProgress:
    """Renders the engine's progress events as a tqdm bar of rows, one bar per run: what
    the executed notebook shows while a migration runs (text bar, as before)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def __call__(self, event: MigrationProgress) -> None:
        if event.kind == "start":
            plan = event.plan
            self.bar = _tqdm()(
                # stdout: progress is not an error (a notebook shows stderr as one)
                file=sys.stdout,
                total=event.total or None,
                unit="rows",
                desc=f"{plan.direction} {plan.source_version_id}->{plan.target_version_id}",
            )
        elif self.bar is not None and event.kind == "batch":
            self.bar.update(event.moved)
        elif self.bar is not None and event.kind == "end":
            self.bar.close()
            self.bar = None


def _tqdm() -> Any:
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        # Without ipywidgets tqdm.auto falls back to its text bar, which is what the
        # executed notebook should keep; its warning about that is noise in the trail.
        warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm

    return tqdm


def affected_record(
    result: MigrationResult, *, inline_limit: int, beside: Path | None
) -> tuple[Any, int]:
    """The moved rows for the ``affected`` scrap: inline up to ``inline_limit`` rows, else
    a parquet file beside the executed notebook, recorded by path, row count and sha256."""
    count = result.would_move if result.dry_run else result.moved_count
    if result.dry_run:
        return result.sample_frame(), count
    if count <= inline_limit:
        return result.affected_frame(), count
    if beside is None:
        raise BadInput(
            f"{count} affected rows exceed affected_inline_limit={inline_limit} and this run has "
            "no executed notebook path to write the parquet file beside; use `zoo-ops run`"
        )
    path = beside.with_name(beside.stem + "-affected.parquet")
    rows, sha256 = result.write_affected_parquet(path)
    return {"path": path.name, "rows": rows, "sha256": sha256}, rows


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def affected_file(reference: dict[str, Any], notebook: Path) -> Path:
    """Where a parquet reference points: relative to the notebook's folder; an absolute
    path as written (an older trail), else the file of that name beside the notebook."""
    recorded = Path(str(reference["path"]))
    if not recorded.is_absolute():
        return notebook.parent / recorded
    if recorded.exists():
        return recorded
    return notebook.parent / recorded.name


def read_affected(affected: Any, notebook: Path) -> pd.DataFrame:
    """The rows an ``affected`` (or ``reverted``) scrap records: the table itself, or the
    parquet file it references, checked against the recorded sha256 (BadInput, one line,
    when missing or different)."""
    if isinstance(affected, pd.DataFrame):
        return affected
    if isinstance(affected, dict) and {"path", "sha256"} <= set(affected):
        path = affected_file(affected, notebook)
        if not path.is_file():
            raise BadInput(
                f"{notebook}: its affected rows file {path} is missing; restore it from the trail"
            )
        if file_sha256(path) != affected["sha256"]:
            raise BadInput(
                f"{notebook}: {path} does not match the sha256 recorded in the run; refusing"
            )
        return pd.read_parquet(path)
    raise BadInput(
        f"{notebook}: the affected scrap is neither a table nor a parquet reference; refusing"
    )
