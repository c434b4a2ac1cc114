"""What ``status`` (and ``report``'s page) says a job reads. A job with ``--append`` manifests
reads their combination, which it wrote into its folder: before, the text named only the input
given with the combination's count (``input: .../output.manifest (230 lines)`` over a file of
200 lines), and the appended manifests nowhere. Now it names the combined copy and where its
lines came from, as job.json records them (the input's line count, and each appended manifest's
lines, from ``relative_to_appended``'s starts)."""

from __future__ import annotations

from pathlib import Path

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._cli import main
from totask_manifest._jobs.config import JobConfig


def _config(name: str, inp: Path, out: Path, append: list[Path]) -> JobConfig:
    return JobConfig(job_name=name, input=str(inp), output_root=str(out), label_attribute="cls",
                     task_type="image-classification", method=TOY, append=[str(a) for a in append])


def _status_input(job_url: str, capsys) -> str:
    capsys.readouterr()
    assert main(["status", job_url]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("input: "))


def test_status_names_the_combined_input_and_where_its_lines_came_from(tmp_path: Path, capsys) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 200, bad_every=0)
    more = tmp_path / "more.manifest"
    more.write_bytes(b"".join(b'{"source-ref":"s3://bucket/more/m%d.jpg"}\n' % i for i in range(30)))
    dups = tmp_path / "dups.manifest"  # its 3 lines: 1 new, 2 already in the input
    dups.write_bytes(b'{"source-ref":"s3://bucket/images/img00000.jpg"}\n{"source-ref":"s3://bucket/new.jpg"}\n'
                     b'{"source-ref":"s3://bucket/images/img00001.jpg"}\n')
    first = api.annotate(_config("first", inp, tmp_path / "out", []))
    assert _status_input(first.job_url, capsys) == f"input: {inp} (200 lines)"  # nothing appended: as before

    chained = api.chain(first.job_url, "second", append=[str(more), str(dups)])
    combined = Path(chained.job_url) / "manifests" / "input" / "input.manifest"
    assert len(combined.read_bytes().splitlines()) == 231
    assert _status_input(chained.job_url, capsys) == (
        f"input: {combined} (231 lines: 200 from {first.output_manifest}, 30 from --append {more}, "
        f"1 from --append {dups})")

    capsys.readouterr()
    assert main(["report", chained.job_url, "-o", str(tmp_path / "page.html"), "--samples", "0"]) == 0
    page = (tmp_path / "page.html").read_text()
    assert f"<dt>input</dt><dd>{combined} (231 lines: 200 from {first.output_manifest}, 30 from --append" in page


def test_an_appended_manifest_whose_lines_were_all_duplicates_is_named_with_none(tmp_path: Path, capsys) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 5, bad_every=0)
    done = api.annotate(_config("self", inp, tmp_path / "out", [inp]))
    combined = Path(done.job_url) / "manifests" / "input" / "input.manifest"
    assert _status_input(done.job_url, capsys) == f"input: {combined} (5 lines: 5 from {inp}, 0 from --append {inp})"


def test_a_one_line_input_is_counted_in_the_singular(tmp_path: Path, capsys) -> None:
    """``input: in.manifest (1 lines)`` read as a typo; the count takes its noun's number."""
    inp = write_manifest(tmp_path / "in.manifest", 1, bad_every=0)
    job = api.annotate(_config("one", inp, tmp_path / "out", []))
    assert _status_input(job.job_url, capsys) == f"input: {inp} (1 line)"
