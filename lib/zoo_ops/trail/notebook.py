"""One executed runbook, read: its `run` scrap, scalar scraps, parameters, state.

This is the trail's one reader. Scraps are decoded from the notebook JSON directly, the
way scrapbook 0.5 does it (``Notebook._fetch_scraps``): outputs in cell order, later
scraps of a name replacing earlier ones, the payload checked against scrap schema v1,
``json`` and ``text`` payloads decoded as scrapbook's ``JsonEncoder``/``TextEncoder`` do.
Only scalar scraps are decoded here; tables (``pandas`` payloads) are read with scrapbook
by :func:`read_scraps`. A notebook that cannot be read, or that lacks the ``run`` scrap,
is an entry in state ``unreadable`` (or ``running``), never skipped silently.

A trail is a folder anyone can write to, so nothing in it is trusted: only a regular file
is opened (:func:`read_trail_bytes`: opened without blocking, then ``fstat``; a FIFO, a
device, a socket or a directory named ``*.ipynb`` is refused, never read) and at most
:data:`MAX_NOTEBOOK_BYTES` are read; every scrap a reader uses is checked against its
schema (:mod:`zoo_ops.domain.scrap_schema`) and a notebook holding one that does not
match is ``unreadable`` with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from json import JSONDecodeError
from pathlib import Path
from typing import Any

from zoo_ops.domain.scrap_schema import scrap_problem
from zoo_ops.errors import BadInput, NotFound
from zoo_ops.files import FileRefused, read_regular_bytes
from zoo_ops.trail.names import parse_trail_name

# The scalar scraps kept besides `run` (DESIGN §5): enough for status, history and the
# gate; anything else is read from the notebook itself.
INDEXED_SCRAPS = frozenset(
    {
        "truss_hash",
        "copy_model",
        "copy_version_id",
        "deployed",
        "oracle_id",
        "original_version_id",
        "candidate_version_id",
        "passed",
        "old_version_id",
        "new_version_id",
        "migration_id",
        "forward_run",
        "affected_count",
        "reverted_count",
        "remaining_on_old",
        "remaining_on_new",
        "deleted_version_id",
        "deleted_copy_versions",
    }
)

OK, RUNNING, UNREADABLE = "ok", "running", "unreadable"

_GLUE_PREFIX = "application/scrapbook.scrap"
_RECORD_PREFIX = "application/papermill.record"
_KNOWN_ENCODERS = frozenset({"json", "text", "pandas", "display"})
_DATA_TYPES = (dict, list, bool, str, int, float)

Fingerprint = tuple[int, int, int, int]

# The largest executed notebook read (inline `affected` tables of 100,000 rows stay far
# below it); a larger file is unreadable rather than a memory exhaustion.
MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024


class UnreadableNotebook(Exception):
    """The notebook is not JSON, not a notebook, or holds a scrap scrapbook would refuse."""


def read_trail_bytes(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` (:data:`MAX_NOTEBOOK_BYTES`) bytes
    (:func:`zoo_ops.files.read_regular_bytes`: a FIFO never hangs the reader). Raises
    UnreadableNotebook saying why (a FIFO, a directory, too large, permission denied,
    missing): a reader lists the file as unreadable and goes on.
    """
    try:
        return read_regular_bytes(path, MAX_NOTEBOOK_BYTES if limit is None else limit)
    except FileRefused as exc:
        reason = f"{exc}, not a notebook file" if exc.not_regular else str(exc)
        raise UnreadableNotebook(reason) from None


