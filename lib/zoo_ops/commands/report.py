"""`zoo-ops report`: a static HTML audit report of the trail.

Layout of ``out_dir``::

    index.html                       the status matrix per environment, then every
                                     run (the runs table joined with the trail: runs
                                     kept outside the trail, crashed runs and notebooks
                                     no run row claims included), newest first, each
                                     notebook of the trail linked
    ENV/MODEL/STAMP-STEP.html        one page per executed notebook (nbconvert's
                                     HTMLExporter, lab template), linking back
    .report-manifest.json            which notebook fingerprint each page was made from

Algorithm: read the trail through the index (:func:`zoo_ops.commands.status.status`);
a page is re-rendered only when its notebook's fingerprint (size, mtime, ctime, inode)
differs from the manifest's, the page is missing, or the page format changed; pages of
notebooks no longer in the trail are removed (only pages the manifest lists: nothing
else in ``out_dir`` is touched); ``index.html`` is always rewritten. Every file is
written to a temporary name and renamed, so a reader never sees half a page.

Failed runs carry the CSS class ``failed`` and the visible word FAILED, in the matrix,
in the list and on their page; crashed, interrupted and trail-unsaved runs likewise
(CRASHED, INTERRUPTED, TRAIL UNSAVED), with the notebook and migration they left. Pages need no network: the template drops nbconvert's
CDN scripts (require.js, MathJax, mermaid). Nothing from the environment's
configuration is written: no database URL, no variable, no absolute path.

``out_dir`` is checked before anything is written (:func:`prepare_report_folder`): a
report is regenerated, so a previous report's folder is overwritten in place, but an
existing *file*, a folder holding other things (``-o .`` would scatter pages over the
repository), a folder inside a trail, a missing parent, an unwritable place, or a
report file name taken by a folder or special file is refused in one line, exit 2.
"""

from __future__ import annotations

import base64
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from zoo_ops import __version__
from zoo_ops.commands.status import (
    EnvRuns,
    Movement,
    StatusTable,
    StepStatus,
    format_at,
    run_truss_hash,
    status,
    view_time,
)
from zoo_ops.errors import BadInput
from zoo_ops.files import write_atomic
from zoo_ops.plots.picture import Picture
from zoo_ops.trail import (
    STEPS,
    RunView,
    TrailEntry,
    UnreadableFile,
    UnreadableNotebook,
    read_trail_bytes,
)
from zoo_ops.trail.notebook import UNREADABLE

INDEX_NAME = "index.html"
NOTEBOOK_CSS_NAME = "notebook.css"
MANIFEST_NAME = ".report-manifest.json"
# Bump when a page's look or header changes: every page is then rendered again.
PAGE_FORMAT = 2
PAGE_MODE = 0o644  # every file of the report, whatever was there: a report is for reading

_PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block notebook_css -%}
<link rel="stylesheet" href="../../{{ resources.zoo_ops_notebook_css }}">
{%- endblock notebook_css -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">{{ resources.zoo_ops_css }}</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.zoo_ops_header }}
{%- endblock body_header -%}
{%- block error -%}
<details class="zoo-ops-traceback"><summary>{{ (output.ename ~ ': ' ~ output.evalue)
 | strip_ansi | e }} <span class="note">(traceback)</span></summary>
{{ super() }}
</details>
{%- endblock error -%}
"""

# The lab template's stylesheets, rendered once into NOTEBOOK_CSS_NAME for every page
# (inlined, they would make each page ~300 kB).
_CSS_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block header -%}{%- block notebook_css -%}{{ super() }}{%- endblock notebook_css -%}
{%- endblock header -%}
{%- block body -%}{%- endblock body -%}
{%- block footer -%}{%- endblock footer -%}
"""
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)

_CSS = """
body.zoo-ops { font-family: system-ui, sans-serif; margin: 1.5em; color: #1a1a1a; }
nav.zoo-ops-page { font-family: system-ui, sans-serif; padding: 0.8em 1em; margin: 0 0 1em;
  border-bottom: 2px solid #ccc; background: #f7f7f7; }
table.matrix, table.runs { border-collapse: collapse; margin: 0.5em 0 1.5em; }
table.matrix th, table.matrix td, table.runs th, table.runs td { border: 1px solid #ccc;
  padding: 0.3em 0.6em; vertical-align: top; text-align: left; }
.outcome { font-weight: 600; }
.succeeded .outcome { color: #11632b; }
.failed { background: #fde8e8; }
.failed .outcome, .outcome.failed { color: #b00020; }
.unreadable, .crashed, .interrupted, .trail-unsaved { background: #fff4d6; }
.crashed .outcome, .interrupted .outcome, .trail-unsaved .outcome { color: #b00020; }
.not-recorded .outcome, .refused .outcome { color: #666; }
.running .outcome { color: #7a5b00; }
.dry_run .outcome, .not-run .outcome { color: #666; }
.reason { font-size: 1.1em; color: #b00020; margin: 0.4em 0; }
details.zoo-ops-traceback > summary { cursor: pointer; color: #b00020; font-family: monospace; }
.charts img.chart { display: block; max-width: 100%; margin: 0.5em 0; }
.moved { text-align: right; }
.hash, .note { font-family: monospace; color: #555; font-size: 0.9em; }
"""

