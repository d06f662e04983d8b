"""zoo-ops: roll model zoo models over to automatically deployed truss packages."""

__version__ = "0.1.0"
