"""Applications on the zoo, as the platform's users have them: the test user, a new
application landing on the zoo model's current version, predictions through a proxy.

Shared by 02_verify and 03_migrate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from zoo_ops.adapters.platform import schema as s
from zoo_ops.adapters.platform.store import OracleVersion
from zoo_ops.domain.ids import new_id
from zoo_ops.environment import Environment
from zoo_ops.errors import BadInput, NotFound, StepFailed
from zoo_ops.services.results import StepResult

# Where the demo records its test user (platform meta table); the default of test_user_email.
TEST_USER_META_KEY = "test_user_email"


def resolve_test_user(env: Environment, user_email: str = "") -> str:
    """``user_email``, else the environment's ``test_user_email``, else the demo's test user."""
    email = (
        user_email or env.config.test_user_email or env.platform.get_meta(TEST_USER_META_KEY) or ""
    )
    if not email:
        raise BadInput(
            f"no test user for environment {env.name!r}: pass -p user_email EMAIL "
            "or set test_user_email in zoo_ops.toml"
        )
    env.platform.user_by_email(email)  # raises NotFound for an unknown user
    return email


def previous_active_version(env: Environment, model: str) -> OracleVersion:
    """The zoo model's most recent ACTIVE version that is not its current one (the old one)."""
    oracle = env.platform.zoo_model(model)
    current = oracle.current_version_id
    older = [
        v for v in env.platform.versions_of(oracle.id) if v.id != current and v.status == s.ACTIVE
    ]
    if not older:
        raise NotFound(f"{model} has no earlier ACTIVE version to compare its current version with")
    return older[-1]


def predict_through(env: Environment, user_version_id: str, request: Any) -> Any:
    """Ask the zoo version that a user version proxies, as the platform routes it."""
    user_version = env.platform.version(user_version_id)
    if user_version.proxy_model_version_id is None:
        raise StepFailed(f"user version {user_version_id} proxies nothing")
    return env.serving.predict(env.platform.version(user_version.proxy_model_version_id), request)


@dataclass
class NewApplicationCheck(StepResult):
    """A newly created application lands on the expected zoo version (the seed's check)."""

    model: str
    expected_version_id: str | None
    oracle_id: str | None
    proxy_version_id: str | None
    applies: bool

    @property
    def passed(self) -> bool:
        return not self.applies or self.proxy_version_id == self.expected_version_id

    def to_frame(self) -> pd.DataFrame:
        if not self.applies:
            return pd.DataFrame(
                [
                    {
                        "check": "new application lands on the new version",
                        "ok": True,
                        "detail": "not applicable to target=copy",
                    }
                ]
            )
        return pd.DataFrame(
            [
                {
                    "check": "new application lands on the new version",
                    "ok": self.passed,
                    "detail": f"application {self.oracle_id} proxies {self.proxy_version_id}; "
                    f"expected {self.expected_version_id}",
                }
            ]
        )

    def failure(self) -> str | None:
        if self.passed:
            return None
        return (
            f"a new {self.model} application proxies {self.proxy_version_id}, not the new version "
            f"{self.expected_version_id}"
        )


def new_application_lands(
    env: Environment,
    model: str,
    *,
    target: str = "new",
    user_email: str = "",
    dry_run: bool = False,
) -> NewApplicationCheck:
    """Create an application for the test user; it must proxy the zoo model's current version.

    Applies to the new version only (``target="new"``): a copy is never current.
    """
    if target != "new":
        return NewApplicationCheck(model, None, None, None, False)
    store = env.platform
    expected = store.zoo_model(model).current_version_id
    if dry_run:
        return NewApplicationCheck(model, expected, None, expected, False)
    user = store.user_by_email(resolve_test_user(env, user_email))
    app = store.create_application(
        user.organization_id, model, name=f"zoo-ops-new-app-{model}-{new_id(5)}"
    )
    return NewApplicationCheck(model, expected, app.oracle_id, app.proxy_model_version_id, True)
