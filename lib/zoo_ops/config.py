"""Environments: `zoo_ops.toml` (DESIGN §2).

An environment named ``local`` always exists, also without the file: the embedded
default. ``${VAR}`` in a value is read from the process environment when the
environment is loaded and is never written back anywhere (a trail shows the
redacted form, see :func:`zoo_ops.domain.redaction.redact_url`).

Every environment name -- each ``[env.NAME]`` table and the one asked for -- obeys the
one name rule (:mod:`zoo_ops.domain.names`) before it is used: it becomes the trail
folder ``executed/ENV/`` and the default ``state_dir`` ``.zoo/ENV``, so ``[env.".."]``
must never load. A bad name anywhere in the file refuses the file, whichever
environment was asked for: the operator learns of it at once, not when that
environment is first used.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from zoo_ops.domain.capacity import check_scalable_pools
from zoo_ops.domain.names import name_problem, rule
from zoo_ops.domain.paths import confined
from zoo_ops.domain.redaction import redact_url
from zoo_ops.domain.url_templates import TRUSS_URL_FIELDS
from zoo_ops.errors import ConfigError

CONFIG_ENV_VAR = "ZOO_OPS_CONFIG"
CONFIG_FILE_NAME = "zoo_ops.toml"
LOCAL = "local"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class SubmitConfig:
    """``[env.NAME.submit]``: the Job `zoo-ops submit` creates (names only: the
    configuration and the credentials stay in the cluster's ConfigMap and Secrets)."""

    image: str
    config_map: str  # holds zoo_ops.toml (key CONFIG_FILE_NAME), mounted read-only
    namespace: str = ""  # empty: the environment's namespace
    service_account: str = "zoo-ops"
    secrets: tuple[str, ...] = ()  # Secrets whose keys become the pod's environment
    active_deadline_s: int = 6 * 3600


@dataclass(frozen=True)
class EnvironmentConfig:
    """One `[env.NAME]` table, with every ${VAR} already expanded and paths resolved."""

    name: str
    root: Path
    database_url: str = "sqlite:///.zoo/local.db"
    settings: str = "file:.zoo/local/dynamic-settings.yaml"
    serving: str = "local"
    truss_root: str = "truss_models"
    executed_root: str = "executed"
    test_user_email: str = ""
    kube_context: str = ""
    namespace: str = "baseten"
    configmap: str = "baseten-django-dynamic-settings"
    secret_name: str = "model-zoo-admin-secrets"
    predict_url_template: str = (
        "http://{service}.{namespace}.svc.cluster.local/v1/models/model:predict"
    )
    # Version kind "legacy" (no truss hash): how 02 reaches a version zoo-ops did not
    # deploy. Empty: such versions are reachable only where serving runs them itself
    # (``serving = "local"``). Fields: {version_id}, {oracle_id}, {artifact}, {namespace}.
    legacy_predict_url_template: str = ""
    requires: str = ""
    protected: bool = False
    # Who deploys zoo versions: "zoo-ops" (the embedded reconciler creates version rows and
    # serving objects) or "platform" (zoo-ops writes the whitelist and observes the
    # platform's own automation). See DESIGN §8.
    automation: str = "zoo-ops"
    # For automation = "zoo-ops" on Kubernetes: the image a deploy runs, and the
    # imagePullSecrets its pods carry. Fields: {truss_name}, {truss_hash}, {truss_hash_short}.
    image: str = "truss-models/{truss_name}:{truss_hash_short}"
    image_pull_secrets: tuple[str, ...] = ()
    # ``[env.NAME.capacity] scalable_pools = { T4 = 2 }``: accelerators of each type the
    # cluster's autoscaler can still add (scale-from-zero pools), counted as free capacity.
    scalable_pools: dict[str, int] = field(default_factory=dict, hash=False)
    # ``[env.NAME.submit]``: how `zoo-ops submit` runs a runbook as a Kubernetes Job.
    submit: SubmitConfig | None = field(default=None, hash=False)
    state_dir: str = ".zoo/local"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def path(self, value: str) -> Path:
        """A configured path, resolved against the directory holding zoo_ops.toml."""
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    @property
    def truss_root_path(self) -> Path:
        return self.path(self.truss_root)

    @property
    def executed_root_url(self) -> str | None:
        """``s3://BUCKET/PREFIX`` when the trail lives on object storage, else None."""
        return remote_trail_root(self.executed_root, "executed_root")

    @property
    def executed_root_path(self) -> Path:
        """The trail's local folder: the configured one, or for a remote trail the local
        read cache that mirrors it (:func:`trail_cache_path`)."""
        url = self.executed_root_url
        return trail_cache_path(url) if url else self.path(self.executed_root)

    @property
    def trail_spool_path(self) -> Path:
        """Where a run on a remote trail keeps its notebook until the one final PUT."""
        return self.state_path / "trail-spool"

    @property
    def state_path(self) -> Path:
        """Where this environment keeps local state (artifacts, hash cache, settings file)."""
        return self.path(self.state_dir)

    def truss_path(self, model: str) -> Path:
        """``truss_root/MODEL``, refused (:class:`BadInput`) when MODEL could leave truss_root.

        Callers pass a model name already checked by the name rule; the confinement is the
        second lock on the same door.
        """
        return confined(self.truss_root_path, model)

    def trail_path(self, model: str | None = None) -> Path:
        """``executed_root/ENV`` (or ``.../ENV/MODEL``), confined to ``executed_root``."""
        parts = (self.name,) if model is None else (self.name, model)
        return confined(self.executed_root_path, *parts)

    @property
    def database_url_resolved(self) -> str:
        """The database URL with a relative SQLite path made absolute against the root."""
        return resolve_sqlite_url(self.database_url, self.root)

    @property
    def database_url_redacted(self) -> str:
        return redact_url(self.database_url_resolved)


# --- executed_root: a local folder or an object-storage URL --------------------------------

TRAIL_CACHE_ENV = "ZOO_OPS_TRAIL_CACHE"
# The URL schemes a trail can live on (zoo_ops.trail.stores serves each).
REMOTE_TRAIL_SCHEMES = ("s3",)
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def remote_trail_root(value: str, where: str) -> str | None:
    """``value`` as a remote trail URL (``s3://BUCKET[/PREFIX]``, no trailing slash), None
    for a local folder. Any other ``SCHEME:`` (two letters or more: not a drive letter) is a
    :class:`ConfigError`: a URL must never silently become a local folder named ``s3:``."""
    match = _URL_SCHEME.match(value)
    if match is None:
        return None
    scheme = match.group(1).lower()
    fix = "use a local folder or s3://BUCKET/PREFIX"
    if scheme not in REMOTE_TRAIL_SCHEMES:
        raise ConfigError(f"{where}: {value!r}: zoo-ops cannot keep a trail on {scheme}:; {fix}")
    rest = value[match.end() :]
    if not rest.startswith("//"):
        raise ConfigError(f"{where}: {value!r} is not a URL ({scheme}://BUCKET/PREFIX); {fix}")
    bucket, _, prefix = rest[2:].partition("/")
    parts = [p for p in prefix.split("/") if p]
    if not bucket or any(p in (".", "..") for p in parts) or "?" in value or "#" in value:
        raise ConfigError(f"{where}: {value!r} names no bucket or a bad prefix; {fix}")
    return "/".join([f"{scheme}://{bucket}", *parts])


def trail_cache_path(url: str) -> Path:
    """The local read cache of a remote trail (or of one notebook in it): the URL's bucket
    and key under ``$ZOO_OPS_TRAIL_CACHE``, else ``$XDG_CACHE_HOME/zoo-ops/trail``, else
    ``~/.cache/zoo-ops/trail``. A function of the URL alone, so every reader finds a
    notebook the runs table names by URL in the same place."""
    scheme, _, rest = url.partition("://")
    parts = [p for p in rest.split("/") if p and p not in (".", "..")]
    return trail_cache_base().joinpath(scheme, *parts)


def trail_cache_base() -> Path:
    base = os.environ.get(TRAIL_CACHE_ENV)
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(xdg) / "zoo-ops" / "trail")
    return Path(base)


