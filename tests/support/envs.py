"""One `[env.NAME]` table of a test's zoo_ops.toml, laid out the same way everywhere:
state and settings under ``tmp_path/NAME``, the trusses copied to ``tmp_path/truss_models``,
one trail ``tmp_path/executed`` shared by the environments."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo_ops.environment import Environment

REPO = Path(__file__).resolve().parents[2]


def env_table(tmp_path: Path, name: str, database_url: str, **extra: str) -> str:
    """The TOML table of environment ``name``; ``extra`` adds keys (``requires="staging"``)."""
    lines = [
        f"[env.{name}]",
        f'database_url = "{database_url}"',
        f'settings = "file:{tmp_path / name / "settings.yaml"}"',
        f'state_dir = "{tmp_path / name}"',
        f'truss_root = "{tmp_path / "truss_models"}"',
        f'executed_root = "{tmp_path / "executed"}"',
        *(f'{key} = "{value}"' for key, value in extra.items()),
    ]
    return "\n" + "\n".join(lines) + "\n"


@contextmanager
def staging_and_protected_prod(
    tmp_path: Path, database_url: str, write_config: Callable[[str], Path], *, apps: int
) -> Iterator[dict[str, Environment]]:
    """`staging` (SQLite) and a protected `prod` (``database_url``) that requires it, each
    with the demo zoo and ``apps`` applications, the repository's trusses copied to
    ``tmp_path/truss_models``. The demo never writes to a protected environment: both are
    built first, then prod is protected."""
    from zoo_ops.commands.demo import build_demo
    from zoo_ops.environment import Environment

    shutil.copytree(REPO / "truss_models", tmp_path / "truss_models")
    body = env_table(tmp_path, "staging", f"sqlite:///{tmp_path / 'staging.db'}") + env_table(
        tmp_path, "prod", database_url, requires="staging"
    )
    write_config(body)
    for name in ("staging", "prod"):
        env = Environment.load(name)
        build_demo(env, apps=apps)
        env.dispose()
    write_config(body + "protected = true\n")
    envs = {name: Environment.load(name) for name in ("staging", "prod")}
    try:
        yield envs
    finally:
        for env in envs.values():
            env.dispose()
