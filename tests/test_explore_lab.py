"""`zoo-ops lab`: JupyterLab on 127.0.0.1 with a token, over the demo.

The server answers its API only with the token it printed, and Ctrl-C stops it with exit
0; a bad environment is one line and exit 2. In a real browser (Playwright driving
Debian's Chromium, no browser download): explore.ipynb runs every cell, the zoo models and
their application counts it shows are the database's, and a write typed into a new cell is
refused by the database and changes nothing.
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
REFUSED = "attempt to write a readonly database"
URL = re.compile(r"^(http://127\.0\.0\.1:(\d+)/lab/tree/explore\.ipynb\?token=([\w-]+))$")


def _names(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(s.oracles.c.id, s.oracles.c.name)).all())


def _start_lab(cwd: Path) -> tuple[subprocess.Popen[str], str]:
    lab = subprocess.Popen(
        [sys.executable, "-m", "zoo_ops.cli", "lab", "-e", "local", "--no-browser"],
        cwd=cwd,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        # The server's own log, kept beside the test's files: what to read when it fails.
        stderr=(cwd / "lab.log").open("w"),
        text=True,
    )
    assert lab.stdout is not None
    for line in lab.stdout:
        found = URL.match(line.strip())
        if found:
            return lab, found.group(1)
    raise AssertionError(f"zoo-ops lab printed no URL; exit {lab.wait()}")


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
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            try:
                page.goto(url)
                page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
                # The kernel is connected once the status bar names it as idle (the
                # toolbar's indicator says idle before any kernel is there).
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                    ".some(e => /zoo-ops.*\\| Idle/.test(e.textContent))"
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
        if lab.poll() is None:  # stopped as Ctrl-C does: the server has a session of its own
            lab.send_signal(signal.SIGTERM)
            try:
                lab.wait(timeout=60)
            except subprocess.TimeoutExpired:
                lab.kill()
                lab.wait()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_lab_serves_with_its_token_only_and_stops_on_ctrl_c(demo_env, tmp_path: Path) -> None:
    lab, url = _start_lab(tmp_path)
    try:
        port, token = URL.match(url).group(2, 3)  # type: ignore[union-attr]
        api = f"http://127.0.0.1:{port}/api/status"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(api, timeout=30)
        assert refused.value.code == 403
        request = urllib.request.Request(api, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200 and "started" in json.loads(answer.read())
        assert (tmp_path / "explore.ipynb").is_file()
    finally:
        lab.send_signal(signal.SIGINT)
        code = lab.wait(timeout=60)
    assert code == 0
