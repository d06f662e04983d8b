"""`zoo-ops whitelist [-e ENV] edit`: the seed's ``kubectl edit``, made safe (DESIGN §8).

``kubectl edit`` patches without a ``resourceVersion``: an edit opened before another
writer's change and saved after it silently removes that change. This command:

1. refuses a protected environment without ``--confirm ENV`` (nothing opened);
2. reads the settings and opens ``$VISUAL`` (else ``$EDITOR``, else ``vi``) on the
   whitelist alone, as pretty JSON under ``#`` comment lines;
3. on save: nothing but comments (an empty file) or the same whitelist aborts with
   nothing written; content that is not a valid whitelist (the rules of
   :mod:`zoo_ops.domain.whitelist`) is refused in one line -- an interactive operator is
   asked whether to re-open the editor on what they wrote, a non-interactive run is
   refused (exit 2, nothing written);
4. the staging gate (environments with ``requires``) for every model added or changed,
   by its ``copy`` (:mod:`zoo_ops.commands.guarded_writes`); all closed gates are named;
5. the write is conditional: the store's conditional update on the resourceVersion it
   read, whose change refuses unless the whitelist is still exactly the one the operator
   was shown. Another write to the whitelist in between re-opens the editor on the NEW
   whitelist with comment lines saying what changed meanwhile and what the operator had
   saved (at most :data:`MAX_CONFLICTS` times, then exit 1, nothing written). A write to
   any other key does not conflict (it is kept: only the whitelist key is replaced);
6. one run per model the edit added, changed or removed (step ``whitelist-edit``),
   recorded as every mutating command is.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from zoo_ops.commands.guarded_writes import gated_step_for
from zoo_ops.commands.recorded_write import (
    GatedWrite,
    Recording,
    check_confirm,
    close_recording,
    refuse_closed_gates,
    start_recording,
)
from zoo_ops.domain.names import WHITELIST_EDIT
from zoo_ops.domain.whitelist import (
    WHITELIST_KEY,
    DynamicSettings,
    Whitelist,
    WhitelistDiffRow,
    diff_whitelists,
    edit_text,
    parse_edit_text,
    parse_whitelist,
    serialize_whitelist,
    with_whitelist,
)
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, ConflictError, StepFailed, ZooOpsError

MAX_CONFLICTS = 5
MAX_INVALID = 5

# Opens the editor on a file and returns what was saved.
Editor = Callable[[Path], None]
# Asks the operator a yes/no question; None: not interactive.
Ask = Callable[[str], bool]


class EditConflict(BadInput):
    """The whitelist changed between the read the operator edited and the write."""

    def __init__(self, current: Whitelist | None, raw: str | None) -> None:
        super().__init__("the whitelist changed while it was being edited; nothing written")
        self.current = current
        self.raw = raw


@dataclass
class EditResult:
    """What ``whitelist edit`` did."""

    env: str
    location: str
    outcome: str  # "written", "unchanged", "empty"
    before: Whitelist | None = None
    after: Whitelist | None = None
    resource_version_before: str = ""
    resource_version_after: str = ""
    conflicts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def diff(self) -> list[WhitelistDiffRow]:
        if self.before is None or self.after is None:
            return []
        return diff_whitelists(self.before, self.after, include_unchanged=False)

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "model": r.model,
                "before": "" if r.before is None else f"copy={str(r.before).lower()}",
                "after": "" if r.after is None else f"copy={str(r.after).lower()}",
                "deploys_as": r.after_target or r.before_target,
                "change": r.change,
            }
            for r in self.diff
        ]
        return pd.DataFrame(rows, columns=["model", "before", "after", "deploys_as", "change"])


def run_editor_command(command: str) -> Editor:
    """An Editor that runs ``command`` (split as a shell would) with the file's path."""

    def edit(path: Path) -> None:
        argv = [*shlex.split(command), str(path)]
        try:
            done = subprocess.run(argv, check=False)
        except OSError as exc:
            raise BadInput(
                f"cannot start the editor {command!r} ({exc.strerror or exc}); "
                "set $VISUAL or $EDITOR; nothing written"
            ) from None
        if done.returncode != 0:
            raise BadInput(f"the editor {command!r} exited with {done.returncode}; nothing written")

    return edit


