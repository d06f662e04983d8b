"""What a migration leaves in the executed notebook, for 03_migrate and 04_revert alike:
its progress bar (the engine's progress events rendered by tqdm) and its ``affected``
record (inline rows, or a parquet file beside the notebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    return {"path": str(path), "rows": rows, "sha256": sha256}, rows
