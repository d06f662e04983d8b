"""Is an environment's database ready for a step? The platform's tables and zoo-ops's own.

A step never creates tables: the platform's come from the platform (or ``zoo-ops demo``
for the local environment), zoo-ops's own from ``zoo-ops init -e ENV``. Each check
raises :class:`NotFound` (exit 2, nothing changed) with the one command that fixes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo_ops.errors import NotFound

if TYPE_CHECKING:
    from zoo_ops.environment import Environment


def require_platform_tables(env: Environment) -> None:
    """Refuse a database without the platform's tables, saying how to get them."""
    if not env.platform.has_schema():
        raise NotFound(
            f"environment {env.name!r} ({env.config.database_url_redacted}) has no platform "
            f"tables; for an existing platform database set database_url to it and run "
            f"`zoo-ops init -e {env.name}`, for the local environment run `zoo-ops demo`"
        )


def require_attached(env: Environment) -> None:
    """Refuse unless the platform's tables exist and zoo-ops's own are at this zoo-ops's
    revision with every table present."""
    require_platform_tables(env)
    state = env.platform.zoo_ops_schema()
    if state.current:
        return
    where = f"environment {env.name!r} ({env.config.database_url_redacted})"
    if state.revision is None and not state.present:
        detail = "has the platform tables but not zoo-ops's own"
    elif state.revision == state.head:
        detail = f"lacks zoo-ops's tables {', '.join(state.missing)}"
    else:
        detail = (
            f"has zoo-ops's tables at revision {state.revision or 'none'}; this zoo-ops "
            f"needs {state.head}"
        )
    raise NotFound(f"{where} {detail}; run `zoo-ops init -e {env.name}`")
