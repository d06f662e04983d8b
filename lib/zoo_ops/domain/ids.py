"""Ids as the platform makes them: short lowercase strings."""

from __future__ import annotations

import secrets
import string

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 8


def new_id(length: int = ID_LENGTH) -> str:
    """A random id of ``length`` characters from [a-z0-9], starting with a letter.

    36^7 * 26 ≈ 2e12 ids: collisions are negligible for a zoo's row counts, and the
    primary key catches the rest.
    """
    first = secrets.choice(string.ascii_lowercase)
    return first + "".join(secrets.choice(ID_ALPHABET) for _ in range(length - 1))
