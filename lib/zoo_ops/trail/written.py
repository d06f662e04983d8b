"""Trail notebooks written by zoo-ops itself, not executed by a kernel: the record of a
CLI write (``whitelist set``, ``reconcile``: :mod:`zoo_ops.commands.recorded_write`) and
a recovered run (:mod:`zoo_ops.commands.recover`).

Such a notebook has the shape of an executed runbook -- the ``zoo-ops`` kernelspec,
papermill's metadata, tables as ``display_data`` and scraps as scrapbook outputs -- so
every trail reader (status, history, report, the gate) reads it as it reads the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from zoo_ops.tables import table_html

KERNELSPEC = {"display_name": "zoo-ops (Python 3)", "language": "python", "name": "zoo-ops"}


def iso(at: datetime | None) -> str | None:
    """``at`` in UTC to the second (papermill's ``start_time``/``end_time`` form)."""
    return None if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


def table_output(frame: pd.DataFrame) -> Any:
    """A table as a cell shows it: plain text and HTML, without the pandas index."""
    import nbformat

    return nbformat.v4.new_output(
        "display_data",
        data={
            "text/plain": frame.to_string(index=False),
            "text/html": table_html(frame),
        },
    )


def written_notebook(
    cells: Sequence[Any], *, papermill: dict[str, Any], zoo_ops: dict[str, Any]
) -> Any:
    """A notebook of ``cells`` with the ``zoo-ops`` kernelspec and the given papermill and
    zoo_ops metadata (``zoo_ops`` says why no kernel ran it)."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["papermill"] = papermill
    nb.metadata["zoo_ops"] = zoo_ops
    return nb


def notebook_text(nb: Any) -> str:
    """The text of ``nb``'s file, as ``nbformat.write`` writes it (ending in a newline)."""
    import nbformat

    text = str(nbformat.writes(nb))
    return text if text.endswith("\n") else text + "\n"
