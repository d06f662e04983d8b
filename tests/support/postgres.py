"""Where the PostgreSQL test database is, and whether its absence fails the run (CI)."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest

from zoo_ops.adapters.platform.engine import normalize_url

POSTGRES_ENV_VAR = "ZOO_OPS_TEST_DATABASE_URL"


def postgres_required() -> bool:
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("ZOO_OPS_REQUIRE_POSTGRES") == "1"
    )


def postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV_VAR, "")
    if not url:
        if postgres_required():
            pytest.fail(f"{POSTGRES_ENV_VAR} is not set; CI must run the PostgreSQL tests")
        pytest.skip(f"{POSTGRES_ENV_VAR} not set (set it to run the PostgreSQL half)")
    return normalize_url(url)


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
