"""Local serving: artifacts in the environment's state directory, models in this process.

Deploy copies the truss (exactly what its content hash covers: see ``copy_truss``)
into ``state_path/artifacts/<version_id>``: a new folder is filled beside it and renamed
into place, so a half-copied artifact is never seen. Readiness is the model loading
(``__init__`` and ``load``) with the admin organization's secrets. Loaded models are
cached per (artifact folder, version id) for the life of the process, so a runbook's many
predictions load each version once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo_ops.adapters.legacy_runtime import load_legacy_model
from zoo_ops.adapters.serving import Removal
from zoo_ops.adapters.truss_files import copy_truss_content
from zoo_ops.adapters.truss_runtime import LoadedModel, load_truss_model
from zoo_ops.errors import StepFailed, ZooOpsError

if TYPE_CHECKING:
    from zoo_ops.adapters.platform.store import OracleVersion
    from zoo_ops.domain.truss_config import TrussConfig

ARTIFACTS_DIR = "artifacts"
TRUSS_KIND = "truss"
LEGACY_KIND = "legacy"

# Process-wide: several Environment objects (a kernel, a test) may serve the same version.
_MODELS: dict[tuple[str, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()
_LOAD_LOCKS: dict[tuple[str, str], threading.Lock] = {}


def parse_artifact(artifact: str) -> tuple[str, str]:
    """``"truss:artifacts/abc"`` -> ``("truss", "artifacts/abc")``; StepFailed for any
    other form (a reference this adapter did not write)."""
    kind, sep, rel = artifact.partition(":")
    parts = Path(rel).parts
    if not sep or kind not in (TRUSS_KIND, LEGACY_KIND) or not parts or ".." in parts:
        raise StepFailed(
            f"artifact {artifact!r} is not a local artifact (truss:PATH or legacy:PATH); "
            "is this version served by another environment?"
        )
    if Path(rel).is_absolute():
        raise StepFailed(f"artifact {artifact!r}: the path must be relative to the state dir")
    return kind, rel


def copy_truss(source: Path, target: Path, *, truss_hash: str = "") -> None:
    """Copy the truss folder ``source`` to ``target`` (which must not exist): exactly what
    its content hash covers (``truss_files.copy_truss_content``: the same walk, the same
    ignore patterns, the same refusal of links that leave the truss and special files).

    Algorithm: fill a temporary sibling folder; when ``truss_hash`` is given, the hash of
    the bytes written must equal it (else the truss changed since it was hashed, and
    nothing is deployed); then rename the folder into place.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        written = copy_truss_content(source, staging / "t")
        if truss_hash and written != truss_hash:
            raise StepFailed(
                f"{source} changed after it was hashed (copied {written[:12]}, expected "
                f"{truss_hash[:12]}); leave the truss folder alone during a deploy and run again"
            )
        os.replace(staging / "t", target)
    except OSError as exc:
        raise StepFailed(f"cannot copy {source} to {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class LocalServing:
    """The :class:`~zoo_ops.adapters.serving.Serving` of a ``serving = "local"`` env.

    ``secrets``: a callable returning the admin organization's secrets; called only when
    a truss model is loaded, and the values go nowhere but the model.
    """

    def __init__(
        self, state_path: Path, *, secrets: Callable[[], Mapping[str, str]] | None = None
    ) -> None:
        self.state_path = Path(state_path)
        self._secrets = secrets or dict

    @property
    def artifacts_dir(self) -> Path:
        return self.state_path / ARTIFACTS_DIR

    def artifact_path(self, artifact: str) -> Path:
        return self.state_path / parse_artifact(artifact)[1]

    # -- the protocol ------------------------------------------------------------------------

    def deploy(
        self,
        version_id: str,
        truss_dir: Path,
        truss_config: TrussConfig,
        *,
        model: str = "",
        truss_hash: str = "",
    ) -> str:
        target = self.artifacts_dir / version_id
        if target.exists():
            raise StepFailed(f"{target} already exists; version ids are never reused")
        copy_truss(Path(truss_dir), target, truss_hash=truss_hash)
        return f"{TRUSS_KIND}:{ARTIFACTS_DIR}/{version_id}"

    def wait_ready(self, version_id: str, artifact: str, timeout_s: float) -> None:
        """Load the model (in a worker thread, so that a hung ``load`` hits the timeout)."""
        outcome: dict[str, BaseException] = {}

        def load() -> None:
            try:
                self._model(version_id, artifact)
            except BaseException as exc:  # noqa: BLE001 - reported to the waiting thread
                outcome["error"] = exc

        started = time.monotonic()
        worker = threading.Thread(target=load, name=f"zoo-ops-load-{version_id}", daemon=True)
        worker.start()
        worker.join(max(timeout_s, 0.0))
        if worker.is_alive():
            raise StepFailed(
                f"version {version_id} did not load within {timeout_s:g}s "
                f"({time.monotonic() - started:.1f}s elapsed); check the model's load()"
            )
        error = outcome.get("error")
        if error is not None:
            if isinstance(error, ZooOpsError):
                raise StepFailed(f"version {version_id} failed to load: {error}") from error
            raise StepFailed(
                f"version {version_id} failed to load: {type(error).__name__}: {error}"
            ) from error

    def predict(self, version: OracleVersion, request: Any) -> Any:
        if not version.artifact:
            raise StepFailed(f"version {version.id} has no artifact; it was never deployed")
        return self._model(version.id, version.artifact).predict(request)

    def delete(self, version: OracleVersion) -> None:
        """Forget the loaded model and remove the artifact folder (truss or legacy)."""
        if not version.artifact:
            return
        folder = self.artifact_path(version.artifact)
        with _MODELS_LOCK:
            _MODELS.pop((str(folder), version.id), None)
        if folder.resolve().parent == self.artifacts_dir.resolve() and folder.exists():
            shutil.rmtree(folder)
        if folder.exists():
            raise StepFailed(f"{folder} is still there after delete; remove it by hand")

    def endpoint_problem(self, version: OracleVersion) -> str | None:
        """Local serving runs every version it has an artifact for, legacy ones too."""
        if not version.artifact:
            return f"version {version.id} has no artifact; it was never deployed here"
        return None

    def retire(self, version: OracleVersion) -> Removal:
        """Remove the version's artifact folder (truss or legacy: both are served here)."""
        if not version.artifact:
            return Removal(not_removed="no artifact recorded", why="nothing was deployed")
        folder = self.artifact_path(version.artifact)
        self.delete(version)
        return Removal(removed=f"artifact folder {folder}")

    # -- loading -----------------------------------------------------------------------------

    def _model(self, version_id: str, artifact: str) -> LoadedModel:
        """The loaded model of a version, loading it once per process."""
        kind, _ = parse_artifact(artifact)
        folder = self.artifact_path(artifact)
        key = (str(folder), version_id)
        with _MODELS_LOCK:
            cached = _MODELS.get(key)
            if cached is not None:
                return cached
            lock = _LOAD_LOCKS.setdefault(key, threading.Lock())
        with lock:
            with _MODELS_LOCK:
                cached = _MODELS.get(key)
            if cached is not None:
                return cached
            if not folder.is_dir():
                raise StepFailed(f"version {version_id}: artifact folder {folder} is missing")
            loaded: LoadedModel
            if kind == LEGACY_KIND:
                loaded = load_legacy_model(folder)
            else:
                loaded = load_truss_model(folder, secrets=self._secrets())
            with _MODELS_LOCK:
                _MODELS[key] = loaded
            return loaded
