"""zoo-ops: roll model zoo models over to automatically deployed truss packages."""

import importlib
import importlib.util
import sys
import types
from typing import Any

__version__ = "0.1.0"

_RFC3987_SYNTAX = "rfc3987_syntax"


def defer_rfc3987_syntax() -> None:
    """Put off importing ``rfc3987_syntax`` until an IRI is really checked.

    jsonschema imports it when it loads (for its ``iri`` format check); it is installed
    with JupyterLab (jupyter-events needs ``jsonschema[format-nongpl]``) and compiles a
    Lark grammar at import: about a second of every ``zoo-ops`` process and of every
    kernel start, since nbformat (papermill, scrapbook) loads jsonschema. A stand-in
    module takes its place; its ``is_valid_syntax`` (what jsonschema imports) and any
    other attribute load the real module on first use, so every check still runs.
    Nothing is done when the package is absent or already imported.
    """
    if _RFC3987_SYNTAX in sys.modules or importlib.util.find_spec(_RFC3987_SYNTAX) is None:
        return
    stand_in = types.ModuleType(_RFC3987_SYNTAX, "stand-in: the real module loads on first use")

    def real() -> Any:
        if sys.modules.get(_RFC3987_SYNTAX) is stand_in:
            del sys.modules[_RFC3987_SYNTAX]
        return importlib.import_module(_RFC3987_SYNTAX)

    def is_valid_syntax(term: str, value: str) -> Any:
        return real().is_valid_syntax(term, value)

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module's own __getattr__
        if name.startswith("__"):  # the import system's probes (__path__, __file__)
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    stand_in.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[_RFC3987_SYNTAX] = stand_in


defer_rfc3987_syntax()


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext zoo_ops``: the interactive session (:mod:`zoo_ops.explore`)."""
    # By name, not `from zoo_ops.explore import`: every module imports this package
    # (``zoo_ops.__version__``), and a static import here would make each of them appear
    # to import the session (and so the Environment) to the layer contracts.
    importlib.import_module("zoo_ops.explore").load_ipython_extension(ipython)
