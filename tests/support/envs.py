"""One `[env.NAME]` table of a test's zoo_ops.toml, laid out the same way everywhere:
state and settings under ``tmp_path/NAME``, the trusses copied to ``tmp_path/truss_models``,
one trail ``tmp_path/executed`` shared by the environments."""

from __future__ import annotations

from pathlib import Path


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
