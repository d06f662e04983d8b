"""Truss packages on disk, and the in-process runtime that serves them.

Discovery: ``truss_root/NAME/config.yaml`` makes ``NAME`` a truss.

Loading follows truss's model server (``model_wrapper.py``): import
``model_module_dir/model_class_filename``, take ``model_class_name`` from it, construct it
passing ``config``, ``data_dir`` and ``secrets`` only as keywords its ``__init__``
accepts (``**kwargs`` accepts all), call ``load()`` once if it exists, then answer each
request with ``postprocess(predict(preprocess(request)))``, each hook only if present.
Responses are passed through JSON, as the HTTP server would, so a local answer and a
served one compare equal.

Isolation: two versions of one model (say ``truss_models/iris`` and a copy) must live in
one process without sharing module state. Each loaded model gets:

- a private package with a unique name (``_zoo_ops_model_<n>``) whose ``__path__`` is the
  model directory; the model file is imported as a submodule of it, so relative imports
  (``from .helper import x``) land in modules nobody else shares;
- a private cache of the *sibling* modules it imports by plain name (``import helper``,
  or truss-style ``from model.helper import x``). While the model's code runs (import,
  ``__init__``, ``load``, ``predict``) the model directory is first on ``sys.path``,
  ``sys.modules`` entries that would shadow its siblings are set aside and the model's own
  siblings are put in; afterwards its siblings go back into its private cache and the
  set-aside entries are restored. Third-party modules it imports (numpy) stay shared, as
  they should.

Because ``sys.modules`` and ``sys.path`` are process-global, this swap is done under one
lock: calls into in-process models are serialised. Bytecode is not written, so loading a
truss never adds ``__pycache__`` to the folder whose hash is being deployed.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path
from typing import Any, Protocol

import yaml

from zoo_ops.adapters.truss_files import read_regular_text, walk_truss_folder
from zoo_ops.domain.bounded_yaml import DocumentRefused, load_bounded
from zoo_ops.domain.truss_config import Example, TrussConfig, parse_examples, parse_truss_config
from zoo_ops.errors import NotFound, StepFailed, TrussError

CONFIG_FILENAME = "config.yaml"
_MESSAGE_LIMIT = 300

# One lock for every swap of sys.modules / sys.path (see the module docstring); re-entrant
# because a model's predict may call into another isolated model.
_IMPORT_LOCK = threading.RLock()
_UNIQUE_IDS = itertools.count(1)


class LoadedModel(Protocol):
    """What serving needs from a loaded model: truss and legacy models both provide it."""

    @property
    def name(self) -> str: ...

    def predict(self, request: Any) -> Any: ...


@dataclass(frozen=True)
class TrussPackage:
    """A truss folder with its parsed config and examples."""

    path: Path
    config: TrussConfig
    examples: list[Example] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_file(self) -> Path:
        return self.path / self.config.model_module_dir / self.config.model_class_filename


# --- discovery and reading -----------------------------------------------------------------


def discover_trusses(truss_root: Path | str) -> dict[str, Path]:
    """Every ``truss_root/NAME`` folder holding a ``config.yaml``, by NAME, sorted.
    Hidden folders are skipped; a missing root is an error naming it."""
    root = Path(truss_root)
    if not root.is_dir():
        raise NotFound(f"{root}: truss root folder not found; set truss_root in zoo_ops.toml")
    return {
        entry.name: entry
        for entry in sorted(root.iterdir(), key=lambda p: p.name)
        if entry.is_dir() and not entry.name.startswith(".") and (entry / CONFIG_FILENAME).is_file()
    }


def read_truss(path: Path | str) -> TrussPackage:
    """Read and validate ``config.yaml`` and (if present) the examples file of a truss.

    The folder's content is judged first (``truss_files.walk_truss_folder``: no link out
    of the truss, no loop, no special file), so every reader of a truss -- preflights,
    the automation, 02 and 03 -- refuses the same trusses the deploy would, before
    reading a byte of them."""
    truss_dir = Path(path)
    if not truss_dir.is_dir():
        raise TrussError(f"{truss_dir}: truss folder not found")
    walk_truss_folder(truss_dir)
    config_path = truss_dir / CONFIG_FILENAME
    if not config_path.is_file():
        raise TrussError(f"{config_path}: missing; a truss folder needs a config.yaml")
    config = parse_truss_config(load_yaml_file(config_path), str(config_path))
    examples_path = truss_dir / config.examples_filename
    examples = (
        parse_examples(load_yaml_file(examples_path), str(examples_path))
        if examples_path.is_file()
        else []
    )
    package = TrussPackage(path=truss_dir, config=config, examples=examples)
    check_model_class(package)
    return package


_AST_LOCK = threading.Lock()


def check_model_class(package: TrussPackage) -> None:
    """The model file exists and defines ``model_class_name`` at its top level.

    Read with ``ast``, not imported: a preflight must not run the model's code, and a
    truss that cannot load must be refused before anything is deployed.
    """
    model_file = package.model_file
    class_name = package.config.model_class_name
    if not model_file.is_file():
        raise TrussError(
            f"{model_file}: missing; config.yaml's model_module_dir and "
            "model_class_filename must name the model file"
        )
    source = read_regular_text(model_file)
    try:
        # CPython 3.11's ast.parse is not thread-safe (two reconciles in threads fail
        # with "AST constructor recursion depth mismatch"): one parse at a time.
        with _AST_LOCK:
            tree = ast.parse(source, filename=str(model_file))
    except (SyntaxError, ValueError, RecursionError) as exc:
        raise TrussError(
            f"{model_file}: not readable Python ({exc.__class__.__name__}: {exc})"
        ) from None
    defined = (
        {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        | {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        | {
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
    )
    if class_name not in defined:
        raise TrussError(
            f"{model_file}: no class {class_name}; define it or set model_class_name in config.yaml"
        )


def load_yaml_file(path: Path) -> Any:
    """YAML-load one file; unreadable or malformed YAML is a TrussError naming the file
    and the line."""
    text = read_regular_text(path)
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)  # syntax first: it knows the line
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise TrussError(f"{path}: invalid YAML{where}: {problem}") from None
    try:
        return load_bounded(text)  # aliases bounded, numbers finite, text valid
    except DocumentRefused as exc:
        raise TrussError(f"{path}: {exc}") from None


# --- the in-process runtime ----------------------------------------------------------------


class IsolatedModule:
    """One Python file imported in isolation (see the module docstring)."""

    def __init__(self, module_file: Path, *, alias: str | None = None) -> None:
        """Import ``module_file``. ``alias`` is an extra top-level name under which the
        file's directory is importable as a package while this module runs (truss's
        ``model``, for ``from model.helper import x``)."""
        self.file = module_file
        self.directory = module_file.parent.resolve()
        self.package_name = f"_zoo_ops_model_{next(_UNIQUE_IDS)}"
        self._package = types.ModuleType(self.package_name)
        package_spec = ModuleSpec(self.package_name, None, is_package=True)
        package_spec.submodule_search_locations = [str(self.directory)]
        self._package.__spec__ = package_spec
        # A package's __path__ is where its submodules (relative imports) are found.
        setattr(self._package, "__path__", [str(self.directory)])  # noqa: B010
        self._alias = alias
        # Names this module's code may import that must resolve to *its* files.
        self._owned_roots = sibling_module_names(self.directory) | {self.package_name}
        if alias:
            self._owned_roots.add(alias)
        self._private_modules: dict[str, types.ModuleType] = {self.package_name: self._package}
        if alias:
            self._private_modules[alias] = self._package
        self.module = self._import()

    def _import(self) -> types.ModuleType:
        name = f"{self.package_name}.{self.file.stem}"
        spec = spec_from_file_location(name, self.file)
        if spec is None or spec.loader is None:
            raise TrussError(f"{self.file}: cannot be imported as a Python module")
        module = module_from_spec(spec)
        with self.running():
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise TrussError(
                    f"{self.file}: failed to import: {describe_exception(exc)}"
                ) from exc
        return module

    @contextmanager
    def running(self) -> Iterator[None]:
        """Run code of this module with its own siblings importable and nobody else's."""
        with _IMPORT_LOCK:
            set_aside = {
                name: sys.modules.pop(name)
                for name in list(sys.modules)
                if _is_owned(name, self._owned_roots)
            }
            sys.modules.update(self._private_modules)
            sys.path.insert(0, str(self.directory))
            saved_dont_write = sys.dont_write_bytecode
            sys.dont_write_bytecode = True
            try:
                yield
            finally:
                sys.dont_write_bytecode = saved_dont_write
                _remove_first(sys.path, str(self.directory))
                self._private_modules = {
                    name: sys.modules.pop(name)
                    for name in list(sys.modules)
                    if _is_owned(name, self._owned_roots)
                }
                sys.modules.update(set_aside)

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.running():
            return func(*args, **kwargs)


