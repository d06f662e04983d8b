"""The local secret store: the admin organization's rows of ``secrets_secret``."""

from __future__ import annotations

from zoo_ops.adapters import known_secrets
from zoo_ops.adapters.platform.store import PlatformStore


class DatabaseSecretStore:
    """Secrets of the admin organization (the zoo's owner) in the platform database."""

    def __init__(self, platform: PlatformStore) -> None:
        self.platform = platform

    @property
    def location(self) -> str:
        return "secrets_secret rows of the admin organization"

    def names(self) -> set[str]:
        return self.platform.secret_names(self.platform.admin_organization().id)

    def values(self) -> dict[str, str]:
        """Name -> value for a model's load; each value is made known to the scrubbing."""
        values = self.platform.secret_values(self.platform.admin_organization().id)
        known_secrets.add(values.values())
        return values

    def __repr__(self) -> str:  # never the values
        return f"DatabaseSecretStore({self.location!r})"
