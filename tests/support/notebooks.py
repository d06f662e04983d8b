"""Executed-notebook surgery for tests: find a scrap's payloads, tamper with one."""

from __future__ import annotations

import json
from pathlib import Path


def scrap_payloads(nb: dict, scrap: str):
    """The stored payloads of one scrap (any encoder's mimetype) in a notebook's JSON."""
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            for mimetype, payload in output.get("data", {}).items():
                if (
                    mimetype.startswith("application/scrapbook.scrap.")
                    and payload.get("name") == scrap
                ):
                    yield payload


def tamper(path: Path, out: Path, scrap: str, value) -> Path:
    nb = json.loads(path.read_text())
    for payload in scrap_payloads(nb, scrap):
        payload["data"] = value
    out.write_text(json.dumps(nb))
    return out
