"""`zoo-ops report`: the static HTML report, checked as headless Chromium renders it."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import pytest

from zoo_ops.commands.report import NOTEBOOK_CSS_NAME, build_report, render_report
from zoo_ops.commands.status import database_runs

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"headless Chromium is required for the report test; install it: {CHROMIUM_INSTALL}"
    )


def rendered_dom(page: Path, profile: Path) -> str:
    """The DOM after Chromium loaded and laid out ``page`` (not the file's text)."""
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """Elements with their attributes and text: enough to check rows, classes and links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in {"br", "meta", "link", "img", "input", "hr"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, Any]]:
        def matches(e: dict[str, Any]) -> bool:
            for key, value in attrs.items():
                have = e["attrs"].get(key.rstrip("_")) or ""
                if key == "class_":
                    if value not in have.split():
                        return False
                elif have != value:
                    return False
            return True

        return [e for e in self.elements if e["tag"] == tag and matches(e)]


def resolve(page: Path, href: str) -> Path:
    return Path(unquote(urlparse(urljoin(page.as_uri(), href)).path))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_report_in_headless_chromium(demo_env: Any, tmp_path: Path) -> None:
    from zoo_ops.execute import execute_runbook

    chromium()  # fail early, with the install command, before the slow part
    root = demo_env.config.executed_root_path
    copied = execute_runbook("01_copy", model="iris")
    assert copied.exit_code == 0, copied.error
    failed = execute_runbook("02_verify", model="iris", parameters={"oracle_id": "nosuch"})
    # Bad input changes nothing: since issue 13 such a run is `refused`, noted beside the
    # step, never its outcome (it was FAILED before).
    assert failed.outcome == "refused"

    out = tmp_path / "report"
    with database_runs(["local"]) as runs:
        index = build_report(None, root, out, runs)
    assert index == out / "index.html"
    profile = tmp_path / "chromium-profile"
    dom = Dom(rendered_dom(index, profile))

    rows = dom.find("tr", class_="model-row")
    assert [(r["attrs"]["data-env"], r["attrs"]["data-model"]) for r in rows] == [("local", "iris")]
    verify_cell = dom.find("td", **{"data-step": "02_verify"})[0]
    assert "not-run" in verify_cell["attrs"]["class"].split()
    assert "refused x1" in verify_cell["text"] and "FAILED" not in verify_cell["text"]
    copy_cell = dom.find("td", **{"data-step": "01_copy"})[0]
    assert "succeeded" in copy_cell["text"] and "FAILED" not in copy_cell["text"]
    assert [r["attrs"]["data-outcome"] for r in dom.find("tr", class_="run")] == [
        "refused",
        "succeeded",
    ]

    links = [a["attrs"]["href"] for a in dom.find("a") if a["attrs"].get("href")]
    failed_page = out / "local" / "iris" / f"{failed.path.stem}.html"
    assert failed_page in {resolve(index, h) for h in links}
    for href in links:
        assert resolve(index, href).is_file(), f"dead link {href}"

    page = Dom(rendered_dom(failed_page, profile))
    header = page.find("nav", class_="zoo-ops-page")[0]
    assert "refused" in header["text"] and "no oracle with id" in header["text"]
    back = page.find("a", class_="back")[0]["attrs"]["href"]
    assert resolve(failed_page, back) == index
    assert page.find("div", class_="jp-Cell"), "the notebook's cells are rendered"
    sheets = [e["attrs"]["href"] for e in page.find("link", rel="stylesheet")]
    assert [resolve(failed_page, h) for h in sheets] == [out / NOTEBOOK_CSS_NAME]

    # No configuration value reaches the report (the database URL, absolute paths).
    for html in out.rglob("*.html"):
        text = html.read_text()
        assert "platform.db" not in text and str(tmp_path) not in text, html
        assert "https://" not in text and "http://" not in text, f"{html} needs the network"


def synthetic_notebook(root: Path, name: str, outcome: str, model: str = "iris") -> Path:
    """A minimal executed notebook whose `run` scrap says ``outcome``."""
    import json
    import os
    import time

    step = name.split("-", 1)[1].removesuffix(".ipynb")
    run = {"step": step, "model": model, "env": "local", "operator": "alice", "outcome": outcome}
    payload = {"name": "run", "data": run, "encoder": "json", "version": 1}
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"papermill": {"end_time": "2026-01-01T00:00:06"}},
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "execution_count": 1,
                "source": "run.finish()",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {"scrapbook": {"name": "run", "data": True, "display": False}},
                        "data": {"application/scrapbook.scrap.json+json": payload},
                    }
                ],
            }
        ],
    }
    path = root / "local" / model / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    old = time.time() - 3600
    os.utime(path, (old, old))
    return path


def test_only_changed_notebooks_are_rendered_again(tmp_path: Path) -> None:
    root, out = tmp_path / "executed", tmp_path / "report"
    a = synthetic_notebook(root, "20260101T000000Z-01_copy.ipynb", "succeeded")
    b = synthetic_notebook(root, "20260102T000000Z-02_verify.ipynb", "failed")
    first = render_report(None, root, out)
    page_a = out / "local/iris/20260101T000000Z-01_copy.html"
    page_b = out / "local/iris/20260102T000000Z-02_verify.html"
    assert sorted(first.rendered) == [page_a, page_b] and first.reused == []

    second = render_report(None, root, out)
    assert second.rendered == [] and sorted(second.reused) == [page_a, page_b]

    synthetic_notebook(root, "20260102T000000Z-02_verify.ipynb", "succeeded")  # rewritten
    c = synthetic_notebook(root, "20260103T000000Z-01_copy.ipynb", "succeeded", model="bert")
    a.unlink()
    third = render_report(None, root, out)
    page_c = out / "local/bert/20260103T000000Z-01_copy.html"
    assert sorted(third.rendered) == sorted([page_b, page_c])
    assert third.removed == [page_a] and not page_a.exists()
    assert "FAILED" not in page_b.read_text()
    assert b.exists() and c.exists()
    index = third.index.read_text()
    assert "20260101T000000Z-01_copy" not in index and "data-model='bert'" in index

    (out / "notes.html").write_text("mine")
    render_report(None, root, out)
    assert (out / "notes.html").read_text() == "mine", "the report removes only its own pages"
