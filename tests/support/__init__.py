"""Helpers shared by several test modules (importable as ``support``: pytest puts
``tests/``, the directory of the rootdir conftest, on ``sys.path``)."""
