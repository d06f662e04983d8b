"""The migration engine: move user versions from one zoo version to another, journaled.

``plan`` decides (pure), ``store`` reads the facts and executes a batch (SQL),
``engine`` runs a plan in either direction to the end, batch by batch.
"""