def default_editor() -> Editor:
    """``$VISUAL``, else ``$EDITOR``, else ``vi``."""
    return run_editor_command(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")


def _read(env: Environment) -> tuple[Whitelist | None, str | None, str, str]:
    """(whitelist or None when malformed, raw value, why malformed, resourceVersion)."""
    snapshot = env.settings.read()
    DynamicSettings.from_data({k: v for k, v in snapshot.data.items() if k != WHITELIST_KEY})
    raw = snapshot.data.get(WHITELIST_KEY)
    try:
        return parse_whitelist(raw), raw, "", snapshot.resource_version
    except ZooOpsError as exc:
        return None, raw, str(exc), snapshot.resource_version


def _open(editor: Editor, text: str) -> str:
    """Write ``text`` to a private temporary file, run the editor on it, return it."""
    fd, name = tempfile.mkstemp(prefix="zoo-ops-whitelist-", suffix=".json")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        editor(path)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read what the editor saved ({exc}); nothing written") from None
    finally:
        path.unlink(missing_ok=True)


def _header(env: Environment, rv: str) -> list[str]:
    return [
        f"{WHITELIST_KEY} of environment {env.name} ({env.settings.location}, "
        f"resourceVersion {rv or '-'})",
        'Each key is a model zoo model; its value {"copy": true} deploys MODEL_copy, '
        '{"copy": false} a new version of MODEL.',
        "Lines starting with # are ignored. Save unchanged, or delete everything, to abort.",
    ]


def _diff_notes(before: Whitelist | None, after: Whitelist | None, raw: str | None) -> list[str]:
    if before is None or after is None:
        return [f"it now reads: {raw!r}"]
    rows = diff_whitelists(before, after, include_unchanged=False)
    return [
        f"  {r.model}: {r.change} ({r.before} -> {r.after})".replace("None", "absent") for r in rows
    ] or ["  (the same entries, written again)"]


def edit_whitelist(
    env: Environment,
    *,
    editor: Editor | None = None,
    ask: Ask | None = None,
    confirm: str = "",
    override_reason: str = "",
) -> EditResult:
    """The command (module doc). ``ask`` None: not interactive (refuse invalid content)."""
    check_confirm(env, confirm, dry_run=False, command="whitelist edit", can_dry_run=False)
    editor = editor or default_editor()
    shown, shown_raw, malformed, rv = _read(env)
    notes = _header(env, rv)
    if malformed:
        notes.append(f"the current value is not a valid whitelist: {malformed}")
    text = (
        edit_text(shown, notes)
        if shown is not None
        else edit_text(Whitelist(), notes) + f"# current value: {shown_raw!r}\n"
    )
    conflicts = invalid = 0
    while True:
        saved = _open(editor, text)
        try:
            edited = parse_edit_text(saved)
        except ZooOpsError as exc:
            invalid += 1
            if ask is None or invalid > MAX_INVALID or not ask(f"{exc}\nre-open the editor?"):
                raise BadInput(f"{exc} (in what was saved); nothing written") from None
            text = f"# error: {exc}\n" + saved
            continue
        if edited is None:
            return EditResult(env.name, env.settings.location, "empty", shown, shown)
        if shown is not None and edited == shown:
            return EditResult(env.name, env.settings.location, "unchanged", shown, shown)
        try:
            return _write(env, shown, shown_raw, rv, edited, confirm, override_reason, conflicts)
        except EditConflict as conflict:
            conflicts += 1
            if conflicts > MAX_CONFLICTS:
                raise ConflictError(
                    f"{env.settings.location}: the whitelist kept changing while it was edited "
                    f"({conflicts} times); nothing written, run `zoo-ops whitelist edit` again"
                ) from None
            _, _, _, new_rv = _read(env)
            notes = [
                *_header(env, new_rv),
                "NOTE: the whitelist changed while you edited it; nothing was written.",
                "What changed meanwhile:",
                *_diff_notes(shown, conflict.current, conflict.raw),
                f"What you saved: {serialize_whitelist(edited)}",
                "Below is the whitelist as it is now: make your change again, and save.",
            ]
            shown, shown_raw, rv = conflict.current, conflict.raw, new_rv
            text = edit_text(shown if shown is not None else Whitelist(), notes)


def _write(
    env: Environment,
    shown: Whitelist | None,
    shown_raw: str | None,
    rv: str,
    edited: Whitelist,
    confirm: str,
    override_reason: str,
    conflicts: int,
) -> EditResult:
    """Gate, record and write ``edited`` conditionally on the whitelist shown."""
    base = shown if shown is not None else Whitelist()
    rows = diff_whitelists(base, edited, include_unchanged=False)
    # A value changed meanwhile is a conflict before anything is recorded.
    current, current_raw, _, _ = _read(env)
    if current_raw != shown_raw:
        raise EditConflict(current, current_raw)
    _gate_all(env, rows, confirm, override_reason)
    recordings = [
        start_recording(
            env,
            step=WHITELIST_EDIT,
            model=r.model,
            dry_run=False,
            parameters={
                k: v
                for k, v in {
                    "model": r.model,
                    "change": r.change,
                    "copy": r.after,
                    "confirm": confirm,
                    "gate_override_reason": override_reason,
                }.items()
                if v not in (None, "")
            },
            gate_override_reason=override_reason,
        )
        for r in rows
    ]

    def change(data: dict[str, str]) -> dict[str, str]:
        raw = data.get(WHITELIST_KEY)
        if raw != shown_raw:
            try:
                now: Whitelist | None = parse_whitelist(raw)
            except ZooOpsError:
                now = None
            raise EditConflict(now, raw)
        return with_whitelist(data, edited)

    try:
        written = env.settings.apply(change)
        after = DynamicSettings.from_data(written.data).whitelist
        if after != edited:
            raise StepFailed(
                f"{env.settings.location}: the whitelist written does not read back as edited; "
                "inspect the ConfigMap"
            )
    except BaseException as exc:
        for recording in recordings:
            close_recording(recording, exc)
        raise
    result = EditResult(
        env.name,
        env.settings.location,
        "written",
        shown,
        after,
        written.previous_resource_version or rv,
        written.resource_version,
        conflicts,
    )
    for recording in recordings:
        _record(recording, result, shown_raw)
        close_recording(recording, None)
        result.notes.append(recording.note())
    return result


def _gate_all(
    env: Environment, rows: list[WhitelistDiffRow], confirm: str, override_reason: str
) -> None:
    """The gate of every added or changed entry; refuse naming every closed one (each
    recorded as a refused run), nothing written."""
    if not env.config.requires:
        return
    from zoo_ops.adapters.truss_files import truss_content_hash

    writes = [
        GatedWrite(
            row.model,
            gated_step_for(row.after),
            truss_content_hash(env.config.truss_path(row.model), cache=env.hash_cache),
            {"model": row.model, "change": row.change, "copy": row.after},
        )
        for row in rows
        if row.after is not None  # removal: no gate (see guarded_writes)
    ]
    refuse_closed_gates(
        env,
        writes,
        record_step=WHITELIST_EDIT,
        override_reason=override_reason,
        refusal="whitelist edit refused, nothing written",
    )


def _record(recording: Recording, result: EditResult, shown_raw: str | None) -> None:
    recording.show("whitelist edit", result.to_frame())
    if result.before is not None:
        recording.scraps["whitelist_before"] = result.before.as_json_object()
    else:
        recording.scraps["whitelist_before_raw"] = json.dumps(shown_raw)
    if result.after is not None:
        recording.scraps["whitelist_after"] = result.after.as_json_object()
