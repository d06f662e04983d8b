"""Small pure helpers: RFC 3339 timestamps and kubectl's ages, resource quantities (parsed
by the official client's ``kubernetes.utils.quantity.parse_quantity``), and the random and
hashed name suffixes the controllers give the objects they create."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity as _parse_k8s_quantity

from zoo_ops.testing.kube_api.resource_types import Obj


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def human_duration(seconds: float) -> str:
    """Age as kubectl prints it (apimachinery ``duration.HumanDuration``): seconds under two
    minutes, ``XmYs`` under ten minutes, minutes under three hours, ``XhYm`` under eight
    hours, hours under two days, ``XdYh`` under eight days, days under two years, then years."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years = hours // (24 * 365)
    if years < 8:
        days = (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


# The message an unparsable quantity gets (it ends up in a 422 Invalid's field error).
_QUANTITY_MESSAGE = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$'"
)


def parse_quantity(value: Any) -> Decimal:
    """A resource quantity (``500m``, ``32Gi``, ``1e3``, ``2``) as an exact decimal of base units.

    The official client's parser does the work; the value goes in as text, so a YAML float
    such as ``0.1`` is ``Decimal("0.1")`` rather than the float's binary expansion. Anything
    it cannot parse, and a non-finite result (``NaN``, ``Infinity``), is a ValueError."""
    try:
        number: Decimal = _parse_k8s_quantity(str(value).strip())
    except ValueError:
        raise ValueError(_QUANTITY_MESSAGE) from None
    if not number.is_finite():
        raise ValueError(_QUANTITY_MESSAGE)
    return number


_RANDOM_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.String alphabet


def _random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_RANDOM_ALPHABET) for _ in range(n))


def _template_hash(template: Obj) -> str:
    """A stable short hash of a pod template, spelt with the pod-template-hash alphabet."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_RANDOM_ALPHABET[b % len(_RANDOM_ALPHABET)] for b in digest[:10])
