"""`zoo-ops lab` in a real browser: JupyterLab on 127.0.0.1 with a token, driven by
Playwright through Debian's Chromium (no browser download), over the demo.

It opens explore.ipynb, runs all cells, reads the zoo models and their application
counts from the rendered table and compares them with the database; a write typed into
a new cell is refused by the database (its error shown in the output) and changes
nothing; Ctrl-C stops the server and the command exits 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from zoo_ops.adapters.platform import schema as s

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 180_000
URL = re.compile(r"^(http://127\.0\.0\.1:(\d+)/lab/tree/explore\.ipynb\?token=([\w-]+))$")
REFUSED = "attempt to write a readonly database"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def _names(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(s.oracles.c.id, s.oracles.c.name)).all())


def _start_lab(cwd: Path) -> tuple[subprocess.Popen[str], str]:
    lab = subprocess.Popen(
        [sys.executable, "-m", "zoo_ops.cli", "lab", "-e", "local", "--no-browser"],
        cwd=cwd,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert lab.stdout is not None
    for line in lab.stdout:
        found = URL.match(line.strip())
        if found:
            return lab, found.group(1)
    raise AssertionError(f"zoo-ops lab printed no URL; exit {lab.wait()}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lab_runs_explore_in_chromium_and_refuses_writes(demo_env, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    platform = demo_env.platform
    expected = {
        zoo.name: platform.count_proxying(platform.current_version(zoo).id)
        for zoo in platform.zoo_models()
    }
    names_before = _names(platform.engine)
    lab, url = _start_lab(tmp_path)
    try:
        port, token = URL.match(url).group(2, 3)  # type: ignore[union-attr]
        assert len(token) >= 40
        # The token is required: without it the API answers 403.
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents")
        assert denied.value.code == 403
        # The notebook's session, started over the API with the token: the page then
        # attaches to its zoo-ops kernel instead of asking which kernel to start.
        started = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/sessions?token={token}",
            data=json.dumps(
                {"path": "explore.ipynb", "type": "notebook", "kernel": {"name": "zoo-ops"}}
            ).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(started, timeout=60) as reply:
            assert json.load(reply)["kernel"]["name"] == "zoo-ops"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            try:
                page.goto(url)
                page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')]"
                    ".some(e => e.getAttribute('data-status') === 'idle')"
                )
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
                # Done: every code cell has its number, and the plot is an image.
                page.wait_for_function(
                    """() => {
                      const prompts = [...document.querySelectorAll(
                        '.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
                      return prompts.length >= 6 && prompts.every(p => /\\[\\d+\\]/.test(p))
                        && document.querySelector('.jp-OutputArea-output img') !== null;
                    }"""
                )
                assert (
                    "zoo-ops session: env 'local'"
                    in page.locator(".jp-OutputArea").first.inner_text()
                )
                rows = page.evaluate(
                    """() => {
                      const t = document.querySelectorAll('.jp-CodeCell')[1]
                        .querySelector('.jp-OutputArea-output table');
                      const head = [...t.querySelectorAll('thead th')].map(h => h.textContent.trim());
                      return [...t.querySelectorAll('tbody tr')].map(r => {
                        const cells = [...r.children].map(c => c.textContent.trim());
                        return Object.fromEntries(head.map((h, i) => [h, cells[i]]));
                      });
                    }"""
                )
                shown = {r["model"]: int(r["on_current"]) for r in rows}
                assert shown == expected
                image = page.locator(".jp-OutputArea-output img").last
                assert image.get_attribute("src", timeout=5000).startswith("data:image/png")
                assert image.bounding_box()["width"] > 100  # type: ignore[index]
                # A write from a new cell at the end: refused by the database.
                page.locator(".jp-CodeCell").last.locator(".jp-InputArea-prompt").click()
                page.keyboard.press("Escape")
                page.keyboard.press("b")
                page.keyboard.press("Enter")
                page.keyboard.type("%sql UPDATE oracles_oracle SET name = id")
                page.keyboard.press("Shift+Enter")
                page.get_by_text(REFUSED).first.wait_for()
                page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
            finally:
                # Kept as the test's artifact: what the browser showed, passed or failed.
                page.screenshot(path=str(tmp_path / "explore-last.png"), full_page=True)
                browser.close()
        assert _names(platform.engine) == names_before
        lab.send_signal(signal.SIGINT)
        assert lab.wait(timeout=60) == 0
    finally:
        if lab.poll() is None:  # a failed test: stop the server through zoo-ops, as Ctrl-C
            lab.send_signal(signal.SIGTERM)
            lab.wait(timeout=60)


def test_lab_with_a_bad_environment_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zoo_ops.cli", "lab", "-e", "no/such", "--no-browser"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no/such" in done.stderr
    assert not (tmp_path / "explore.ipynb").exists()