def cached_url(path: Path) -> str | None:
    """The object URL a file of the trail cache mirrors (None: not in the cache); what an
    operator is shown, and can pass on, instead of the cache's private path."""
    try:
        scheme, *parts = Path(path).relative_to(trail_cache_base()).parts
    except ValueError:
        return None
    return f"{scheme}://{'/'.join(parts)}" if scheme in REMOTE_TRAIL_SCHEMES and parts else None


_FIELDS = {f.name for f in fields(EnvironmentConfig)} - {
    "name",
    "root",
    "raw",
    "scalable_pools",
    "submit",
}
# Keys whose value is not a string; each has its own reader below.
_TABLE_KEYS = {"capacity", "submit"}
AUTOMATION_MODES = ("zoo-ops", "platform")


def resolve_sqlite_url(url: str, root: Path) -> str:
    """Make ``sqlite:///relative.db`` absolute against ``root``; other URLs unchanged."""
    if not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return url
    rel = url[len("sqlite:///") :]
    if rel in ("", ":memory:"):
        return url
    return f"sqlite:///{(root / rel).resolve()}"


def expand_vars(value: str, where: str, environ: dict[str, str] | None = None) -> str:
    """Replace each ``${VAR}`` by the process environment's value; an unset one is an error."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(
                f"{where}: environment variable {name} is not set; export it or edit the config"
            )
        return env[name]

    return _VAR.sub(sub, value)


# What marks a zoo-ops checkout (the built-in `local` environment's root) on the way up.
PROJECT_MARKER = Path("runbooks") / "03_migrate.ipynb"


def config_path(cwd: Path | None = None) -> Path:
    """Where the configuration is, the same from any folder of the project.

    ``$ZOO_OPS_CONFIG`` when set. Else walk up from the working directory, nearest
    first: the first folder holding ``zoo_ops.toml`` gives that file; the first folder
    that is a zoo-ops checkout (it holds ``runbooks/03_migrate.ipynb``) gives its
    ``zoo_ops.toml``, which need not exist (the built-in ``local``, rooted there). A
    kernel Jupyter starts in ``runbooks/`` thus uses the checkout's database and trail,
    not a new ``runbooks/.zoo``. Outside any project: ``zoo_ops.toml`` in the working
    directory. Relative paths in the file are relative to its folder.
    """
    explicit = os.environ.get(CONFIG_ENV_VAR, "").strip()
    if explicit:
        return Path(explicit)
    start = (cwd or Path.cwd()).absolute()
    for folder in (start, *start.parents):
        if _is_file(folder / CONFIG_FILE_NAME) or _is_file(folder / PROJECT_MARKER):
            return folder / CONFIG_FILE_NAME
    return start / CONFIG_FILE_NAME


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder on the way up we may not look into
        return False


def read_config_tables(path: Path) -> dict[str, dict[str, Any]]:
    """The `[env.*]` tables of a config file; a missing default file means none."""
    if not path.exists():
        if os.environ.get(CONFIG_ENV_VAR):
            raise ConfigError(f"{CONFIG_ENV_VAR}={path}: no such file; fix the path or unset it")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML ({exc}); fix the file") from exc
    envs = data.get("env", {})
    if not isinstance(envs, dict) or not all(isinstance(v, dict) for v in envs.values()):
        raise ConfigError(f"{path}: [env.NAME] tables expected; see DESIGN §2")
    return envs


def check_environment_name(name: object, where: str = "") -> str:
    """``name`` when it obeys the name rule, else :class:`ConfigError` in one line.

    ``where`` says where the name came from (the config file); without it the name was
    asked for (``-e``).
    """
    problem = name_problem("environment", name)
    if problem is None:
        assert isinstance(name, str)
        return name
    origin = f"{where}: " if where else ""
    fix = "rename the table" if where else "pass -e with a valid name"
    raise ConfigError(f"{origin}{problem}; {rule('environment')}; {fix}")


def checked_tables(path: Path) -> dict[str, dict[str, Any]]:
    """:func:`read_config_tables`, every table's name checked by the name rule."""
    tables = read_config_tables(path)
    for name in tables:
        check_environment_name(name, f"{path} [env.*]")
    return tables


