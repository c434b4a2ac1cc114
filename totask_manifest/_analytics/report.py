"""One self-contained HTML page about a job: status, metrics, failures, label plots, samples.

Everything is inline (CSS, SVG charts, thumbnails as ``data:`` URIs, a few lines of script for
filtering the failures table), so the file can be mailed or archived and opened offline.
``job.json`` is read defensively: a job that is still running, or written by another version,
still gets a page with whatever is there.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass
from html import escape
from typing import Any

from .._errors import StorageError, TotaskError, UsageError, counted
from .._fetch import (
    APPENDED_BASES,
    FetchPolicy,
    SyncFetcher,
    appended_bases,
    base_for_line,
    base_of,
    has_scheme,
    resolve_reference,
)
from .._imaging import DEFAULT_MAX_IMAGE_PIXELS
from .._jobs.damaged_parts import missing_note
from .._jobs.job import Job, lineage_mask_folders, live_holder
from .._jobs.known_keys import newer_version_note, unknown_keys
from .._jobs.layout import LEASE_DIR, refuse_output_in_job
from .._jobs.lease import current_holder
from .._jobs.state import (
    RESUME_WRITES_IT,
    RUNNING_WRITES_IT,
    failures_missing,
    input_text,
    interrupted_line,
    output_changed,
    output_earlier,
    output_missing,
    runs_as_seen,
)
from .._jobs.status import COMPLETED, INTERRUPTED, RUNNING
from .._manifest.io import read_records, refuse_empty_path
from .._models.sources import model_file
from .._stale_temporaries import remove_stale_temporaries
from .._storage import (
    escape_undecodable,
    exists,
    is_local,
    read_bytes,
    redact_secret_url,
    redact_url,
    refuse_file_output,
    refuse_output_over_input,
    url_to_fs,
    write_bytes_atomic,
)
from .._task_types import task_type_of_metadata
from .evaluate.html import evaluation_section
from .labels import labeled_metadata
from .report_failures import report_failures
from .report_page import CSS, SCRIPT
from .stats import BINS, AttributeStats, count_manifest, shown
from .svg import color, hbar_chart, histogram
from .thumbnails import Tile, name_color_index, render_tile


@dataclass
class ReportResult:
    output: str
    samples: int
    failures: int
    #: why the job's ``job.json`` could not be read as JSON (the page is written without it) or is damaged
    #: (the page shows what it holds), in one line that says which; None when it is sound
    job_json_problem: str | None = None
    #: output manifest lines the page's figures leave out: not a JSON object (over the byte cap among them)
    invalid_lines: int = 0
    too_long_lines: int = 0


#: a report is not a job: a dead image host costs one retry and ten seconds per attempt at most
REPORT_RETRIES = 1
REPORT_TIMEOUT = 10.0
_FETCH_KEYS = ("timeout", "retries", "max_body_bytes", "allow_hosts", "allow_root")


def report_policy(job_options: dict[str, Any], overrides: dict[str, Any] | None = None,
                  own_roots: list[str] | None = None) -> FetchPolicy:
    """The job's own fetch policy (what its method was allowed to read), with the report's flags
    laid over it; retries and timeouts shortened for a page. ``own_roots``: the folders of the
    masks the job and the jobs it was chained from wrote (``job.lineage_mask_folders``), read
    besides its ``allow_root``."""
    merged: dict[str, Any] = {k: job_options.get(k) for k in _FETCH_KEYS}
    merged["own_roots"] = own_roots or []
    for key, value in (overrides or {}).items():
        if value not in (None, [], ()):
            merged[key] = value
    if merged.get("allow_root"):
        merged["allow_root"] = str(merged["allow_root"])
    merged["retries"] = min(int(merged.get("retries") or 0), REPORT_RETRIES)
    merged["timeout"] = min(float(merged.get("timeout") or REPORT_TIMEOUT), REPORT_TIMEOUT)
    return FetchPolicy.from_options(merged)


def _samples(manifest: str, attribute: str | None, limit: int, base: str | None, fetcher: SyncFetcher,
             job_url: str, max_pixels: int, options: dict[str, Any] | None = None) -> list[Tile]:
    if limit <= 0 or not attribute or not exists(manifest):
        return []
    chosen: list[tuple[int, str, str | None, str, Any, dict]] = []
    appended = {APPENDED_BASES: list(appended_bases(options or {}))}  # job.json as read: a damaged one said apart
    for line, rec in read_records(manifest):
        if len(chosen) >= limit:
            break
        meta = labeled_metadata(rec, attribute)
        if meta is None:
            continue
        tt = task_type_of_metadata(meta)
        source = rec.get("source-ref")
        if not isinstance(source, str):
            continue
        # relative data objects resolve as the job resolved them: against the folder of the
        # manifest the line came from (the input's, or an --append manifest's)
        line_base = base_for_line(appended, line.number - 1, base)
        chosen.append((line.number, resolve_reference(source, line_base), line_base, tt.name if tt else "",
                       rec[attribute], meta))
    images = fetcher.fetch_many([source for _, source, _, _, _, _ in chosen])
    own_masks = job_url.rstrip("/") + "/annotations/"

    def fetch_mask(url: str, line_base: str | None) -> bytes:
        if url.startswith(own_masks) and ".." not in url:  # written by the job itself
            return read_bytes(url)
        # a relative mask is read where its line's image is (an --append manifest's folder for its
        # lines): against the input's folder, an appended line's mask was looked for where it never was
        return fetcher.fetch(resolve_reference(url, line_base))

    tiles: list[Tile] = []
    for (number, source, line_base, task_type, value, meta), image in zip(chosen, images, strict=True):
        tile = render_tile(source, task_type, value, meta, image=image, attribute=attribute,
                           fetch_mask=functools.partial(fetch_mask, line_base=line_base), max_pixels=max_pixels)
        tile.title = f"line {number}: {tile.title}"
        tiles.append(tile)
    return tiles


def _kv(pairs: list[tuple[str, Any]]) -> str:
    # a URL's password, token or signature stays out of the page (the input's, say)
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(redact_secret_url(v) if isinstance(v, str) else str(v))}</dd>"
                   for k, v in pairs if v not in (None, "", []))
    return f'<dl class="kv">{rows}</dl>'


def _runs_text(job: dict[str, Any], job_url: str, metrics: dict[str, Any]) -> str | None:
    """How many runs the job had, and each one killed before it recorded its end (as ``status``
    shows them: ``_jobs.state.runs_as_seen``)."""
    runs = job.get("runs")
    if not isinstance(runs, list) or not runs:
        return None
    try:
        holder, gone = current_holder(job_url)
    except (TotaskError, OSError):  # the lease folder unreadable: the runs as job.json holds them
        return f"{len(runs)}"
    done = sum(int(metrics.get(k) or 0) for k in ("success", "failed", "routed")) \
        if job.get("status") == RUNNING else None
    seen = runs_as_seen(runs, holder, gone, done=done)
    notes = [interrupted_line(n, r) for n, r in enumerate(seen, start=1)
             if isinstance(r, dict) and r.get("status") == INTERRUPTED]
    return "; ".join([f"{len(runs)}", *notes])


def _then(job: dict[str, Any], job_url: str) -> str:
    """Who writes a job's output an earlier run left: the run under way (a resume would be refused:
    the page told a running job's user to resume it), or a resume."""
    running = job.get("status") == RUNNING and live_holder(job_url) is not None
    return RUNNING_WRITES_IT if running else RESUME_WRITES_IT