class LoadedTrussModel:
    """A truss's model object, loaded once and ready to ``predict``."""

    def __init__(self, package: TrussPackage, secrets: Mapping[str, str] | None = None) -> None:
        self.package = package
        self.name = package.config.model_name or package.name
        self.model_file = package.model_file
        if not self.model_file.is_file():
            raise TrussError(
                f"{self.model_file}: missing; config.yaml's model_module_dir and "
                "model_class_filename must name the model file"
            )
        self._module = IsolatedModule(self.model_file, alias=package.config.model_module_dir)
        class_name = package.config.model_class_name
        model_class = getattr(self._module.module, class_name, None)
        if not inspect.isclass(model_class):
            raise TrussError(
                f"{self.model_file}: no class {class_name}; define it or set model_class_name "
                "in config.yaml"
            )
        declared = package.config.secrets
        given = secrets or {}
        init_kwargs = accepted_keywords(
            model_class,
            {
                "config": dict(package.config.raw),
                "data_dir": package.path / package.config.data_dir,
                # Only the secrets the truss declares, as truss does; read-only.
                "secrets": types.MappingProxyType(
                    {name: given[name] for name in declared if name in given}
                ),
            },
        )
        self._model = self._run_step("__init__", model_class, **init_kwargs)
        load = getattr(self._model, "load", None)
        if callable(load):
            self._run_step("load", load)
        predict = getattr(self._model, "predict", None)
        if not callable(predict):
            raise TrussError(f"{self.model_file}: class {class_name} has no predict method")
        self._predict: Callable[[Any], Any] = predict
        self._preprocess = _optional_method(self._model, "preprocess")
        self._postprocess = _optional_method(self._model, "postprocess")

    def predict(self, request: Any) -> Any:
        """``postprocess(predict(preprocess(request)))``, answered as JSON values."""
        payload = request
        if self._preprocess:
            payload = self._run_step("preprocess", self._preprocess, payload)
        response = self._run_step("predict", self._predict, payload)
        if self._postprocess:
            response = self._run_step("postprocess", self._postprocess, response)
        return as_json_value(response, f"{self.model_file}: predict")

    def _run_step(self, step: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = self._module.call(func, *args, **kwargs)
        except Exception as exc:
            raise StepFailed(f"{self.model_file}: {step} raised {describe_exception(exc)}") from exc
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise StepFailed(
                f"{self.model_file}: {step} is async; the in-process runtime serves "
                "synchronous models only"
            )
        return result


def load_truss_model(
    path: Path | str | TrussPackage, *, secrets: Mapping[str, str] | None = None
) -> LoadedTrussModel:
    """Read the truss at ``path`` (or take an already read package) and load its model.

    ``secrets`` maps secret names to values (the admin organization's); only the names
    the truss's config declares are passed to the model."""
    package = path if isinstance(path, TrussPackage) else read_truss(path)
    return LoadedTrussModel(package, secrets=secrets)


# --- small helpers -------------------------------------------------------------------------


def accepted_keywords(func: Callable[..., Any], offered: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``offered`` keyword arguments ``func`` accepts: a parameter of that
    name that can be passed by keyword, or any name when it takes ``**kwargs`` (truss's
    ``_signature_accepts_keyword_arg``)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(offered)
    by_keyword = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {name: value for name, value in offered.items() if name in by_keyword}


def sibling_module_names(directory: Path) -> set[str]:
    """Top-level names importable from ``directory``: ``x.py`` gives ``x``, a sub-folder
    with an identifier name gives a (possibly namespace) package."""
    names: set[str] = set()
    for entry in directory.iterdir():
        if entry.is_file() and entry.suffix == ".py" and entry.stem.isidentifier():
            names.add(entry.stem)
        elif entry.is_dir() and entry.name.isidentifier() and entry.name != "__pycache__":
            names.add(entry.name)
    return names


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, cut to a readable length."""
    text = " ".join(str(exc).split())
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return (
        described if len(described) <= _MESSAGE_LIMIT else described[: _MESSAGE_LIMIT - 3] + "..."
    )


def as_json_value(value: Any, what: str) -> Any:
    """``value`` as it would arrive over HTTP: JSON-encoded and decoded. numpy arrays and
    scalars become lists and Python numbers, as truss's server encodes them."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise StepFailed(
            f"{what} returned a value that is not JSON: {describe_exception(exc)}"
        ) from exc


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and numpy scalars
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _optional_method(obj: Any, name: str) -> Callable[[Any], Any] | None:
    method = getattr(obj, name, None)
    return method if callable(method) else None


def _is_owned(module_name: str, roots: set[str]) -> bool:
    return module_name.split(".", 1)[0] in roots


def _remove_first(items: list[str], value: str) -> None:
    try:
        items.remove(value)
    except ValueError:
        pass