@dataclass(frozen=True)
class TrailEntry:
    """One executed runbook as the trail knows it (read, or from the index cache)."""

    path: Path
    env: str
    model: str
    step: str
    stamp: datetime
    state: str  # ok | running (no `run` scrap, papermill not finished) | unreadable
    run: dict[str, Any] | None
    scraps: dict[str, Any] = field(default_factory=dict)  # INDEXED_SCRAPS present
    scrap_names: tuple[str, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    fingerprint: Fingerprint = (0, 0, 0, 0)

    @property
    def outcome(self) -> str:
        """succeeded | failed | dry_run from `run`; else running or unreadable."""
        if self.run is None:
            return RUNNING if self.state == RUNNING else UNREADABLE
        return str(self.run.get("outcome") or RUNNING)

    @property
    def dry_run(self) -> bool:
        if self.run is None:
            return bool(self.parameters.get("dry_run") is True)
        return self.run.get("dry_run") is True or self.run.get("outcome") == "dry_run"

    @property
    def run_id(self) -> str | None:
        value = (self.run or {}).get("run_id")
        return str(value) if value else None


# --- reading one notebook ---------------------------------------------------------------


def decode_scrap_payload(payload: Any) -> tuple[str, str, Any]:
    """(name, encoder, data) of a ``application/scrapbook.scrap.*+json`` payload.

    Algorithm (scrapbook ``payload_to_scrap`` + ``registry.decode``): the payload must
    carry ``version``; for version 1 it must match schema v1 (name and encoder strings,
    data a non-null JSON value, version an integer); an unknown encoder is refused.
    ``json`` data that is a string is parsed when it is valid JSON; ``text`` data that is
    not a string becomes ``str(data)``. Other encoders' data is returned undecoded.
    """
    if not isinstance(payload, dict) or "version" not in payload:
        raise UnreadableNotebook("scrap payload has no version")
    version = payload["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise UnreadableNotebook("scrap payload version is not an integer")
    if version <= 1:
        for key in ("name", "data", "encoder"):
            if key not in payload:
                raise UnreadableNotebook(f"scrap payload lacks {key}")
        if not isinstance(payload["name"], str) or not isinstance(payload["encoder"], str):
            raise UnreadableNotebook("scrap payload name/encoder is not a string")
        if not isinstance(payload["data"], _DATA_TYPES):
            raise UnreadableNotebook(f"scrap {payload['name']!r} data has no JSON type")
    name, encoder, data = payload.get("name"), payload.get("encoder"), payload.get("data")
    if encoder not in _KNOWN_ENCODERS:
        raise UnreadableNotebook(f"scrap {name!r} has unknown encoder {encoder!r}")
    if encoder == "json" and isinstance(data, str):
        try:
            data = json.loads(data)
        except JSONDecodeError:
            pass
    elif encoder == "text" and not isinstance(data, str):
        data = str(data)
    return str(name), str(encoder), data


def _output_scraps(output: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Scraps one cell output holds, as scrapbook's ``_fetch_scraps`` sees them."""
    found: dict[str, tuple[str, str, Any]] = {}
    for mime, payload in (output.get("data") or {}).items():
        if mime.startswith(_RECORD_PREFIX) and isinstance(payload, dict):
            # papermill's record(): {name: data}, first key only, encoder from the mime.
            encoder = mime.split(_RECORD_PREFIX, 1)[1][1:]
            for name, data in payload.items():
                found[name] = decode_scrap_payload(
                    {"name": name, "data": data, "encoder": encoder, "version": 1}
                )
                break
        elif mime.startswith(_GLUE_PREFIX):
            scrap = decode_scrap_payload(payload)
            found[scrap[0]] = scrap
    metadata = output.get("metadata") or {}
    display_name = None
    if "papermill" in metadata:
        display_name = (metadata.get("papermill") or {}).get("name")
    elif (metadata.get("scrapbook") or {}).get("display"):
        display_name = metadata["scrapbook"].get("name")
    if display_name and display_name not in found:
        # A display-only output names a scrap with no data; it replaces an earlier one.
        found[display_name] = (display_name, "display", None)
    return list(found.values())


def read_notebook_scraps(
    text: str | bytes, names: Collection[str] | None = None
) -> tuple[dict[str, Any], tuple[str, ...], dict[str, Any]]:
    """(scraps named in ``names`` -- all when None --, every scrap name, papermill metadata).

    Raises UnreadableNotebook for text that is not a notebook or holds a bad scrap.
    ``pandas`` scraps are returned as their encoded payload string: use
    :func:`zoo_ops.trail.read_scraps` for tables.
    """
    if not text.strip():
        raise UnreadableNotebook("empty file")
    try:
        nb = json.loads(text)
    except (JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnreadableNotebook(f"not JSON ({_json_problem(exc)})") from exc
    except RecursionError as exc:
        raise UnreadableNotebook("not JSON (nested too deeply)") from exc
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise UnreadableNotebook("not a notebook (no cells)")
    scraps: dict[str, Any] = {}
    all_names: dict[str, None] = {}
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            raise UnreadableNotebook("not a notebook (a cell is not an object)")
        for output in cell.get("outputs") or ():
            if not isinstance(output, dict):
                continue
            for name, _encoder, data in _output_scraps(output):
                all_names[name] = None
                if names is None or name in names:
                    scraps[name] = data
    metadata = nb.get("metadata")
    papermill = metadata.get("papermill") if isinstance(metadata, dict) else None
    return scraps, tuple(all_names), papermill if isinstance(papermill, dict) else {}


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, JSONDecodeError):
        if exc.pos >= len(exc.doc.rstrip()):
            return "truncated"
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return exc.__class__.__name__


def checked_scraps(scraps: dict[str, Any]) -> dict[str, Any]:
    """``scraps`` when every one follows its schema; else UnreadableNotebook saying which
    does not (:func:`zoo_ops.domain.scrap_schema.scrap_problem`)."""
    for name, value in scraps.items():
        problem = scrap_problem(name, value)
        if problem is not None:
            raise UnreadableNotebook(problem)
    return scraps


def read_indexed(path: Path) -> TrailEntry:
    """Read one executed notebook into a TrailEntry (fingerprint taken first)."""
    parsed = parse_trail_name(path)
    if parsed is None:
        raise ValueError(f"{path}: not a trail name")
    step, stamp = parsed
    return read_notebook_at(
        path, env=path.parent.parent.name, model=path.parent.name, step=step, stamp=stamp
    )


def read_notebook_at(path: Path, *, env: str, model: str, step: str, stamp: datetime) -> TrailEntry:
    """Read an executed notebook kept anywhere (e.g. plain papermill's OUT.ipynb).

    ``env``, ``model``, ``step`` and ``stamp`` say what the notebook is expected to be
    (from its run row); its ``run`` scrap says what it is. A missing file is an entry
    in state ``unreadable`` whose problem says so.
    """
    try:
        fingerprint = fingerprint_of(path.stat())
    except OSError:
        fingerprint = (0, 0, 0, 0)
    base = TrailEntry(
        path=path,
        env=env,
        model=model,
        step=step,
        stamp=stamp,
        state=UNREADABLE,
        run=None,
        fingerprint=fingerprint,
    )
    try:
        scraps, names, papermill = read_notebook_scraps(
            read_trail_bytes(path), INDEXED_SCRAPS | {"run"}
        )
        checked_scraps(scraps)
    except UnreadableNotebook as exc:
        return replace(base, problem=str(exc))
    run = scraps.pop("run", None)
    parameters = papermill.get("parameters")
    if isinstance(run, dict):
        state, problem = OK, None
    elif papermill.get("end_time") is None and papermill.get("exception") is None:
        run, state, problem = None, RUNNING, "no run scrap yet"
    else:
        run, state, problem = None, UNREADABLE, "no run scrap"
    return replace(
        base,
        state=state,
        run=run,
        scraps=scraps,
        scrap_names=names,
        parameters=dict(parameters) if isinstance(parameters, dict) else {},
        problem=problem,
    )


def fingerprint_of(st: os.stat_result) -> Fingerprint:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def read_scraps(path: Path) -> dict[str, Any]:
    """All scraps of an executed notebook as plain values (DataFrames stay DataFrames),
    each checked against its schema; read as the trail's reader reads (a regular file of
    bounded size). BadInput, one line, for a file that is not such a notebook."""
    import nbformat
    from scrapbook.models import Notebook

    if not os.path.lexists(path):
        raise NotFound(f"{path}: no such executed notebook")
    try:
        text = read_trail_bytes(path)
        read_notebook_scraps(text, ())  # a notebook at all (a clear reason if not)
        nb = Notebook(nbformat.reads(text.decode("utf-8"), as_version=4))
        return checked_scraps({name: scrap.data for name, scrap in nb.scraps.items()})
    except UnreadableNotebook as exc:
        raise BadInput(f"{path}: not a readable executed runbook ({exc}); check the file") from exc
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook is one verdict
        raise BadInput(
            f"{path}: not a readable executed runbook ({exc.__class__.__name__}); check the file"
        ) from exc


def read_entry(path: Path) -> TrailEntry:
    """The entry of one executed runbook (BadInput for a name that is not a trail name)."""
    if parse_trail_name(path) is None:
        raise BadInput(f"{path}: not a trail name (YYYYmmddTHHMMSSZ-STEP.ipynb)")
    return read_indexed(path)