def _metrics_html(metrics: dict, has_record: bool) -> str:
    if not metrics:  # no job.json (an output manifest dropped in a folder), or one without counts:
        # zero cards would say "0 labeled" above the labels counted below
        why = "job.json records no metrics" if has_record else "no job.json"
        return f'<p class="muted">{why}: no progress to show; the labels below are counted from the output manifest</p>'
    keys = [("total", "lines to label"), ("success", "labeled"), ("failed", "failed"), ("routed", "routed to review"),
            ("stand_by", "waiting"), ("dropped", "dropped some (--allow-drop)"), ("warnings", "warned of (a box past its image)")]
    cards = "".join(
        f'<div class="card"><b>{int(metrics.get(k) or 0):,}</b><span>{escape(label)}</span></div>'
        for k, label in keys if k in metrics or k in ("total", "success", "failed")
    )
    total = int(metrics.get("total") or 0)
    bar = ""
    if total:
        parts = [("ok", metrics.get("success")), ("bad", metrics.get("failed")), ("rt", metrics.get("routed"))]
        bar = '<div class="bar" title="labeled / failed / routed">' + "".join(
            f'<i class="{c}" style="width:{100 * int(v or 0) / total:.2f}%"></i>' for c, v in parts
        ) + "</div>"
    return f'<div class="cards">{cards}</div>{bar}'


