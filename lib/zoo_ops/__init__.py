"""zoo-ops: roll model zoo models over to automatically deployed truss packages."""

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext zoo_ops``: the interactive session (:mod:`zoo_ops.explore`)."""
    import importlib

    # By name, not `from zoo_ops.explore import`: every module imports this package
    # (``zoo_ops.__version__``), and a static import here would make each of them appear
    # to import the session (and so the Environment) to the layer contracts.
    importlib.import_module("zoo_ops.explore").load_ipython_extension(ipython)
