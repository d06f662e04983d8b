"""Test support shipped with the package: the Kubernetes API stand-in and fixtures."""
