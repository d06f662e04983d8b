"""The pictures in the executed 02, 03 and 04 runbooks, and in the HTML report."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import nbformat
import pytest

from zoo_ops.commands.report import build_report
from zoo_ops.commands.status import database_runs
from zoo_ops.migration.engine import BatchTiming
from zoo_ops.plots import migration_over_time

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The cell each runbook got for its picture (runbooks/*.ipynb).
PICTURE_CELL = {"02_verify": "cell-08q", "03_migrate": "cell-14q", "04_revert": "cell-08q"}
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def picture_of(path: Path, step: str) -> bytes:
    """The ``image/png`` the step's picture cell showed, decoded."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == PICTURE_CELL[step])
    images = [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, f"{path.name}: {len(images)} images in {PICTURE_CELL[step]}"
    return base64.b64decode(images[0])


def test_a_run_that_moved_nothing_shows_a_figure_that_says_so() -> None:
    texts = [
        t.get_text() for ax in migration_over_time([], dry_run=True).figure.axes for t in ax.texts
    ]
    assert texts and all("dry run" in t for t in texts)
    moved = migration_over_time([BatchTiming(0.1, 5, 0.01), BatchTiming(0.2, 9, 0.02)])
    assert png_size(moved.png())[0] > 300


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_02_03_04_carry_their_pictures_into_the_report(demo_env: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from zoo_ops.execute import execute_runbook

    assert CHROMIUM.is_file(), "install Debian's chromium: apt-get install -y chromium"
    executed: dict[str, Path] = {}
    for step in ("01_copy", "02_verify", "03_migrate", "04_revert"):
        done = execute_runbook(step, model="iris")
        assert done.exit_code == 0, f"{step}: {done.error}"
        executed[step] = done.path
    for step in PICTURE_CELL:
        width, height = png_size(picture_of(executed[step], step))
        assert width > 300 and height > 150, f"{step}: a {width}x{height} picture"

    migrate = nbformat.read(executed["03_migrate"], as_version=4)
    streams = [o for c in migrate.cells for o in c.get("outputs", []) if o.output_type == "stream"]
    # The progress bar is one stdout line (not an error, not a redraw per batch).
    assert [o.name for o in streams] == ["stdout"], [o.name for o in streams]
    assert "\r" not in streams[0].text.rstrip("\n") and "rows" in streams[0].text
    run_table = migrate.cells[-1].outputs[-1]["data"]["text/html"]
    assert "<th></th>" not in run_table and "..." not in run_table  # no row numbers, no clipping

    out = tmp_path / "report"
    with database_runs(["local"], detail=True) as runs:
        index = build_report(None, demo_env.config.executed_root_path, out, runs)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            for step in PICTURE_CELL:
                html = out / "local" / "iris" / f"{executed[step].stem}.html"
                page.goto(html.as_uri())
                widths = page.eval_on_selector_all(
                    "img[src^='data:image/png']", "imgs => imgs.map(i => i.naturalWidth)"
                )
                assert widths and all(w > 0 for w in widths), f"{step}: images {widths}"
            page.goto(index.as_uri())
            charts = page.eval_on_selector_all(
                "section[data-env='local'] img.chart",
                "imgs => imgs.map(i => [i.dataset.chart, i.naturalWidth, i.naturalHeight])",
            )
            assert sorted(c[0] for c in charts) == ["applications", "timeline"], charts
            assert all(w > 300 and h > 100 for _, w, h in charts), charts
            moved = {
                row[0]: row[1:]
                for row in page.eval_on_selector_all(
                    "tr.run",
                    "rows => rows.map(r => [r.children[2].textContent,"
                    " r.querySelector('.versions').textContent,"
                    " r.querySelector('.moved').textContent])",
                )
            }
            page.screenshot(path=str(ARTIFACTS / "report-index.png"), full_page=True)
        finally:
            browser.close()
    assert png_size((ARTIFACTS / "report-index.png").read_bytes())[0] > 0
    forward = demo_env.migrations.for_run(run_id_of(executed["03_migrate"]))[0]
    back = demo_env.migrations.for_run(run_id_of(executed["04_revert"]))[0]
    old, new = forward.source_version_id, forward.target_version_id
    assert moved["03_migrate"] == [f"{old}\u2192{new}", str(forward.moved_count)]
    assert moved["04_revert"] == [f"{new}\u2192{old}", str(back.moved_count)]
    assert forward.moved_count > 0 and moved["01_copy"] == ["", ""]


def run_id_of(path: Path) -> str:
    import scrapbook as sb

    return str(sb.read_notebook(str(path)).scraps["run"].data["run_id"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_02_page_says_why_first_with_its_table_picture_and_folded_traceback(
    demo_env: Any, tmp_path: Path
) -> None:
    """sentiment's copy answers one example differently: the failing cell still shows the
    comparison (one row per answer field) and its picture; the page opens with the reason
    and keeps the traceback folded."""
    from playwright.sync_api import sync_playwright

    from zoo_ops.execute import execute_runbook

    assert execute_runbook("01_copy", model="sentiment").exit_code == 0
    failed = execute_runbook("02_verify", model="sentiment")
    assert failed.exit_code == 1
    nb = nbformat.read(failed.path, as_version=4)
    failing = next(
        c for c in nb.cells if any(o.output_type == "error" for o in c.get("outputs", []))
    )
    shown = [o["data"] for o in failing.outputs if "data" in o]
    assert any("image/png" in d for d in shown), "the failing cell carries no picture"
    table = next(d["text/html"] for d in shown if "<table" in d.get("text/html", ""))
    assert "<th>field</th>" in table and "lukewarm_review" in table

    out = tmp_path / "report"
    with database_runs(["local"], detail=True) as runs:
        build_report(None, demo_env.config.executed_root_path, out, runs)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto((out / "local" / "sentiment" / f"{failed.path.stem}.html").as_uri())
            reason = page.locator("nav.zoo-ops-page p.reason")
            assert "1 of 5 answers differ" in reason.inner_text()
            first = page.evaluate(
                "() => document.querySelector('nav.zoo-ops-page p.reason')"
                ".getBoundingClientRect().top"
            )
            assert first < page.evaluate("() => window.innerHeight"), "reason not on top"
            folded = page.locator("details.zoo-ops-traceback")
            assert folded.count() == 1 and folded.get_attribute("open") is None
            assert "StepFailed" in folded.locator("summary").inner_text()
            assert not page.locator("details.zoo-ops-traceback pre").first.is_visible()
        finally:
            browser.close()
