"""The one registry of secret values and database passwords the test suite uses.

Every test that plants a secret or a password takes it from here, so that the secret
scan (:mod:`zoo_ops.testing.secret_scan`) knows every value that must never reach an
executed notebook, a log, a report or any other file a test run leaves behind.

The values are made up (trust auth ignores passwords; the secrets open nothing), long
and distinctive enough that finding one in a file is never a coincidence.
"""

from __future__ import annotations

from zoo_ops.testing.kube_api import DEFAULT_TOKEN

# Database passwords put into PostgreSQL URLs (trust auth ignores them).
RUNBOOK_DATABASE_PASSWORD = "pg-secret-pw-4471"  # tests/test_runbooks_copy_verify.py
DEMO_DATABASE_PASSWORD = "pw-d0-not-print-7731"  # tests/test_demo.py
# tests/test_secret_scrub.py: a password given as a URL's ``?password=`` query parameter
# (with "@", "/" and "&", so that its URL and HTML encodings differ), and one of a database
# that is never reachable.
QUERY_DATABASE_PASSWORD = "qs-pw/never@echo&8812"
UNREACHABLE_DATABASE_PASSWORD = "unreachable-pw-3390"
DATABASE_PASSWORDS: tuple[str, ...] = (
    RUNBOOK_DATABASE_PASSWORD,
    DEMO_DATABASE_PASSWORD,
    QUERY_DATABASE_PASSWORD,
    UNREACHABLE_DATABASE_PASSWORD,
)

# Secret values planted in secret stores.
HF_TOKEN_NOT_HUGGING_FACE = "not-a-hugging-face-token"  # tests/test_automation.py
HF_TOKEN_VALID_LOOKING = "hf_a_valid_looking_token"  # tests/test_automation.py
KUBE_SECRET_VALUE = "hf_secret_value_never_shown"  # tests/test_serving_kubernetes.py
# tests/test_secret_scrub.py: an admin-org secret that a model's load() quotes in the
# error it raises (the model code itself never holds it).
MODEL_ERROR_SECRET = "sk-model-load-secret-5519"
# The Kubernetes stand-in's bearer token: a credential of the kubeconfig files only.
KUBE_BEARER_TOKEN = DEFAULT_TOKEN
SECRET_VALUES: tuple[str, ...] = (
    HF_TOKEN_NOT_HUGGING_FACE,
    HF_TOKEN_VALID_LOOKING,
    KUBE_SECRET_VALUE,
    MODEL_ERROR_SECRET,
    KUBE_BEARER_TOKEN,
)

# Files that hold a credential by design and are the test's input, not zoo-ops's output:
# a kubeconfig carries the stand-in's token. Matched against the file name (fnmatch).
CREDENTIAL_FILE_PATTERNS: tuple[str, ...] = ("kubeconfig*",)
# The table that is the local secret store by design; every other table of a SQLite
# database a test leaves behind is scanned.
SECRET_STORE_TABLES: tuple[str, ...] = ("secrets_secret",)


def demo_secret_values() -> tuple[str, ...]:
    """The demo catalog's secrets (``zoo-ops demo`` puts them in the admin organization)."""
    from zoo_ops.commands.demo import load_catalog

    return tuple(str(v) for v in load_catalog().secrets.values())


def all_secret_values() -> tuple[str, ...]:
    """Every value the scan looks for, longest first, without duplicates."""
    values = {*DATABASE_PASSWORDS, *SECRET_VALUES, *demo_secret_values()}
    return tuple(sorted(values, key=lambda v: (-len(v), v)))
