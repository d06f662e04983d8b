"""What else a revert puts back besides the applications (pure): the zoo model's current
version and its whitelist entry, each only if it is still as 03_migrate left it.

03 changed three things: the whitelist entry (to ``copy: false``), the zoo model's
current version (to the new one, so new applications land on it), and every user
version's proxy. 04 moves the proxies back through the migration engine; these rules
decide the other two from facts already read:

- current version: the new version -> set the old one back (when it is not DELETED);
  already the old one -> nothing; anything else -> left as is, saying why (someone rolled
  forward again or chose another version: not ours to undo);
- whitelist entry: ``copy: false`` (as 03 left it) -> what 03's ``whitelist_before``
  recorded (``copy: true`` after 01, or no entry: removed); already that -> nothing;
  anything else, or no record of the entry before 03 -> left as is, saying why.

Each decision is one :class:`Restore` row (what, action, now, wanted, detail); ``action``
is ``set``, ``remove``, ``none`` (already so) or ``cannot``.
"""

from __future__ import annotations

from dataclasses import dataclass

SET, REMOVE, NONE, CANNOT = "set", "remove", "none", "cannot"
CURRENT, WHITELIST = "current version", "whitelist entry"
DELETED = "DELETED"


@dataclass(frozen=True)
class Restore:
    what: str
    action: str
    now: str
    wanted: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.action != CANNOT


def entry_text(copy: bool | None) -> str:
    """A whitelist entry as a table shows it: ``copy=true``, ``copy=false``, or ``(none)``."""
    return "(none)" if copy is None else f"copy={'true' if copy else 'false'}"


def current_version_restore(
    *, model: str, current_id: str | None, old_id: str, new_id: str, old_status: str | None
) -> Restore:
    """Set the old version current again when the new one still is (see module doc)."""
    now = current_id or "(none)"
    if current_id == old_id:
        return Restore(CURRENT, NONE, now, old_id, f"{model}'s current version is already {old_id}")
    if current_id != new_id:
        return Restore(
            CURRENT,
            CANNOT,
            now,
            old_id,
            f"{model}'s current version is {now}, not {new_id} as 03 left it; left as is",
        )
    if old_status is None or old_status == DELETED:
        return Restore(
            CURRENT,
            CANNOT,
            now,
            old_id,
            f"the old version {old_id} is {old_status or 'gone'}; deploy it again to serve new applications",
        )
    return Restore(CURRENT, SET, now, old_id, f"new applications of {model} land on {old_id} again")


def whitelist_restore(
    *, model: str, now: bool | None, recorded: bool, before: bool | None
) -> Restore:
    """Put the entry back to ``before`` (03's record) when it is still ``copy: false``.

    ``recorded`` is False when no forward notebook recorded the whitelist before 03 (a
    revert from the journal alone); ``now``/``before`` are the entry's ``copy`` or None.
    """
    shown_now = entry_text(now)
    if not recorded:
        return Restore(
            WHITELIST,
            CANNOT,
            shown_now,
            "?",
            "no forward notebook records the whitelist before 03; "
            f"set it with `zoo-ops whitelist set {model} --copy true` or `remove {model}`",
        )
    wanted = entry_text(before)
    if now == before:
        return Restore(WHITELIST, NONE, shown_now, wanted, f"already {wanted}")
    if now is not False:
        return Restore(
            WHITELIST,
            CANNOT,
            shown_now,
            wanted,
            f"the entry is {shown_now}, not copy=false as 03 left it; left as is",
        )
    action = REMOVE if before is None else SET
    return Restore(WHITELIST, action, shown_now, wanted, f"back to {wanted}, as before 03")
