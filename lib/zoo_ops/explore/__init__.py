"""The interactive session, Django ``shell_plus`` style: ``%load_ext zoo_ops``.

:func:`load_ipython_extension` loads the environment named by ``$ZOO_OPS_ENV``
(default ``local``; ``zoo-ops lab`` and ``zoo-ops shell`` set it from ``-e``) over a
read-only engine (:mod:`zoo_ops.explore.session`), pushes its names into the user's
namespace, connects jupysql's ``%%sql`` to the same engine (:mod:`zoo_ops.explore.sql`)
and prints a banner of what was loaded.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Preload the session into ``ipython`` (IPython calls this for ``%load_ext``)."""
    from zoo_ops.explore.session import open_session
    from zoo_ops.explore.sql import connect_sql_magic
    from zoo_ops.tables import show_tables_whole

    session = open_session()
    ipython.push(session.namespace)
    show_tables_whole(ipython)
    connect_sql_magic(ipython, session.engine, alias=session.env.name)
    print(session.banner())
