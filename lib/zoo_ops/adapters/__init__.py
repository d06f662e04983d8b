"""Adapters to the outside world, each behind a small protocol and chosen by configuration."""
