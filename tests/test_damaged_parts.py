"""A damaged checkpoint part (torn by a crash without sync, or damaged by its store) must not
leave a user stuck: ``resume`` sets a damaged *last* part aside (renamed, kept, reported) and
labels its lines again; a damaged part before others is refused naming the part and what to do;
``status`` and ``report`` show the job and the damage, and never say COMPLETED. Real job folders,
the CLI in a subprocess."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, assert_same_output, output_of, run_cli, write_manifest
from totask_manifest._jobs.layout import JobLayout

pytestmark = pytest.mark.slow


def _killed_job(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """A job of 40 lines in parts of 5, left RUNNING as a killed run leaves it (its holder is
    gone), with a copy of its full output to compare against; and its parts."""
    inp = write_manifest(tmp_path / "in.manifest", 40)
    out = tmp_path / "out"
    r = run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "cls", "--task-type",
                "image-classification", "--method", TOY, "--output", str(out), "--checkpoint-every", "5")
    assert r.returncode == 0, r.stderr
    job = out / "j"
    expected = shutil.copy(output_of(out, "j"), tmp_path / "expected.manifest")
    output_of(out, "j").unlink()
    data = orjson.loads((job / "job.json").read_bytes())
    (job / "job.json").write_bytes(orjson.dumps({**data, "status": "RUNNING", "ended": None}))
    parts = [Path(p) for p in JobLayout(str(job)).parts()]
    assert len(parts) == 8
    return job, Path(expected), parts


def _truncate(part: Path) -> None:
    part.write_bytes(part.read_bytes()[:-7])


def _empty(part: Path) -> None:
    part.write_bytes(b"")  # what ext4's delayed allocation leaves of a renamed file after a power cut


def _garbled_heads(part: Path) -> None:
    raw = bytearray(part.read_bytes())
    start = raw.index(b"\n") + 1  # the heads line follows the magic line; same size, footer intact
    raw[start:start + 8] = b"\x00" * 8
    part.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", [_truncate, _empty, _garbled_heads])
def test_resume_sets_a_damaged_last_part_aside_and_labels_its_lines_again(tmp_path, damage):
    job, expected, parts = _killed_job(tmp_path)
    last = parts[-1]
    damage(last)
    damaged_bytes = last.read_bytes()

    if damage is not _garbled_heads:  # status reads footers only: heads are the commit's to check
        s = run_cli("status", str(job))
        assert s.returncode == 0, s.stderr
        assert "status: RUNNING" in s.stdout and "COMPLETED" not in s.stdout
        assert f"damaged: checkpoint part {last} is damaged" in s.stdout and "run resume" in s.stdout
        assert "stand_by=5" in s.stdout  # the 35 lines of the readable parts counted, the damaged 5 not

        page = tmp_path / "report.html"
        rep = run_cli("report", str(job), "-o", str(page), "--samples", "0")
        assert rep.returncode == 0, rep.stderr
        assert "Traceback" not in rep.stderr and f"{last.name} is damaged" in rep.stderr
        assert f"{last.name} is damaged" in page.read_text() and "COMPLETED" not in page.read_text()

    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert f"checkpoint part {last} is damaged" in r.stderr and "set aside as part-000007.ckpt.damaged" in r.stderr
    assert "set aside 1 damaged checkpoint part; labeling again from line 36" in r.stderr
    assert "COMPLETED" in r.stdout
    kept = last.with_name(last.name + ".damaged")
    assert kept.read_bytes() == damaged_bytes  # renamed, never deleted
    assert_same_output(output_of(job.parent, "j"), expected)
    run = orjson.loads((job / "job.json").read_bytes())["runs"][-1]
    assert run["damaged_parts_set_aside"][0]["moved_to"] == str(kept)
    assert run["resumed_after_line"] == 35


def test_resume_sets_aside_every_damaged_part_at_the_end(tmp_path):
    job, expected, parts = _killed_job(tmp_path)
    _empty(parts[-1])
    _truncate(parts[-2])
    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    assert "set aside 2 damaged checkpoint parts; labeling again from line 31" in r.stderr
    assert parts[-1].with_name(parts[-1].name + ".damaged").exists()
    assert parts[-2].with_name(parts[-2].name + ".damaged").exists()
    assert_same_output(output_of(job.parent, "j"), expected)


def test_a_damaged_part_before_good_ones_is_refused_naming_it_and_what_to_do(tmp_path):
    job, _expected, parts = _killed_job(tmp_path)
    _truncate(parts[2])
    r = run_cli("resume", str(job))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    err = r.stderr.strip()
    assert f"checkpoint part {parts[2]} is damaged" in err and "5 later parts" in err
    assert "move it and every later part out of" in err and "(keep them)" in err
    assert sorted(p.name for p in parts[0].parent.iterdir()) == sorted([p.name for p in parts] + ["selection.bin"])
    s = run_cli("status", str(job))
    assert s.returncode == 0 and "COMPLETED" not in s.stdout and f"{parts[2]} is damaged" in s.stdout
    # status says what resume says, not "run resume, which sets a damaged last part aside": it is not the last
    note = next(line for line in s.stdout.splitlines() if line.startswith("damaged: "))
    assert "5 later parts hold finished lines" in note and "move it and every later part out of" in note, note
    assert "run resume, which sets" not in note, note


@pytest.mark.parametrize("which", [2, -1], ids=["middle", "last"])
def test_status_and_report_name_a_damaged_part_alike_from_a_relative_path(tmp_path, which):
    """``status out/j`` named the part relative to where it was run (``out/j/manifests/...``),
    ``report`` and ``resume`` absolute: one path, whichever command the user reads."""
    job, _expected, parts = _killed_job(tmp_path)
    _truncate(parts[which])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    relative = str(job.relative_to(tmp_path))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                              timeout=120, env=env, cwd=tmp_path)

    s = cli("status", relative)
    assert s.returncode == 0, s.stderr
    note = next(line for line in s.stdout.splitlines() if line.startswith("damaged: "))
    assert note.startswith(f"damaged: checkpoint part {parts[which]} is damaged"), note
    as_json = orjson.loads(cli("status", relative, "--format", "json").stdout)["damaged"]
    rep = cli("report", relative, "-o", "report.html", "--samples", "0")
    assert rep.returncode == 0, rep.stderr
    assert note == f"damaged: {as_json}"
    assert f"<dt>damaged</dt><dd>{html.escape(as_json)}</dd>" in (tmp_path / "report.html").read_text()


def test_a_damaged_parts_message_names_it_without_the_urls_secrets():
    from totask_manifest._errors import DamagedCheckpoint

    message = str(DamagedCheckpoint("https://user:pw@store.example/job/part-000001.ckpt?X-Amz-Signature=s3cr3t", "torn"))
    assert "part-000001.ckpt" in message and "torn" in message
    assert "s3cr3t" not in message and "pw@" not in message


@pytest.mark.parametrize("status", ["STOPPED", "FAILED"])
def test_a_refused_resume_leaves_a_stopped_job_as_it_was_and_status_names_the_damage(tmp_path, status):
    """A STOPPED job whose middle part was damaged since: resume refused it (right), but had saved
    the job RUNNING first, so ``chain`` then refused it too ("resume it first") and ``status``
    said "interrupted". Now the parts are read before RUNNING is saved, and ``status`` of a job
    that is not RUNNING names the damaged part as it does for a killed one."""
    job, _expected, parts = _killed_job(tmp_path)
    data = orjson.loads((job / "job.json").read_bytes())
    (job / "job.json").write_bytes(orjson.dumps({**data, "status": status, "ended": "2026-01-01T00:00:00Z"}))
    before = (job / "job.json").read_bytes()
    _truncate(parts[2])
    r = run_cli("resume", str(job))
    assert r.returncode == 1 and f"checkpoint part {parts[2]} is damaged" in r.stderr, r.stderr
    assert (job / "job.json").read_bytes() == before  # not RUNNING, no run recorded
    s = run_cli("status", str(job))
    assert s.returncode == 0 and f"status: {status}" in s.stdout, s.stdout
    note = next(line for line in s.stdout.splitlines() if line.startswith("damaged: "))
    assert f"{parts[2]} is damaged" in note and "5 later parts hold finished lines" in note, note
    c = run_cli("chain", str(job), "--job-name", "next", "--method", TOY)  # refused for its missing output only
    assert "RUNNING" not in c.stderr and "interrupted" not in c.stderr and "has no output manifest" in c.stderr, c.stderr
