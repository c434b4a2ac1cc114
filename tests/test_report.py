"""``report``: a real job's page, images from local, S3 and HTTP sources, and a headless browser check."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from aiohttp import web
from PIL import Image, ImageDraw

from tests.support.browser import CHROMIUM, chromium
from tests.support.gt import GT_MANIFESTS, requires_gt
from tests.support.http_server import LocalHTTPServer
from tests.support.s3 import S3Endpoint
from totask_manifest._analytics.report import render_report, write_report
from totask_manifest._analytics.report_page import MARKER
from totask_manifest._cli import main as cli_main
from totask_manifest._errors import StorageError
from totask_manifest.testing.builders import lines_naming

REPO = Path(__file__).resolve().parents[1]


def _png(color: tuple[int, int, int], size=(160, 120)) -> bytes:
    img = Image.new("RGB", size, color)
    ImageDraw.Draw(img).ellipse([20, 20, 90, 90], fill=(250, 200, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A job made by the real ``annotate`` command: 5 labeled lines, one bad label file, one missing."""
    root = tmp_path_factory.mktemp("job")
    data = root / "data"
    data.mkdir()
    lines = []
    for i in range(6):
        (data / f"img{i}.png").write_bytes(_png((30 + i * 30, 120, 200)))
        if i == 4:
            (data / f"lab{i}.json").write_text('{"objects": [{"class_id": "x <b>"}]}')
        else:
            value = {"image_size": [{"width": 160, "height": 120, "depth": 3}],
                     "annotations": [{"class_id": i % 2, "left": 20, "top": 20, "width": 70, "height": 70}]}
            meta = {"objects": [{"confidence": 0.5 + i * 0.08}], "class-map": {str(i % 2): ["sun", "moon"][i % 2]}}
            (data / f"lab{i}.json").write_bytes(orjson.dumps({"label": value, "metadata": meta}))
        lines.append({"source-ref": f"data/img{i}.png", "label-file": f"data/lab{i}.json"})
    lines.append({"source-ref": "data/missing.png", "label-file": "data/nope.json"})
    (root / "input.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    # the real command, in its own process as a user runs it
    run = subprocess.run(
        [sys.executable, "-m", "totask_manifest", "annotate", str(root / "input.manifest"), "--job-name", "rep",
         "--label-attribute", "boxes", "--task-type", "object-detection", "--method", "file",
         "--url-key", "label-file", "--output", str(root / "out"), "--allow-root", str(root)],
        capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    return root / "out" / "rep"


def _thumbs(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(b)))
            for b in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)]


@pytest.mark.slow
def test_report_of_a_real_job(job):
    html, n_tiles, n_failures = render_report(str(job))
    assert (n_tiles, n_failures) == (5, 2)
    assert 'class="status s-completed"' in html
    for text in ("sun", "moon", "labels per class", "confidence histogram", "nope.json"):
        assert text in html
    # the user's text is escaped, never markup
    assert "x &lt;b&gt;" in html and "x <b>" not in html
    assert re.search(r'<table id="failures">.*?<tbody>(.*?)</tbody>', html).group(1).count("<tr>") == 2
    thumbs = _thumbs(html)
    assert len(thumbs) == 5 and all(max(t.size) <= 240 for t in thumbs)
    # the box of class 0 is drawn in the chart colour of class 0 (#4269d0)
    px = np.asarray(thumbs[0]).reshape(-1, 3).astype(int)
    assert (np.abs(px - [0x42, 0x69, 0xD0]).sum(axis=1) < 60).any()
    # self-contained: nothing is fetched when the page opens
    assert not re.search(r'(src|href)="https?:', html) and "url(http" not in html and "@import" not in html


