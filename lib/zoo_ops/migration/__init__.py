"""The migration engine: move user versions from one zoo version to another, journaled.

``plan`` decides (pure), ``store`` reads the facts and acts on a decision (with
``locks``, the per-(environment, model) lock, and ``batches``, one transaction per
batch), ``engine`` runs a plan in either direction to the end, batch by batch.
"""