def _mixed_html(types: list[str]) -> str:
    """The note that an attribute's labels declare several task types, above the figures that mix
    them, in ``stats``' words: ``stats`` says it and exits 1, and the page charted the mix as one
    attribute's labels without a word. "" for an attribute of one type."""
    if not types:
        return ""
    return (f'<p class="mixed" role="note">several task types under one label attribute ({escape(", ".join(types))}): '
            "the counts below mix them (label-attribute-mixed-types; totask-manifest validate names the lines)</p>")


def _labels_source(stale: bool, changed: str | None) -> str | None:
    """Which lines the Labels section counts where they are not the job's: an earlier run's output
    manifest (a job running, killed or failed since) or one changed after the job wrote it. Its
    "Failures by rule" chart said 5 beside a "Failures (11)" table read from the checkpoint, and
    neither said why. None where the file is the job's."""
    if stale:
        return "the output manifest an earlier run wrote, without the lines labeled since"
    if changed:
        return "the output manifest as it is now, changed since the job wrote it"
    return None


def _stats_html(s: AttributeStats | None, source: str | None = None) -> str:
    if s is None:
        return '<p class="muted">no output manifest yet</p>'
    said = (f'<p class="muted" role="note">counted in {escape(source)}; Progress and the Failures table below '
            "count the job's lines</p>") if source else ""
    out = [said, _mixed_html(s.mixed_task_types),
           _kv([("lines with this attribute", f"{s.lines:,}"), ("labeled", f"{s.labeled:,}"),
                ("failed", f"{s.failed:,}"), ("routed to review", f"{s.routed:,}"),
                ("task types", ", ".join(f"{shown(k)} ({v:,})" for k, v in s.types.items())),
                ("human / machine", ", ".join(f"{k}: {v:,}" for k, v in s.human_annotated.items())),
                ("jobs", ", ".join(f"{shown(k)} ({v:,})" for k, v in s.job_names.items()))])]
    charts = []
    if s.classes:
        rows = [(f"{'' if c.class_id is None else c.class_id} {'' if c.name is None else shown(c.name)}".strip(), c.count)
                for c in s.classes[:40]]
        # the same colour per class as the boxes drawn on the samples
        colors = [color(c.class_id if c.class_id is not None else name_color_index(c.name)) for c in s.classes[:40]]
        charts.append("<div><h3>Labels per class</h3>" + hbar_chart(rows, title="labels per class", colors=colors)
                      + "</div>")
    if s.confidence_count:
        edges = [f"{b / BINS:.1f}" for b in range(BINS)]
        unscored = f"; {s.unscored:,} unscored, not shown" if s.unscored else ""
        charts.append(f"<div><h3>Confidence (n={s.confidence_count:,}, mean {s.confidence_mean:.3f}{unscored})</h3>"
                      + histogram(s.confidence_histogram, edges, title="confidence histogram") + "</div>")
    if s.boxes_per_image:
        items = sorted(s.boxes_per_image.items())[:30]
        charts.append("<div><h3>Boxes per image</h3>" + histogram(
            [k for _, k in items], [str(n) for n, _ in items], title="images per number of boxes", fill="#6cc5b0")
            + "</div>")
    if s.tools:
        charts.append("<div><h3>Annotations per tool</h3>" + hbar_chart([(shown(k), n) for k, n in s.tools.items()][:20],
                                                                         title="annotations per tool") + "</div>")
    if s.failures:
        rows = [(shown(r), n) for r, n in list(s.failures.items())[:15]]
        whose = " (in that output manifest)" if source else ""
        charts.append(f"<div><h3>Failures by rule{whose}</h3>" + hbar_chart(rows, title="failures by rule") + "</div>")
    out.append('<div class="charts">' + "".join(charts) + "</div>")
    return "".join(out)