@pytest.mark.slow  # the job fixture runs the real annotate command
def test_cli_writes_the_file_and_refuses_a_non_job(job, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli_main(["report", str(job), "-o", str(out), "--samples", "2"]) == 0
    assert "2 samples, 2 failures" in capsys.readouterr().out
    assert cli_main(["report", str(job), "-o", str(out), "--samples", "1"]) == 0
    assert "(1 sample, 2 failures)" in capsys.readouterr().out  # not "1 samples"
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert cli_main(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.html")]) == 2
    assert "not a job folder" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def _hand_made_job(root: Path, sources: list[str], job_json: bytes | None) -> Path:
    job = root / "hand"
    (job / "manifests" / "output").mkdir(parents=True)
    lines = []
    for i, src in enumerate(sources):
        lines.append({"source-ref": src, "det": {"image_size": [{"width": 80, "height": 60, "depth": 3}],
                                                 "annotations": [{"class_id": 3, "left": 5, "top": 5, "width": 30,
                                                                  "height": 20}]},
                      "det-metadata": {"objects": [{"confidence": 0.9}], "class-map": {"3": "kite"},
                                       "type": "groundtruth/object-detection", "human-annotated": "no",
                                       "job-name": "labeling-job/hand", "creation-date": "2026-01-01T00:00:00.0"}})
        lines.append({"source-ref": f"s3://none/{i}.jpg", "det-metadata": {"failure-reason": "boom"}})
    (job / "manifests" / "output" / "output.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    if job_json is not None:
        (job / "job.json").write_bytes(job_json)
    return job


def test_the_summary_line_counts_one_sample_and_one_failure_in_the_singular(tmp_path):
    """``report: r.html (1 samples, 1 failures)`` read as a typo; each count takes its noun's number."""
    (tmp_path / "a.png").write_bytes(_png((10, 200, 10), (80, 60)))
    job = _hand_made_job(tmp_path, [str(tmp_path / "a.png")], None)  # one labeled line, one failed
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "report", str(job), "-o", str(tmp_path / "r.html"),
                        "--allow-root", str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"report: {tmp_path / 'r.html'} (1 sample, 1 failure)", r.stdout


def test_images_from_s3_and_http_and_a_defensive_job_json(tmp_path, s3: S3Endpoint):
    bucket = s3.new_bucket("report")
    s3.filesystem().pipe(f"{bucket}/img/a.png", _png((10, 200, 10), (80, 60)))

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/b.png":
            return web.Response(body=_png((200, 10, 10), (80, 60)), content_type="image/png")
        return web.Response(status=404)

    with LocalHTTPServer(handler) as server:
        sources = [f"{bucket}/img/a.png", server.url("/b.png"), server.url("/gone.png")]
        # a job.json from another version: no metrics, odd status, unknown keys
        job = _hand_made_job(tmp_path, sources, b'{"status": "RUNNING", "label-attribute": "det", "extra": [1]}')
        result = write_report(str(job), str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert result.samples == 3
    thumbs = _thumbs(html)
    assert len(thumbs) == 2
    greens = np.asarray(thumbs[0]).reshape(-1, 3)
    reds = np.asarray(thumbs[1]).reshape(-1, 3)
    assert (greens[:, 1] > 150).mean() > 0.3 and (reds[:, 0] > 150).mean() > 0.3
    assert "image not available" in html and "404" in html
    assert "kite" in html and 's-running' in html
    # no job.json at all, only the output manifest: still a page
    (job / "job.json").unlink()
    html, _, _ = render_report(str(job), samples=0)
    assert "failures by rule" in html  # "boom" is no known rule: counted under "failed"
    with pytest.raises(StorageError, match="not a job folder"):
        render_report(str(tmp_path / "empty"))



@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_page_renders_in_headlesschromium(job, tmp_path):
    page = tmp_path / "report.html"
    write_report(str(job), str(page))
    url = page.resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path / "p1")
    # the inline script ran to its end without an exception: it adds the marker last
    assert f'id="{MARKER}"' in dom.stdout, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr
    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1200,2000", url], tmp_path / "p2")
    assert shot.exists(), run.stderr[-2000:]
    assert "Uncaught" not in run.stderr
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2000)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, charts and thumbnails, not a blank page
    arr = np.asarray(img).reshape(-1, 3).astype(int)
    # the chart bars (#4269d0) and the thumbnails' yellow suns are on screen
    assert (np.abs(arr - [0x42, 0x69, 0xD0]).sum(axis=1) < 30).sum() > 200
    assert (np.abs(arr - [250, 200, 40]).sum(axis=1) < 60).sum() > 200


def test_mask_samples_are_blended_over_the_image(tmp_path):
    job = tmp_path / "seg"
    (job / "manifests" / "output").mkdir(parents=True)
    Image.new("RGB", (100, 80), (255, 255, 255)).save(tmp_path / "img.png")
    mask = np.full((80, 100, 3), 255, dtype=np.uint8)
    mask[10:50, 10:60] = [255, 0, 0]
    Image.fromarray(mask).save(tmp_path / "mask.png")
    cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.7},
            "1": {"class-name": "lesion", "hex-color": "#ff0000", "confidence": 0.7}}
    rec = {"source-ref": str(tmp_path / "img.png"), "seg-ref": str(tmp_path / "mask.png"),
           "seg-ref-metadata": {"internal-color-map": cmap, "type": "groundtruth/semantic-segmentation",
                                "human-annotated": "no", "job-name": "labeling-job/seg",
                                "creation-date": "2026-01-01T00:00:00.000000"}}
    (job / "manifests" / "output" / "output.manifest").write_bytes(orjson.dumps(rec) + b"\n")
    (job / "job.json").write_bytes(orjson.dumps({"job-name": "seg", "status": "COMPLETED", "label-attribute": "seg-ref",
                                                 "metrics": {"total": 1, "success": 1, "failed": 0}}))
    html, n, _ = render_report(str(job), fetch_options={"allow_root": str(tmp_path)})
    assert n == 1 and "lesion" in html
    thumb = np.asarray(_thumbs(html)[0]).astype(int)
    # half red over white inside the mask, untouched white outside
    assert abs(thumb[20, 20] - [255, 128, 128]).sum() < 40
    assert abs(thumb[70, 90] - [255, 255, 255]).sum() < 20


