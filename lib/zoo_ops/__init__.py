"""zoo-ops: roll model zoo models over to automatically deployed truss packages."""

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext zoo_ops``: the interactive session (:mod:`zoo_ops.explore`)."""
    from zoo_ops.explore import load_ipython_extension as load

    load(ipython)
