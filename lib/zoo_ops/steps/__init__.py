"""The runbook steps: one module per runbook, named after it (``s03_migrate`` is
``runbooks/03_migrate.ipynb``). A step uses services, the migration engine and adapters;
it never imports another step."""