@pytest.mark.slow
@pytest.mark.parametrize("target", ["manifests/output/output.manifest", "job.json", "failures.jsonl", "INPUT",
                                    "CLASS_NAMES"])
def test_report_written_over_a_file_the_job_reads_is_refused(tmp_path, target):
    """``report JOB -o JOB/manifests/output/output.manifest`` (a slip of the shell's completion)
    replaced the job's output manifest with the page, exit 0; so did ``-o`` naming job.json,
    failures.jsonl, the job's input manifest or its ``--class-names`` file (which every resume
    compares). Refused in one line (exit 2), every file as it was."""
    import shutil

    from tests.jobs_helpers import REPO, run_cli

    shutil.copytree(REPO / "sample_data", tmp_path / "data")
    inp = tmp_path / "data" / "manifest.jsonl"
    job = tmp_path / "out" / "rj"
    r = run_cli("annotate", str(inp), "--job-name", "rj", "--label-attribute", "boxes", "--task-type",
                "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
                str(tmp_path / "data" / "class_names.txt"), "--native", "convert", "--allow-root",
                str(tmp_path / "data"), "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    names = tmp_path / "data" / "class_names.txt"
    path = {"INPUT": inp, "CLASS_NAMES": names}.get(target, job / target)
    files = [inp, names, *(job / name for name in ("job.json", "failures.jsonl", "manifests/output/output.manifest"))]
    before = {f: f.read_bytes() for f in files}
    r = run_cli("report", str(job), "-o", str(path))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("totask-manifest report: error: ") and str(path) in lines[0], r.stderr
    assert {f: f.read_bytes() for f in files} == before
    ok = run_cli("report", str(job), "-o", str(job / "report.html"))  # beside them, as the README does
    assert ok.returncode == 0 and (job / "report.html").read_bytes().startswith(b"<!DOCTYPE html>"), ok.stderr


@pytest.mark.parametrize("target", ["manifests/intermediate/part-000000.ckpt", "manifests/intermediate/part-000007.ckpt",
                                    "manifests/intermediate/selection.bin", "manifests/input/input.manifest",
                                    ".lease/lease-000002.json"])
def test_report_written_into_the_jobs_own_folders_is_refused(tmp_path, capsys, target):
    """``-o`` inside ``JOB/manifests/`` or ``JOB/.lease/`` replaced (or added) a file that only
    the job writes: a checkpoint part (a stopped job's labels, read back by resume), the
    selection, the lease. Refused as the output manifest is; ``JOB/report.html`` stays allowed."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    job = tmp_path / "out" / "rj"
    assert main(sample_job_args("rj", tmp_path / "out")) == 0
    before = {f: f.read_bytes() for f in job.rglob("*") if f.is_file()}
    capsys.readouterr()
    assert main(["report", str(job), "-o", str(job / target), "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("totask-manifest report: error: ") and str(job / target) in err[0], err
    assert {f: f.read_bytes() for f in job.rglob("*") if f.is_file()} == before


@pytest.mark.slow
def test_report_of_a_killed_job_counts_what_its_checkpoints_hold(tmp_path):
    """A job killed with ``kill -9`` has no failures.jsonl yet and a job.json whose metrics are
    those of its last save: the page said "Failures (0) no failures" and fewer labeled lines than
    ``status``, though its checkpoints held failed lines. It now shows what they hold."""
    import time

    from tests.jobs_helpers import TOY, popen_cli, write_manifest
    from totask_manifest import status
    from totask_manifest._jobs.layout import JobLayout

    inp = write_manifest(tmp_path / "in.manifest", 60, bad_every=4)  # a failed line in every part
    out = tmp_path / "out"
    proc = popen_cli("annotate", str(inp), "--job-name", "killed", "--label-attribute", "cls", "--task-type",
                     "image-classification", "--method", TOY, "--output", str(out), "--toy-delay", "0.05",
                     "--checkpoint-every", "4")
    layout = JobLayout(str(out / "killed"))
    deadline = time.monotonic() + 60
    while len(layout.parts()) < 3:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=30)
    live = status(str(out / "killed"))
    assert live["status"] == "RUNNING" and live["metrics"]["failed"] >= 3, live
    html, _tiles, failures = render_report(str(out / "killed"), samples=0)
    assert failures == live["metrics"]["failed"]
    assert "no failures" not in html
    assert "img00003-bad.jpg" in html  # the first failed line's source
    labeled = re.search(r"<b>([\d,]+)</b><span>labeled</span>", html)
    assert labeled and int(labeled.group(1)) == live["metrics"]["success"], html


#: runs the command in ``sys.argv[1:]`` with its temporary's move held back: says "written" once
#: the temporary is whole, then waits to be killed (``kill -9`` between the write and the rename)
_KILLED_BEFORE_ITS_RENAME = """
import os, sys, time
from totask_manifest import _storage
def held(*args):
    print("written", flush=True)
    time.sleep(300)
_storage.AtomicWriter._move = held
_storage.replace_behind = held
from totask_manifest._cli import main
sys.exit(main(sys.argv[1:]))
"""


def _kill_once_written(*args: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.jobs_helpers import REPO

    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BEFORE_ITS_RENAME, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline() == "written\n", proc.communicate()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)


@pytest.mark.slow
def test_a_killed_reports_temporary_is_removed_by_the_next_report(tmp_path, s3: S3Endpoint, monkeypatch):
    """Before: ``report`` never looked for the temporary a ``kill -9`` left (``labeled`` did), so
    ``.tmp-report.html-*`` stayed beside the page for good, on a disk or S3. Now the next report
    removes it as ``labeled`` does: on a disk at once (no live writer holds its lock), on S3 once
    it is older than ``OBJECT_TEMPORARY_GRACE_S`` (an hour; lowered here to 0)."""
    from totask_manifest import _stale_temporaries

    job = _hand_made_job(tmp_path, ["s3://none/a.png"], None)
    local = tmp_path / "pages" / "report.html"
    local.parent.mkdir()
    _kill_once_written("report", str(job), "-o", str(local), "--samples", "0")
    assert [p.name[:17] for p in local.parent.iterdir()] == [".tmp-report.html-"]
    assert cli_main(["report", str(job), "-o", str(local), "--samples", "0"]) == 0
    assert [p.name for p in local.parent.iterdir()] == ["report.html"]
    fs = s3.filesystem()
    remote = f"{s3.new_bucket('report')}/pages/report.html"
    _kill_once_written("report", str(job), "-o", remote, "--samples", "0")
    fs.invalidate_cache()
    assert [p.rsplit("/", 1)[1][:17] for p in fs.find(remote.rsplit("/", 1)[0])] == [".tmp-report.html-"]
    monkeypatch.setattr(_stale_temporaries, "OBJECT_TEMPORARY_GRACE_S", 0.0)
    assert cli_main(["report", str(job), "-o", remote, "--samples", "0"]) == 0
    fs.invalidate_cache()
    assert [p.rsplit("/", 1)[1] for p in fs.find(remote.rsplit("/", 1)[0])] == ["report.html"]


@pytest.mark.slow
def test_sigterm_during_report_leaves_no_temporary(tmp_path):
    """``report`` stopped by SIGTERM (``timeout``, ``docker stop``) died of it at once, its
    temporary left beside the page (and on S3 an upload); it now takes Ctrl-C's path as
    ``labeled`` and ``convert`` do: the temporary removed, one line, exit 128 + 15."""
    import os
    import signal

    from tests.jobs_helpers import REPO

    job = _hand_made_job(tmp_path, ["s3://none/a.png"], None)
    page = tmp_path / "pages" / "report.html"
    page.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BEFORE_ITS_RENAME, "report", str(job), "-o", str(page),
                             "--samples", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline() == "written\n", proc.communicate()
        assert [p.name[:17] for p in page.parent.iterdir()] == [".tmp-report.html-"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "totask-manifest report: interrupted"
    assert list(page.parent.iterdir()) == []


def test_class_names_and_job_names_that_do_not_print_are_shown_escaped(tmp_path):
    """A class named with a NUL or a right-to-left override (U+202E, which turns the text after
    it around) went into the page's chart labels as it was; they are shown as literals, as
    ``stats`` and ``evaluate`` show them."""
    job = tmp_path / "job"
    (job / "manifests" / "output").mkdir(parents=True)
    lines = lines_naming(["\x00cat", "\u202eevil", "dog"], "labeling-job/a\u202eb")
    (job / "manifests" / "output" / "output.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    html, _, _ = render_report(str(job), samples=0)
    assert "\x00" not in html and "\u202e" not in html
    assert "\\x00cat" in html and "\\u202eevil" in html and ">2 dog<" in html


def _mixed_job(root: Path) -> Path:
    """An output manifest whose ``boxes`` holds boxes and, on line 3, an image classification label
    (``validate``: label-attribute-mixed-types), and a failed line declaring a third type."""
    job = root / "mixed"
    (job / "manifests" / "output").mkdir(parents=True)
    lines = lines_naming(["cat", "dog"], "labeling-job/a")
    lines.append({"source-ref": "s3://b/c.jpg", "boxes": 0, "boxes-metadata": {
        "class-name": "cat", "confidence": 0.9, "type": "groundtruth/image-classification",
        "job-name": "labeling-job/a", "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000"}})
    lines.append({"source-ref": "s3://b/f.jpg", "boxes-metadata": {
        "failure-reason": "ClientError: timeout", "type": "groundtruth/text-classification"}})
    (job / "manifests" / "output" / "output.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    return job


def test_an_attribute_of_two_task_types_is_said_on_the_page(tmp_path):
    """``stats`` says an attribute whose labels declare two task types mixes them (text, JSON, exit
    1); the page charted such an attribute's classes and confidences as one, without a word. It
    says so above the figures, in ``stats``' words, and lists the task types (a failed line's
    among them, mixing nothing, as ``stats`` counts it)."""
    html, _, _ = render_report(str(_mixed_job(tmp_path)), samples=0)
    labels = html.split("<h2>Labels</h2>", 1)[1].split("<h2>", 1)[0]
    assert ('<p class="mixed" role="note">several task types under one label attribute (image-classification, '
            "object-detection): the counts below mix them (label-attribute-mixed-types; totask-manifest validate "
            "names the lines)</p>") in labels
    assert labels.index('class="mixed"') < labels.index("Labels per class")
    assert "<dt>task types</dt><dd>object-detection (2), image-classification (1), text-classification (1)</dd>" in labels
    one = tmp_path / "one"
    (one / "manifests" / "output").mkdir(parents=True)
    (one / "manifests" / "output" / "output.manifest").write_bytes(
        b"".join(orjson.dumps(r) + b"\n" for r in lines_naming(["cat"], "labeling-job/a")))
    html, _, _ = render_report(str(one), samples=0)
    assert 'class="mixed"' not in html and "several task types" not in html
    assert "<dt>task types</dt><dd>object-detection (1)</dd>" in html


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_the_mixed_task_types_note_is_drawn_above_the_charts(tmp_path):
    """The note as a browser draws it: its red text on its pale red band, above the class chart's bars."""
    page = tmp_path / "mixed.html"
    write_report(str(_mixed_job(tmp_path)), str(page), samples=0)
    shot = tmp_path / "mixed.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1000,900", page.resolve().as_uri()], tmp_path / "p")
    assert shot.exists(), run.stderr[-2000:]
    arr = np.asarray(Image.open(shot).convert("RGB")).astype(int)

    def rows_of(rgb: tuple[int, int, int], near: int) -> np.ndarray:
        return np.nonzero((np.abs(arr - rgb).sum(axis=2) < near).sum(axis=1) > 20)[0]

    band, text, bars = rows_of((0xFE, 0xF3, 0xF2), 6), rows_of((0xB4, 0x23, 0x18), 60), rows_of((0x42, 0x69, 0xD0), 30)
    assert len(band) > 10 and len(text) > 3 and len(bars) > 0, (len(band), len(text), len(bars))
    assert band.min() <= text.min() and text.max() <= band.max() < bars.min()