_LABELS = {
    "succeeded": "succeeded",
    "failed": "FAILED",
    "unreadable": "UNREADABLE",
    "running": "running",
    "dry_run": "dry run",
    "not run": "not run",
    "crashed": "CRASHED",
    "interrupted": "INTERRUPTED",
    "trail-unsaved": "TRAIL UNSAVED",
    "refused": "refused",
    "not recorded": "not recorded",
}


@dataclass
class ReportResult:
    """What one build wrote: the index, pages rendered now, pages kept, pages removed."""

    index: Path
    rendered: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    table: StatusTable | None = field(default=None, repr=False)

    @property
    def unreadable(self) -> list[UnreadableFile]:
        """The files of the trail the report could not use, with why (listed in it too)."""
        return self.table.unreadable if self.table is not None else []


def outcome_class(outcome: str) -> str:
    return outcome.replace(" ", "-")


def outcome_label(outcome: str) -> str:
    return _LABELS.get(outcome, outcome)


def page_relpath(entry: TrailEntry) -> str:
    """``ENV/MODEL/STAMP-STEP.html``: the trail's layout, mirrored."""
    return f"{entry.env}/{entry.model}/{entry.path.stem}.html"


def _href(relpath: str) -> str:
    return "/".join(quote(part) for part in relpath.split("/"))


# --- one notebook's page ----------------------------------------------------------------


def page_header(entry: TrailEntry) -> str:
    """The band on top of a notebook's page: back link, what ran, how it ended."""
    run = entry.run or {}
    outcome = entry.outcome
    facts = [
        ("step", entry.step),
        ("model", entry.model),
        ("environment", entry.env),
        ("operator", str(run.get("operator") or "")),
        ("started", str(run.get("started_at") or "")),
        ("finished", str(run.get("finished_at") or "")),
        ("truss hash", run_truss_hash(entry) or ""),
        ("run id", str(run.get("run_id") or "")),
    ]
    if run.get("gate_override_reason"):
        facts.append(("gate override", str(run["gate_override_reason"])))
    if entry.problem and entry.run is None:
        facts.append(("trail", entry.problem))
    items = "".join(
        f"<li>{escape(k)}: <span class='note'>{escape(v)}</span></li>" for k, v in facts if v
    )
    # Why it failed comes first; the traceback below is folded (the template's error block).
    reason = (
        f"<p class='reason'><strong>error:</strong> {escape(str(run['error']))}</p>"
        if run.get("error")
        else ""
    )
    return (
        f"<nav class='zoo-ops-page {outcome_class(outcome)}' data-outcome='{escape(outcome)}'>"
        f"<a class='back' href='../../{INDEX_NAME}'>&larr; zoo-ops report</a>"
        f"<h1>{escape(entry.path.name)} <span class='outcome {outcome_class(outcome)}'>"
        f"{escape(outcome_label(outcome))}</span></h1>{reason}<ul>{items}</ul></nav>"
    )


