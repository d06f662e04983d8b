"""``%%sql`` on the session's engine, by jupysql.

jupysql is given the read-only engine itself (not a URL), under the environment's name
as alias, so the connection it lists is that name and never a URL with a password.
``displaycon`` is off: a cell's output is its result, not the connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine


def connect_sql_magic(ipython: Any, engine: Engine, *, alias: str) -> None:
    """Load jupysql into ``ipython`` and make ``engine`` its current connection."""
    from sql.connection import ConnectionManager

    ipython.run_line_magic("load_ext", "sql")
    ipython.run_line_magic("config", "SqlMagic.displaycon = False")
    magic = ipython.magics_manager.registry["SqlMagic"]
    ConnectionManager.set(engine, displaycon=False, alias=f"zoo-ops:{alias}", config=magic)