@requires_gt
def test_a_folder_without_job_json_shows_no_made_up_progress_and_names_every_attribute(tmp_path):
    # the real chained adjustment output, two label attributes per line, dropped into a folder
    # as docs/analytics.md allows ("without job.json the output manifest alone is enough"): the
    # page showed Progress cards "0 lines to label, 0 labeled, 0 failed" above "labeled 50", and
    # the second attribute nowhere
    chained = GT_MANIFESTS / "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest"
    folder = tmp_path / "adjusted"
    (folder / "manifests" / "output").mkdir(parents=True)
    (folder / "manifests" / "output" / "output.manifest").write_bytes(chained.read_bytes())
    html, _, _ = render_report(str(folder), samples=0)
    progress = html.split("<h2>Progress</h2>", 1)[1].split("<h2>", 1)[0]
    assert 'class="card"' not in progress and "no job.json" in progress
    assert "suneung-korean-layout-detection-v2-chain" in html  # shown beside the one charted


def test_a_file_inside_a_job_folder_names_that_folder(tmp_path: Path, capsys) -> None:
    """``report JOB/manifests/output/output.manifest``: the job's manifest given for the job. As
    ``status``, ``resume`` and the README's rule for every command: one line names the folder to
    give instead (exit 2); before, only "no job.json and no manifests/output/output.manifest"."""
    job = _hand_made_job(tmp_path, ["http://127.0.0.1:9/a.png"], b'{"config": {}}')
    manifest = job / "manifests" / "output" / "output.manifest"
    assert cli_main(["report", str(manifest), "-o", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err == (f"totask-manifest report: error: {manifest} is not a job folder: it is a file "
                                       f"inside job folder {job}; give that folder\n")
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(StorageError, match=r"is not a job folder: no job.json and no manifests/output/output.manifest$"):
        render_report(str(tmp_path / "empty"))  # nothing of a job around: what was looked for


def test_a_truncated_line_in_the_output_manifest_is_said_on_the_page_and_exits_1(tmp_path, capsys):
    """A truncated last line (a copy cut short): ``stats`` of the file says so and exits 1; ``report``
    charted the other lines, said nothing and exited 0. Now it says it as ``stats`` does, on the
    page too, and exits 1 (invalid data); the page is written all the same."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    job = tmp_path / "out" / "rj"
    assert main(sample_job_args("rj", tmp_path / "out")) == 0
    output = job / "manifests" / "output" / "output.manifest"
    output.write_bytes(output.read_bytes() + output.read_bytes()[:60] + b"\n")
    capsys.readouterr()
    page = tmp_path / "page.html"
    assert main(["report", str(job), "-o", str(page)]) == 1
    err = capsys.readouterr().err
    assert ("totask-manifest report: error: 1 line is not a JSON object (a truncated or damaged manifest; "
            "totask-manifest validate names it); the page's figures leave it out") in err, err
    assert "Traceback" not in err
    assert "1 not a JSON object (a truncated or damaged manifest): the figures leave them out" in page.read_text()


def test_the_file_a_model_option_names_is_what_report_will_not_write_over(tmp_path):
    """``--model net.py:make`` reads ``net.py``: what the job records and ``report -o`` refuses; the
    option's text (``net.py:make``) is no file. An endpoint names none."""
    from totask_manifest._models.sources import model_file

    script = tmp_path / "net.py"
    script.write_text("def make():\n    return None\n")
    assert model_file(f"{script}:make") == str(script)
    assert model_file("http://127.0.0.1:9/predict") is None
    assert model_file(str(tmp_path / "weights.pt")) == str(tmp_path / "weights.pt")
