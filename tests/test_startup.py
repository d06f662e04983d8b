"""What every `zoo-ops` process and kernel pays before its first line of work."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import zoo_ops, scrapbook, papermill  # nbformat -> jsonschema, as a run and a kernel do
loaded = type(sys.modules["rfc3987_syntax"]).__name__, sys.modules["rfc3987_syntax"].__doc__
from jsonschema import FormatChecker
checker = FormatChecker()
print(loaded[1].startswith("stand-in"), checker.conforms("http://example.com/\\u00e4", "iri"),
      checker.conforms("ht tp://no", "iri"))
"""


def test_the_iri_grammar_is_compiled_only_when_an_iri_is_checked() -> None:
    """jsonschema's iri check comes with JupyterLab and compiled a grammar at every
    nbformat import (about 1 s per run and per kernel start): it now loads on first use,
    and the check still answers."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "True", "False"], done.stdout + done.stderr