class PageRenderer:
    """nbconvert's HTMLExporter with the report's template; built once per report."""

    def __init__(self) -> None:
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter

        loader = DictLoader(
            {"zoo_ops_page.html.j2": _PAGE_TEMPLATE, "zoo_ops_css.html.j2": _CSS_TEMPLATE}
        )
        self.exporter = HTMLExporter(
            template_name="lab", extra_loaders=[loader], template_file="zoo_ops_page.html.j2"
        )
        self.css_exporter = HTMLExporter(
            template_name="lab", extra_loaders=[loader], template_file="zoo_ops_css.html.j2"
        )

    def notebook_css(self) -> str:
        """The lab template's stylesheets as one CSS text."""
        import nbformat

        html, _ = self.css_exporter.from_notebook_node(nbformat.v4.new_notebook())
        return "\n".join(_STYLE.findall(str(html)))

    def render(self, entry: TrailEntry) -> str:
        import nbformat

        if entry.state == UNREADABLE:
            return _unreadable_page(entry, entry.problem or "unreadable")
        try:
            # Through the trail's reader: a regular file of bounded size, never a FIFO.
            text = read_trail_bytes(entry.path).decode("utf-8")
            nb = nbformat.reads(text, as_version=4)
        except UnreadableNotebook as exc:
            return _unreadable_page(entry, str(exc))
        except Exception as exc:  # noqa: BLE001 - an unreadable notebook still gets a page
            return _unreadable_page(entry, exc.__class__.__name__)
        resources: dict[str, Any] = {
            "zoo_ops_header": page_header(entry),
            "zoo_ops_css": _CSS,
            "zoo_ops_notebook_css": NOTEBOOK_CSS_NAME,
            "metadata": {"name": entry.path.stem},
        }
        try:
            with warnings.catch_warnings():
                # Scrap outputs carry only scrapbook's mimetypes: nothing to show, by design.
                warnings.filterwarnings("ignore", message="Your element with mimetype")
                body, _ = self.exporter.from_notebook_node(nb, resources=resources)
        except Exception as exc:  # noqa: BLE001 - a notebook nbconvert cannot render
            return _unreadable_page(entry, f"not renderable ({exc.__class__.__name__})")
        return str(body)


def _unreadable_page(entry: TrailEntry, reason: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{escape(entry.path.stem)}</title><style>{_CSS}</style></head>"
        f"<body class='zoo-ops'>{page_header(entry)}"
        f"<p class='unreadable'>not a readable notebook ({escape(reason)})</p>"
        "</body></html>"
    )


# --- the index --------------------------------------------------------------------------


def _cell(row: StepStatus, pages: dict[Path, str]) -> str:
    cls = outcome_class(row.outcome)
    label = escape(outcome_label(row.outcome))
    page = pages.get(row.notebook) if row.notebook else None
    outcome = f"<a href='{_href(page)}'>{label}</a>" if page else label
    parts = [f"<span class='outcome'>{outcome}</span>"]
    if row.at:
        parts.append(f"<span class='note'>{escape(format_at(row.at))}</span>")
    if row.short_hash:
        parts.append(f"<span class='hash'>{escape(row.short_hash)}</span>")
    if row.note:
        parts.append(f"<span class='note'>{escape(row.note)}</span>")
    if row.dry_run_outcome is not None:
        dry_page = pages.get(row.dry_run_notebook) if row.dry_run_notebook else None
        note = escape(f"dry run: {row.dry_run_note}")
        parts.append(
            f"<span class='note'><a href='{_href(dry_page)}'>{note}</a></span>"
            if dry_page
            else f"<span class='note'>{note}</span>"
        )
    return (
        f"<td class='step {cls}' data-step='{escape(row.step)}' "
        f"data-outcome='{escape(row.outcome)}'>{'<br>'.join(parts)}</td>"
    )


