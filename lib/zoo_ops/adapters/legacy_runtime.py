"""The pre-truss ("legacy") model zoo format, served in-process from an artifact folder.

A legacy artifact is a folder::

    legacy.yaml        format: zoo-legacy/v1       (required, exactly this value)
                       entrypoint: predictor.py    (a .py file in the folder)
                       function: predict           (a function in that file)
                       ...                         (free metadata: name, framework, ...)
    predictor.py       the entrypoint
    *.json, ...        data files the entrypoint reads

Serving a request calls ``function(request)``; when the function also accepts an
``artifact_dir`` keyword it gets the folder's path, to read its data files. The function
may cache what it loads at module level: each loaded artifact gets its own module, with
the same isolation as truss models (see :mod:`zoo_ops.adapters.truss_runtime`), so two
artifacts of one model never share that cache. Answers go through JSON, like truss ones.

Errors name the file: a missing or malformed ``legacy.yaml``, a missing entrypoint or
function are :class:`~zoo_ops.errors.TrussError` (bad input); the function raising is
:class:`~zoo_ops.errors.StepFailed`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo_ops.adapters.truss_runtime import (
    IsolatedModule,
    accepted_keywords,
    as_json_value,
    describe_exception,
    load_yaml_file,
)
from zoo_ops.errors import StepFailed, TrussError

LEGACY_MANIFEST = "legacy.yaml"
LEGACY_FORMAT = "zoo-legacy/v1"


@dataclass(frozen=True)
class LegacyManifest:
    """A parsed ``legacy.yaml``."""

    entrypoint: str
    function: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def parse_legacy_manifest(data: Any, source: str) -> LegacyManifest:
    """Validate a YAML-loaded ``legacy.yaml``: ``format`` must be zoo-legacy/v1,
    ``entrypoint`` a .py file name inside the folder, ``function`` an identifier; every
    other key is metadata."""
    if not isinstance(data, Mapping):
        raise TrussError(f"{source}: expected a mapping with format, entrypoint and function")
    if data.get("format") != LEGACY_FORMAT:
        raise TrussError(f'{source}: format {data.get("format")!r}: expected "{LEGACY_FORMAT}"')
    entrypoint = data.get("entrypoint", "predictor.py")
    if (
        not isinstance(entrypoint, str)
        or not entrypoint.endswith(".py")
        or "/" in entrypoint
        or "\\" in entrypoint
    ):
        raise TrussError(f"{source}: entrypoint {entrypoint!r}: expected a .py file in the folder")
    function = data.get("function", "predict")
    if not isinstance(function, str) or not function.isidentifier():
        raise TrussError(f"{source}: function {function!r}: expected a Python function name")
    metadata = {k: v for k, v in data.items() if k not in ("format", "entrypoint", "function")}
    return LegacyManifest(entrypoint=entrypoint, function=function, metadata=metadata)


class LoadedLegacyModel:
    """A legacy artifact's predict function, imported once and ready to ``predict``."""

    def __init__(self, artifact_dir: Path) -> None:
        self.artifact_dir = artifact_dir
        manifest_path = artifact_dir / LEGACY_MANIFEST
        if not manifest_path.is_file():
            raise TrussError(f"{manifest_path}: missing; a legacy artifact folder needs one")
        self.manifest = parse_legacy_manifest(load_yaml_file(manifest_path), str(manifest_path))
        name = self.manifest.metadata.get("name")
        self.name = name if isinstance(name, str) and name else artifact_dir.name
        self.entrypoint = artifact_dir / self.manifest.entrypoint
        if not self.entrypoint.is_file():
            raise TrussError(f"{self.entrypoint}: missing; legacy.yaml's entrypoint names it")
        self._module = IsolatedModule(self.entrypoint)
        function = getattr(self._module.module, self.manifest.function, None)
        if not callable(function) or inspect.isclass(function):
            raise TrussError(
                f"{self.entrypoint}: no function {self.manifest.function}; define it or fix "
                "legacy.yaml's function"
            )
        self._function: Callable[..., Any] = function
        self._kwargs = accepted_keywords(function, {"artifact_dir": artifact_dir})

    def predict(self, request: Any) -> Any:
        try:
            response = self._module.call(self._function, request, **self._kwargs)
        except Exception as exc:
            raise StepFailed(
                f"{self.entrypoint}: {self.manifest.function} raised {describe_exception(exc)}"
            ) from exc
        return as_json_value(response, f"{self.entrypoint}: {self.manifest.function}")


def load_legacy_model(artifact_dir: Path | str) -> LoadedLegacyModel:
    """Load the legacy artifact in ``artifact_dir`` (see the module docstring)."""
    folder = Path(artifact_dir)
    if not folder.is_dir():
        raise TrussError(f"{folder}: legacy artifact folder not found")
    return LoadedLegacyModel(folder)
