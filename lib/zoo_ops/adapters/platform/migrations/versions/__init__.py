"""Revision files (Alembic skips this ``__init__``; it makes the folder package data)."""
