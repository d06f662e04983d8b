"""Alembic migrations of zoo-ops's own tables (``zoo_ops_*``), never the platform's.

Run in code by :mod:`zoo_ops.adapters.platform.versioning` (no ``alembic.ini``); the
revision is kept in ``zoo_ops_alembic_version`` so that it never meets a platform's own
``alembic_version`` or Django's ``django_migrations``. A revision file is frozen DDL: it
names its tables and columns itself and imports nothing from zoo-ops.
"""
