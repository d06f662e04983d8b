"""Configured ``str.format`` templates: which fields each may use, checked before use.

Three templates come from an environment's configuration (DESIGN §8):

- ``image`` (the image a zoo-ops deploy runs): {truss_name}, {truss_hash}, {truss_hash_short};
- ``predict_url_template`` (truss versions): {service}, {namespace}, {version_id},
  {oracle_id}, {artifact}, {truss_hash};
- ``legacy_predict_url_template`` (legacy versions, no truss hash): {version_id},
  {oracle_id}, {artifact}, {namespace}.

``artifact`` is the version row's ``artifact`` with its ``KIND:`` prefix removed
(``kubernetes:baseten/zoo-abc`` -> ``baseten/zoo-abc``; ``legacy:artifacts/abc`` ->
``artifacts/abc``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from string import Formatter

IMAGE_FIELDS = ("truss_name", "truss_hash", "truss_hash_short")
TRUSS_URL_FIELDS = ("service", "namespace", "version_id", "oracle_id", "artifact", "truss_hash")
LEGACY_URL_FIELDS = ("version_id", "oracle_id", "artifact", "namespace")


def template_fields(template: str) -> list[str]:
    """The field names of a ``str.format`` template, in order; ValueError when malformed.

    Algorithm: :meth:`string.Formatter.parse`; a field's name is what precedes any
    attribute access, index, conversion or format spec (``{a.b[0]!r:>5}`` -> ``a``).
    """
    names: list[str] = []
    for _, name, _, _ in Formatter().parse(template):
        if name is None:
            continue
        base = name.split(".", 1)[0].split("[", 1)[0]
        if not base or base.isdigit():
            raise ValueError(f"positional field {{{name}}}")
        names.append(base)
    return names


def template_problem(template: str, allowed: Iterable[str]) -> str | None:
    """None when ``template`` uses only ``allowed`` fields, else what is wrong (one line)."""
    allowed = tuple(allowed)
    try:
        names = template_fields(template)
    except ValueError as exc:
        return f"{template!r} is not a valid template ({exc})"
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        fields = ", ".join("{" + f + "}" for f in allowed)
        bad = ", ".join("{" + f + "}" for f in unknown)
        return f"{template!r} uses unknown field(s) {bad}; allowed: {fields}"
    return None


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with its fields replaced (fields already checked by template_problem)."""
    return template.format_map(dict(values))


def artifact_path(artifact: str | None) -> str:
    """The artifact reference without its ``KIND:`` prefix; empty for none."""
    if not artifact:
        return ""
    kind, sep, rest = artifact.partition(":")
    return rest if sep else kind