def first_line(text: str) -> str:
    """An error's one line for a table: its first non-empty line."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _run_row(v: RunView, moved: Movement | None, pages: dict[Path, str]) -> str:
    """One run of the index: when, what, how it ended (with the error's one line), and
    for a 03/04 the versions it moved between and how many applications it moved."""
    cls = outcome_class(v.outcome)
    page = pages.get(v.entry.path) if v.entry is not None else None
    shown = v.notebook.name if v.notebook is not None else f"run {v.run_id}"
    name = escape(f"{v.model}/{shown}")
    link = f"<a href='{_href(page)}'>{name}</a>" if page else name
    dry = " (dry run)" if v.dry_run and v.outcome != "dry_run" else ""
    note = v.notebook_note if v.outcome != "not recorded" else ""
    if v.outcome in ("refused", "failed", "crashed", "interrupted") and v.error:
        note = "; ".join(x for x in (note, first_line(v.error)) if x)
    versions = escape(moved.versions) if moved is not None else ""
    count = str(moved.moved) if moved is not None else ""
    return (
        f"<tr class='run {cls}' data-outcome='{escape(v.outcome)}'>"
        f"<td>{escape(format_at(view_time(v)))}</td><td>{escape(v.model)}</td>"
        f"<td>{escape(v.step)}</td><td class='outcome {cls}'>"
        f"{escape(outcome_label(v.outcome))}{dry}</td>"
        f"<td class='hash'>{escape((v.truss_hash or '')[:12])}</td>"
        f"<td class='versions'>{versions}</td><td class='moved'>{count}</td>"
        f"<td>{link}</td><td class='note'>{escape(note)}</td></tr>"
    )


def _img(picture: Picture, alt: str, kind: str) -> str:
    data = base64.b64encode(picture.png()).decode("ascii")
    return (
        f"<img class='chart' data-chart='{kind}' alt='{escape(alt)}' "
        f"src='data:image/png;base64,{data}'>"
    )


def env_pictures(env: str, table: StatusTable) -> str:
    """The environment's timeline of runs (model x step, marked by outcome) and, when its
    platform was read, the applications on each zoo version now."""
    from zoo_ops.plots.status import RunMark, applications_per_version, runs_timeline

    marks = [RunMark(v.model, v.step, view_time(v), v.outcome) for v in table.runs if v.env == env]
    parts = [_img(runs_timeline(env, marks, STEPS), f"{env}: runs by model and step", "timeline")]
    if table.versions.get(env):
        parts.append(
            _img(
                applications_per_version(env, table.versions[env]),
                f"{env}: applications on each zoo version",
                "applications",
            )
        )
    return f"<div class='charts'>{''.join(parts)}</div>"


def index_html(table: StatusTable, pages: dict[Path, str], generated: datetime) -> str:
    """The report's front page: the matrix per environment, then every notebook."""
    sections = []
    for env in table.envs():
        matrix = table.matrix(env)
        steps = [*STEPS, *sorted({s for cells in matrix.values() for s in cells} - set(STEPS))]
        head = "".join(f"<th>{escape(s)}</th>" for s in steps)
        body = []
        for model, cells in sorted(matrix.items()):
            tds = "".join(_cell(cells[s], pages) for s in steps if s in cells)
            body.append(
                f"<tr class='model-row' data-env='{escape(env)}' data-model='{escape(model)}'>"
                f"<th scope='row'>{escape(model)}</th>{tds}</tr>"
            )
        runs = sorted((v for v in table.runs if v.env == env), key=RunView.order, reverse=True)
        run_rows = [_run_row(v, table.movement(v), pages) for v in runs]
        sections.append(
            f"<section class='env' data-env='{escape(env)}'><h2>{escape(env)}</h2>"
            f"<table class='matrix'><thead><tr><th>model</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            f"{env_pictures(env, table)}"
            f"<h3>Runs ({len(runs)})</h3>"
            "<table class='runs'><thead><tr><th>at</th><th>model</th><th>step</th>"
            "<th>outcome</th><th>truss hash</th><th>versions</th><th>moved</th>"
            "<th>notebook</th><th>note</th></tr></thead>"
            f"<tbody>{''.join(run_rows)}</tbody></table></section>"
        )
    failed = sum(1 for r in table.rows if r.outcome == "failed")
    crashed = sum(1 for r in table.rows if r.outcome in ("crashed", "interrupted"))
    summary = (
        f"{len(table.runs)} runs, {len(table.notebooks)} executed notebooks; "
        f"{failed} step{'s' if failed != 1 else ''} whose latest run FAILED"
        + (f"; {crashed} crashed or interrupted" if crashed else "")
        if table.runs
        else "no executed runbooks in the trail"
    )
    only = "".join(
        f"<p class='note'>{escape(env)}: from the trail alone ({escape(why)})</p>"
        for env, why in sorted(table.trail_only.items())
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>zoo-ops report</title><style>{_CSS}</style></head><body class='zoo-ops'>"
        f"<h1>zoo-ops report</h1><p class='note'>generated {escape(format_at(generated))} "
        f"by zoo-ops {escape(__version__)}; {escape(summary)}</p>{only}"
        f"{''.join(sections)}{unreadable_html(table)}</body></html>"
    )


def unreadable_html(table: StatusTable) -> str:
    """The files of the trail no reader used, each with the reason ("" when none)."""
    if not table.unreadable:
        return ""
    items = "".join(
        f"<li class='unreadable-file'>{escape(u.line())}</li>" for u in table.unreadable
    )
    return (
        f"<section class='unreadable'><h2>Unreadable trail files ({len(table.unreadable)})"
        f"</h2><ul>{items}</ul></section>"
    )


# --- where it goes -----------------------------------------------------------------------


def _report_files() -> tuple[str, ...]:
    return (INDEX_NAME, NOTEBOOK_CSS_NAME, MANIFEST_NAME)


def prepare_report_folder(out_dir: Path, trail_roots: Sequence[Path] = ()) -> Path:
    """``out_dir`` made ready for a report (created if new), or :class:`BadInput`.

    Accepted: a new folder whose parent exists, an empty folder, or a previous report's
    folder (it holds ``index.html`` or the manifest). Refused: anything else, see the
    module docstring. Only the last component is created: a typo in a parent is not
    silently made into a tree of folders.
    """
    out = Path(out_dir).absolute()
    where = f"report folder {ascii(str(out))}"
    for root in trail_roots:
        real_root = Path(root).resolve()
        if out.resolve() == real_root or out.resolve().is_relative_to(real_root):
            raise BadInput(f"{where} lies in the trail {root}; pass -o a folder outside it")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadInput(f"{where} exists and is not a folder; pass -o a new or report folder")
    if out.is_dir():
        names = {p.name for p in out.iterdir()}
        if names and not names & {INDEX_NAME, MANIFEST_NAME}:
            raise BadInput(
                f"{where} holds other files and no earlier report; pass -o a new, empty "
                "or earlier report folder"
            )
        for name in _report_files():
            path = out / name
            if path.is_symlink() or (path.exists() and not path.is_file()):
                raise BadInput(
                    f"{where}: {name} is not a regular file; remove it or pass another -o"
                )
        if not os.access(out, os.W_OK | os.X_OK):
            raise BadInput(f"{where} is not writable; fix its permissions or pass another -o")
        return out
    if not out.parent.is_dir():
        raise BadInput(
            f"{where}: its parent {ascii(str(out.parent))} is not an existing folder; "
            "create it or pass another -o"
        )
    try:
        out.mkdir()
    except OSError as err:
        raise BadInput(
            f"{where} cannot be created ({err.strerror or type(err).__name__}); "
            "pass -o a writable place"
        ) from None
    return out


# --- the build ----------------------------------------------------------------------------


def _load_manifest(path: Path) -> dict[str, list[int]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != PAGE_FORMAT:
        return {}
    pages = data.get("pages")
    return pages if isinstance(pages, dict) else {}


def render_report(
    env_names: Sequence[str] | None,
    executed_root: Path | Sequence[Path],
    out_dir: Path,
    runs: Mapping[str, EnvRuns] | None = None,
) -> ReportResult:
    """Build the report in ``out_dir``; see the module doc for what is (re)written.
    ``runs``: each environment's runs table (:func:`zoo_ops.commands.status.database_runs`);
    without it, the trail alone."""
    roots = [executed_root] if isinstance(executed_root, Path) else list(executed_root)
    table = status(env_names, None, executed_root, runs)
    out_dir = prepare_report_folder(Path(out_dir), roots)
    manifest_path = out_dir / MANIFEST_NAME
    old = _load_manifest(manifest_path)
    result = ReportResult(index=out_dir / INDEX_NAME, table=table)
    pages: dict[Path, str] = {}
    new_manifest: dict[str, list[int]] = {}
    renderer: PageRenderer | None = None
    css_path = out_dir / NOTEBOOK_CSS_NAME
    for entry in table.notebooks:
        rel = page_relpath(entry)
        target = out_dir / rel
        pages[entry.path] = rel
        fingerprint = list(entry.fingerprint)
        new_manifest[rel] = fingerprint
        if old.get(rel) == fingerprint and target.exists():
            result.reused.append(target)
            continue
        if renderer is None:
            renderer = PageRenderer()
            write_atomic(css_path, renderer.notebook_css(), mode=PAGE_MODE)
        write_atomic(target, renderer.render(entry), mode=PAGE_MODE)
        result.rendered.append(target)
    if table.notebooks and not css_path.exists():
        write_atomic(css_path, PageRenderer().notebook_css(), mode=PAGE_MODE)
    for rel in sorted(set(old) - set(new_manifest)):
        stale = out_dir / rel
        # Only a page this report wrote: ENV/MODEL/NAME.html inside out_dir.
        inside = ".." not in Path(rel).parts and len(Path(rel).parts) == 3
        if inside and rel.endswith(".html") and stale.is_file():
            stale.unlink()
            result.removed.append(stale)
    write_atomic(result.index, index_html(table, pages, datetime.now(UTC)), mode=PAGE_MODE)
    manifest = json.dumps({"format": PAGE_FORMAT, "pages": new_manifest}, indent=0)
    write_atomic(manifest_path, manifest, mode=PAGE_MODE)
    return result


def build_report(
    env_names: Sequence[str] | None,
    executed_root: Path | Sequence[Path],
    out_dir: Path,
    runs: Mapping[str, EnvRuns] | None = None,
) -> Path:
    """Build the report (see :func:`render_report`) and return the path of index.html."""
    return render_report(env_names, executed_root, out_dir, runs).index
