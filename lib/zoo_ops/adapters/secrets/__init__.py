"""Secret stores: where the admin organization's secrets live (the model zoo's owner).

Two implementations behind one protocol, chosen by the environment's ``serving`` value
(the secrets live where the models are served; see :mod:`zoo_ops.adapters.wiring`):

- ``local``      -> :class:`~zoo_ops.adapters.secrets.local.DatabaseSecretStore`, the
  platform database's ``secrets_secret`` rows of the admin organization;
- ``kubernetes`` -> :class:`~zoo_ops.adapters.secrets.kubernetes.KubernetesSecretStore`,
  the keys of the Secret ``secret_name`` in the environment's namespace.

``names()`` is what preflights use. ``values()`` exists only to hand secrets to a model
when it is loaded; a value is never printed, logged, recorded or returned in a table.
Every store registers each value it returns with :mod:`zoo_ops.adapters.known_secrets`,
so that an error quoting it (a model's ``load`` failing on it) is scrubbed wherever it
is printed or recorded.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SecretStore(Protocol):
    @property
    def location(self) -> str:
        """Where the secrets live, for messages (never a value)."""
        ...

    def names(self) -> set[str]:
        """The names of the secrets that exist."""
        ...

    def values(self) -> dict[str, str]:
        """Name -> value, for a model's load only; never display the result. Each value is
        registered with :func:`zoo_ops.adapters.known_secrets.add` before it is returned."""
        ...