def _failures_html(shown: list[dict], total: int, origin: str | None) -> str:
    said = f'<p class="muted">{escape(origin)}</p>' if origin else ""  # rows read from the manifest
    if not shown:
        return said + '<p class="muted">no failures</p>'

    def cell(value: Any) -> str:  # a source URL without its secrets (failures.jsonl of older versions held them)
        return "" if value is None else redact_secret_url(value) if isinstance(value, str) else str(value)

    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell(r.get(k)))}</td>" for k in ("line", "task_id", "source", "rule"))
        + f'<td class="reason">{escape(str(r.get("reason") or ""))}</td></tr>'
        for r in shown
    )
    more = f" (first {len(shown):,} of {total:,})" if total > len(shown) else ""
    return (f'{said}<input type="search" id="failure-filter" placeholder="filter failures" aria-label="filter failures">'
            f' <span class="muted"><span id="failure-count">{len(shown)}</span> shown{more}</span>'
            f'<table id="failures"><thead><tr><th>line</th><th>task</th><th>source</th><th>rule</th><th>reason</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _tiles_html(tiles: list[Tile]) -> str:
    if not tiles:
        return '<p class="muted">no labeled lines with an image to show</p>'
    out = []
    for t in tiles:
        pic = (f'<img src="{t.data_uri}" alt="{escape(t.title)}">' if t.data_uri
               else f'<div class="tile-error">{escape(t.error or "")}</div>')
        out.append(f"<figure>{pic}<figcaption><b>{escape(t.title)}</b><br>{escape(t.caption)}</figcaption></figure>")
    return '<div class="grid">' + "".join(out) + "</div>"


def render_report(
    job_url: str, *, samples: int = 24, fetch_options: dict[str, Any] | None = None,
    max_image_pixels: int | None = None,
) -> tuple[str, int, int]:
    """The page's HTML, the number of sample tiles and of failures. Images are read under the
    job's fetch policy with ``fetch_options`` (``allow_root``, ``allow_hosts``, ...) laid over it."""
    html, tiles, failures, _unread = _render(job_url, samples=samples, fetch_options=fetch_options,
                                             max_image_pixels=max_image_pixels)
    return html, tiles, failures


def _render(
    job_url: str, *, samples: int, fetch_options: dict[str, Any] | None, max_image_pixels: int | None,
) -> tuple[str, int, int, tuple[int, int]]:
    """``render_report``'s, with the output manifest's lines left unread: ``(not a JSON object,
    over the byte cap)``, the second counted in the first (``ManifestStats``'s)."""
    job_url = job_url.rstrip("/")
    if not has_scheme(job_url):  # every path on the page absolute, as job.json writes them
        job_url = os.path.abspath(job_url)
    folder = Job(job_url)
    job = folder.record()  # whatever is there: a running job, or one written by another version
    if not job and not exists(folder.layout.output_manifest):
        # a file inside a job folder (its output manifest) names that folder, as every command's refusal does
        raise folder.not_a_job("no job.json and no manifests/output/output.manifest")
    config = job.get("config") if isinstance(job.get("config"), dict) else {}
    name = job.get("job-name") or config.get("job_name") or job_url.rsplit("/", 1)[-1]
    attr = job.get("label-attribute") or config.get("label_attribute")
    status = str(job.get("status") or "unknown").lower()
    metrics = folder.metrics()  # a RUNNING job's (live, or killed) from its checkpoint parts
    if folder.damaged:  # the page counts the parts that can be read, and says so
        logging.getLogger("totask_manifest").warning("%s", folder.damaged)
    if (missing := missing_note(folder.layout) if job.get("status") != COMPLETED else None) is not None:
        logging.getLogger("totask_manifest").warning("%s", missing)  # as status says it: resume would refuse
    manifest = folder.output_manifest
    # another file's lines under the job's metrics, or none at all: said, as status says it
    changed = output_changed(job.get("runs"), manifest, str(name))
    gone = None if changed else output_missing(job.get("status"), manifest, str(name), job_url, job.get("runs"))
    if changed or gone:
        logging.getLogger("totask_manifest").warning("%s", changed or f"output manifest {gone}")
    if failures_gone := failures_missing(job.get("status"), job.get("metrics"), folder.layout.failures, str(name),
                                         job_url, job.get("runs")):  # the page reads them from the checkpoint: said all the same
        logging.getLogger("totask_manifest").warning("failures %s", failures_gone)
    # the last run could not write it, or one runs or was killed: its counts and samples are an earlier run's
    stale = output_earlier(job.get("status"), job.get("runs")) and exists(manifest)
    stats, others, unread = None, "", (0, 0)
    if exists(manifest):
        with contextlib.suppress(TotaskError):
            ms = count_manifest(manifest, label_attributes=[attr] if attr else None)  # zeros until labeled
            unread = (ms.invalid_lines, ms.too_long_lines)
            stats = ms.attributes.get(attr) if attr else next(iter(ms.attributes.values()), None)
            if not attr and stats is not None:
                attr = stats.name
                # the page charts one: the others are named, never dropped without a word
                others = ", ".join(f"{shown(a)} ({counted(s.lines, 'line', grouped=True)})" for a, s in ms.attributes.items() if a != attr)
    failures, n_failures, failures_origin = report_failures(folder, manifest, attr)
    inp = job.get("input") if isinstance(job.get("input"), dict) else {}
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    source_url = inp.get("url") or config.get("input")
    # without a recorded input (no job.json: a Ground Truth output put in the folder) a relative
    # reference is read beside the manifest, as every reader resolves one; it was the working directory
    base = options.get("relative_to") or base_of(source_url if isinstance(source_url, str) else manifest)
    policy = report_policy(options, fetch_options, lineage_mask_folders(job_url))
    max_pixels = int(max_image_pixels or options.get("max_image_pixels") or DEFAULT_MAX_IMAGE_PIXELS)
    with SyncFetcher(policy) as fetcher:
        tiles = _samples(manifest, attr, samples, base, fetcher, job_url, max_pixels, options) if samples > 0 else []
        # "" without a reference; its worst images go through the same policy as the tiles
        evaluation = evaluation_section(job_url, base=base, samples=min(samples, 6), fetch=fetcher.fetch,
                                        max_pixels=max_pixels)
    newer = unknown_keys(job)  # a newer version's job.json: noted as status notes it, the page is read alike
    info = _kv([
        ("note", newer_version_note(newer) if newer else None),
        ("task type", job.get("task-type") or config.get("task_type")), ("label attribute", attr),
        ("other label attributes", f"{others} (not charted: a job's job.json names the one to show)" if others else None),
        ("method", job.get("method") or config.get("method")), ("engine", job.get("engine")),
        ("input", input_text(job)),
        ("output manifest", gone or f"{manifest} (an earlier run's, without the lines labeled since; "
                            f"{_then(job, job_url)})" if stale else gone or manifest), ("changed", changed), ("created", job.get("created")), ("ended", job.get("ended")),
        ("chained from", job.get("chained-from")), ("cloned from", job.get("cloned-from")),
        ("error", job.get("error")), ("damaged", folder.damaged), ("missing", missing),
        ("unread lines", _unread_text(*unread)), ("runs", _runs_text(job, job_url, metrics)),
    ])
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(str(name))} - totask-manifest report</title>
<style>{CSS}</style></head>
<body>
<h1>{escape(str(name))} <span class="status s-{escape(status)}">{escape(status)}</span></h1>
<p class="muted">{escape(job_url)}</p>
{info}
<h2>Progress</h2>
{_metrics_html(metrics, bool(job))}
<h2>Labels</h2>
{_stats_html(stats, _labels_source(stale, changed))}
{evaluation}
<h2>Failures ({n_failures:,})</h2>
{_failures_html(failures, n_failures, failures_origin)}
<h2>Samples ({len(tiles)})</h2>
{_tiles_html(tiles)}
<p class="muted">written by totask-manifest report</p>
<script>{SCRIPT}</script>
</body></html>
"""
    # a path under a folder whose name is not valid UTF-8 (caf\xe9) reaches the page from many places (the
    # job folder, the manifests, job.json's paths, the failures' and samples' sources, the evaluation):
    # the page cannot be encoded with its surrogate, so each is named by its escapes, as every other output
    return escape_undecodable(html), len(tiles), n_failures, unread


def _unread_text(invalid: int, too_long: int) -> str | None:
    """The output manifest's lines the page's figures leave out, as ``stats`` says them; None: none."""
    broken = invalid - too_long
    said = ([f"{broken:,} not a JSON object (a truncated or damaged manifest)"] if broken else []) + (
        [f"{too_long:,} over the byte cap (line-too-long)"] if too_long else [])
    return f"{'; '.join(said)}: the figures leave them out (totask-manifest validate names them)" if said else None


def write_report(
    job_url: str, output: str, *, samples: int = 24, fetch_options: dict[str, Any] | None = None,
    max_image_pixels: int | None = None,
) -> ReportResult:
    job_url, output = os.fspath(job_url), os.fspath(output)  # a pathlib.Path too
    refuse_empty_path(job_url, "job folder (job_url)")  # the current folder's job: not what was meant
    refuse_empty_path(output, "output (output)")
    if samples < 0:  # a negative count read as none: the page would lack its images without a word
        raise UsageError(f"--samples must be 0 or more (got {samples})")
    _refuse_output_over_job_files(job_url, output)
    refuse_output_in_job(output, own_job=job_url)
    refuse_file_output(output)  # before the images are fetched
    html, n_tiles, n_failures, (invalid, too_long) = _render(job_url, samples=samples, fetch_options=fetch_options,
                                                             max_image_pixels=max_image_pixels)
    remove_stale_temporaries(output)  # what a report to the same place killed before left (kill -9)
    write_bytes_atomic(output, html.encode("utf-8"))
    job_json = Job(job_url if has_scheme(job_url) else os.path.abspath(job_url)).layout.job_json
    return ReportResult(output, n_tiles, n_failures, _json_problem(job_json), invalid, too_long)


def _refuse_output_over_job_files(job_url: str, output: str) -> None:
    """Refuse ``-o`` naming a file the job reads (its output or input manifest, ``job.json``,
    ``failures.jsonl``, a file its options name) or one inside the folders only the job writes (``manifests/``: checkpoint
    parts, the selection, the input's copy; ``.lease/``): the page would replace it, and the
    labels with it (a stopped job's parts are what resume reads back)."""
    job = Job(job_url if has_scheme(job_url) else os.path.abspath(job_url), read_only=True)
    files = [job.layout.job_json, job.layout.failures, job.output_manifest]
    with contextlib.suppress(TotaskError):  # a damaged job.json names no input; the page says so
        files.append(job.state.effective_input or job.state.config.input)
        # the files its options name, recorded for resume to compare (--class-names, the .py of a --model
        # file.py:factory): the page replaced one, exit 0
        options = job.state.config.options
        files += [model_file(options[key]) or options[key] for key in job.state.option_files
                  if isinstance(options.get(key), str)]
    for own in files:
        refuse_output_over_input(own, output)
    fs_job, folder = url_to_fs(job.url)
    fs_out, path = url_to_fs(output)
    if type(fs_job) is type(fs_out):
        if is_local(fs_job):
            folder, path = os.path.realpath(folder), os.path.realpath(path)
        inside = path[len(folder.rstrip("/")) + 1:].split("/", 1) if path.startswith(folder.rstrip("/") + "/") else []
        if len(inside) == 2 and inside[0] in ("manifests", LEASE_DIR):
            raise UsageError(f"the output {redact_url(output)} is inside the job's own {inside[0]}/ folder, which "
                             "only the job writes; give another output path (JOB/report.html, say)")


def _json_problem(url: str) -> str | None:
    """Why ``url`` (a ``job.json``) is not JSON, is no job's record (not an object with a ``config``),
    or is damaged as ``Job.open`` finds it (``state.damage``: ``"input": null``, a key missing, a
    ``relative_to_appended`` that is no list of pairs...: the page resolved around it), or None (also
    when it is missing or unreadable: the page says so, and a job folder without ``job.json`` is
    reported from its manifest). Not ``Job.record()``: its ``error`` key may be the job's own."""
    import orjson

    from .._jobs.state import damage

    try:
        data = orjson.loads(read_bytes(url))
    except StorageError:
        return None
    except orjson.JSONDecodeError as exc:
        return f"{redact_secret_url(url)} is not valid JSON: {exc}; the page was written without it"
    if not isinstance(data, dict) or "config" not in data:
        return f"{redact_secret_url(url)} is not a totask-manifest job.json (no 'config' key); the page was written without it"
    _state, problem = damage(data)
    return None if problem is None else f"{redact_secret_url(url)} is damaged ({problem}); the page shows what it holds"