def environment_names(cwd: Path | None = None) -> list[str]:
    path = config_path(cwd)
    return sorted({LOCAL, *checked_tables(path)})


def load_environment(name: str = LOCAL, cwd: Path | None = None) -> EnvironmentConfig:
    """The named environment, ${VAR}s expanded. Unknown names list the known ones."""
    check_environment_name(name)
    path = config_path(cwd)
    tables = checked_tables(path)
    root = path.parent.resolve()
    if name not in tables and name != LOCAL:
        known = ", ".join(sorted({LOCAL, *tables}))
        raise ConfigError(f"unknown environment {name!r}; known environments: {known}")
    table = tables.get(name, {})
    allowed = _FIELDS | _TABLE_KEYS
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: [env.{name}] has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path.name} [env.{name}] {key}"
        if key == "protected":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: must be true or false")
            values[key] = value
        elif key == "image_pull_secrets":
            values[key] = _string_list(value, where)
        elif key == "capacity":
            values["scalable_pools"] = _capacity_table(value, where)
        elif key == "submit":
            values["submit"] = _submit_table(value, where)
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string")
        else:
            values[key] = expand_vars(value, where)
    if values.get("automation", "zoo-ops") not in AUTOMATION_MODES:
        raise ConfigError(
            f"{path.name} [env.{name}] automation: {values['automation']!r} is not one of "
            f"{', '.join(AUTOMATION_MODES)}; see DESIGN §8"
        )
    _check_platform_automation(values, f"{path.name} [env.{name}]")
    if "executed_root" in values:
        remote_trail_root(values["executed_root"], f"{path.name} [env.{name}] executed_root")
    if name != LOCAL:
        values.setdefault("state_dir", f".zoo/{name}")
    return EnvironmentConfig(name=name, root=root, raw=dict(table), **values)


def _check_platform_automation(values: dict[str, Any], where: str) -> None:
    """Where the platform deploys, zoo-ops must be told how its versions are reached.

    The default ``predict_url_template`` names the Service zoo-ops's own automation
    creates (``{service}``): a version the platform deployed has no such Service, so 02
    would call an address that does not exist. In-process (``local``) serving cannot
    serve what a platform deployed either."""
    if values.get("automation") != "platform":
        return
    if values.get("serving", "local") == "local":
        raise ConfigError(
            f'{where}: automation = "platform" needs serving = "kubernetes" (the platform '
            "serves what it deploys); set serving, or use the default automation"
        )
    if "predict_url_template" not in values:
        fields = ", ".join(f"{{{name}}}" for name in TRUSS_URL_FIELDS)
        raise ConfigError(
            f'{where}: automation = "platform" needs predict_url_template: how the '
            f"platform's truss versions are reached (fields: {fields}); the default names "
            "a Service only zoo-ops creates"
        )


def _string_list(value: object, where: str) -> tuple[str, ...]:
    """A TOML array of non-empty strings (``image_pull_secrets = ["regcred"]``)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: must be an array of non-empty strings")
    return tuple(expand_vars(v, where) for v in value)


_SUBMIT_NAMES = ("config_map", "namespace", "service_account")


def _submit_table(value: object, where: str) -> SubmitConfig:
    """``[env.NAME.submit]``: image and config_map required; every name a DNS-1123 name."""
    from zoo_ops.domain.job_manifest import dns_name_problem

    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table (image, config_map, ...)")
    allowed = {f.name for f in fields(SubmitConfig)}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    for required in ("image", "config_map"):
        if not isinstance(value.get(required), str) or not value[required]:
            raise ConfigError(f"{where}.{required}: required, a non-empty string")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "secrets":
            out[key] = _string_list(item, f"{where}.secrets")
            names = list(out[key])
        elif key == "active_deadline_s":
            if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
                raise ConfigError(f"{where}.active_deadline_s: a whole number of seconds > 0")
            out[key] = item
            continue
        elif not isinstance(item, str):
            raise ConfigError(f"{where}.{key}: must be a string")
        else:
            out[key] = expand_vars(item, f"{where}.{key}")
            names = [out[key]] if key in _SUBMIT_NAMES and out[key] else []
        for name in names:
            problem = dns_name_problem(name)
            if problem:
                raise ConfigError(f"{where}.{key}: {name!r} {problem}")
    return SubmitConfig(**out)


def _capacity_table(value: object, where: str) -> dict[str, int]:
    """``[env.NAME.capacity]``: only ``scalable_pools``, a table of accelerator -> count >= 0."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a table with scalable_pools")
    unknown = sorted(set(value) - {"scalable_pools"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: scalable_pools")
    pools = value.get("scalable_pools", {})
    if not isinstance(pools, dict):
        raise ConfigError(f"{where}.scalable_pools: must be a table of accelerator = count")
    out: dict[str, int] = {}
    for accelerator, count in pools.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigError(
                f"{where}.scalable_pools {accelerator}: must be a whole number >= 0 "
                "(accelerators the autoscaler can add)"
            )
        out[str(accelerator)] = count
    check_scalable_pools(out, where)
    return out
