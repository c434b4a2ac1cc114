"""``annotate --append`` reads each manifest it is given once: checked on its own (its bad lines
named by its own file and line number) as it is copied into the combined input, whose checksum
and selection come from the bytes written (``_jobs.combine``). Before, each given manifest was
read twice (checked, then copied) and the combined one scanned and checksummed from disk before
the job ran. Measured as the bytes this process read (``/proc/self/io``'s ``rchar``) around the
call, in a fresh interpreter, with inputs under the size at which a scan starts worker
processes, so every read is this process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, write_manifest

pytestmark = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/self/io (Linux)")

SCRIPT = """
import sys
from totask_manifest import _api as api
from totask_manifest._jobs.config import JobConfig

def rchar():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))

inp, more, out = sys.argv[1:4]
def run(name):
    return api.annotate(JobConfig(job_name=name, input=inp, output_root=out, label_attribute="cls",
                                  task_type="image-classification", method="tests.support.toy_annotators:ToyClassifier",
                                  append=[more]))
run("warm")  # every module the call imports, imported here: the second call reads only data
before = rchar()
result = run("measured")
print(result.status, rchar() - before)
"""


@pytest.mark.slow
def test_append_reads_each_manifest_once(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 30_000, prelabeled_every=1)  # labeled: parts stay small
    raw = inp.read_bytes()
    more = tmp_path / "more.manifest"
    # one line to label (else the job would look for a data object: a read of its own), the rest labeled
    more.write_bytes(b'{"source-ref":"s3://bucket/new/one.jpg"}\n'
                     + raw.replace(b"/img", b"/app")[: len(raw) // 4].rsplit(b"\n", 1)[0] + b"\n")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(inp), str(more), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    status, read = r.stdout.split()
    combined = tmp_path / "out" / "measured" / "manifests" / "input" / "input.manifest"
    sizes = {"in": inp.stat().st_size, "more": more.stat().st_size, "combined": combined.stat().st_size}
    assert status == "COMPLETED" and sizes["combined"] >= sizes["in"] + sizes["more"] - 1  # an appended CRLF: LF
    assert sizes["in"] + sizes["more"] < 16 << 20  # one range: no worker processes (scan_ranges)
    # each given manifest: checked and copied at once; the combined one: only the commit's copy
    expected = sizes["in"] + sizes["more"] + sizes["combined"]
    slack = 256 << 10  # job.json, selection.bin, the lease, one part: small
    # before: in and more twice, the combined input three times (its scan, its checksum, the copy)
    assert int(read) <= expected + slack, (int(read) - expected, sizes)
    lines = orjson.loads((tmp_path / "out" / "measured" / "job.json").read_bytes())["input"]["lines"]
    assert lines == raw.count(b"\n") + more.read_bytes().count(b"\n")  # every appended line in (no duplicates)


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("input_bytes, appended", [
    (BOM + b'{"source-ref":"a.jpg"}\r\n\n  \n{"source-ref":"b.jpg","cls":1}', [BOM + b'{"source":"t"}\r\n\n{"source-ref":"a.jpg"}']),
    (b"", [b'{"source-ref":"x.jpg","cls":null}\n', b'{"source-ref":"x.jpg"}\n{"source-ref":"y.jpg"}']),
    (b"".join(b'{"source-ref":"i%d.jpg"%s}\n' % (i, b',"cls":2' if i % 3 else b"") for i in range(100)),
     [b"".join(b'{"source-ref":"i%d.jpg"}\n' % i for i in range(90, 140))]),
    (b"big", []),
])
def test_the_combined_scan_is_the_scan_of_the_file_written(tmp_path: Path, input_bytes: bytes, appended: list[bytes]) -> None:
    """The combined input is not read again: its checksum, line count and selection (lines to label,
    where they start) are taken as it is written, and must be what a scan of the file finds, whatever
    the byte order marks, CRLF, blank lines, missing last newline and duplicates."""
    from totask_manifest._jobs.combine import combine_with_appended
    from totask_manifest._jobs.scan_ranges import scan_input, sha256_of

    inp = tmp_path / "in.manifest"
    if input_bytes == b"big":  # several of the reader's 1 MiB chunks, and their seams
        input_bytes = write_manifest(tmp_path / "big.manifest", 6000, prelabeled_every=3).read_bytes()
        half = input_bytes[: len(input_bytes) // 2].rsplit(b"\n", 1)[0]  # lines 1000 on: duplicates
        appended = [half.replace(b"/img00", b"/new00") + b"\r\n"]
    inp.write_bytes(input_bytes)
    extra = []
    for k, data in enumerate(appended):
        extra.append(tmp_path / f"more{k}.manifest")
        extra[-1].write_bytes(data)
    out = tmp_path / "job" / "input.manifest"
    result = combine_with_appended(str(inp), [str(p) for p in extra], str(out), "cls")
    scan = scan_input(str(out), "cls")
    assert (result.scan.sha256, result.scan.lines, result.scan.selected) == (scan.sha256, scan.lines, scan.selected)
    assert list(result.scan.selection.indices) == list(scan.selection.indices)
    assert list(result.scan.selection.offsets) == list(scan.selection.offsets)
    assert result.scan.selection.fingerprint == scan.selection.fingerprint
    assert result.given_sha256 == [sha256_of(str(p)) for p in (inp, *extra)]
    assert not scan.problems and scan.selected > 0
    assert result.added + result.skipped == sum(1 for x in appended for line in x.splitlines() if line.strip())  # none lost


def test_a_bad_line_found_midway_leaves_nothing_written(tmp_path: Path) -> None:
    """The input is copied as it is checked: an --append manifest refused after the input was copied
    leaves no combined input, no temporary and no folder behind, and names its own line."""
    from totask_manifest._errors import InvalidInputError
    from totask_manifest._jobs.combine import combine_with_appended

    inp = write_manifest(tmp_path / "in.manifest", 3000)
    more = tmp_path / "more.manifest"
    more.write_bytes(b'{"source-ref":"new.jpg"}\n' * 2 + b'{"source-ref":"x.jpg"\n')
    out = tmp_path / "job" / "manifests" / "input" / "input.manifest"
    out.parent.parent.parent.mkdir()
    with pytest.raises(InvalidInputError, match=r"^--append manifest .*more\.manifest has 1 bad line:\n  line 3: "):
        combine_with_appended(str(inp), [str(more)], str(out), "cls")
    assert not list((tmp_path / "job").iterdir())


def test_an_input_copied_alone_takes_the_typed_path_and_scans_as_the_file(tmp_path: Path, monkeypatch) -> None:
    """An input copied without ``--append`` (its URL holds a secret) is checked in one process, as
    it is written: runs of a shape cleared once go validate's typed way (no record a line), and the
    scan is still what a scan of the file written finds."""
    from totask_manifest._jobs import scan_ranges
    from totask_manifest._jobs.combine import combine_with_appended
    from totask_manifest._jobs.scan_ranges import scan_input

    label = (b',"cls":{"image_size":[{"width":8,"height":8,"depth":3}],"annotations":[]},"cls-metadata":'
             b'{"objects":[],"class-map":{},"type":"groundtruth/object-detection","human-annotated":"no",'
             b'"creation-date":"2026-01-01T00:00:00","job-name":"labeling-job/x"}')
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b"".join(b'{"source-ref":"s3://b/i%d.jpg"%s}\n' % (i, b"" if i % 37 == 5 else label)
                             for i in range(400)))
    accepted = []
    real = scan_ranges._TypedRuns.learn

    def learn(self, records):
        real(self, records)
        if self.accepts is not None and not getattr(self.accepts, "counted", False):
            inner = self.accepts
            self.accepts = lambda text: accepted.append(n := inner(text)) or n
            self.accepts.counted = True

    monkeypatch.setattr(scan_ranges._TypedRuns, "learn", learn)
    out = tmp_path / "job" / "input.manifest"
    result = combine_with_appended(str(inp), [], str(out), "cls")
    monkeypatch.undo()
    scan = scan_input(str(out), "cls")
    assert out.read_bytes() == inp.read_bytes()
    assert (result.scan.sha256, result.scan.lines, result.scan.selected) == (scan.sha256, scan.lines, scan.selected)
    assert list(result.scan.selection.indices) == list(scan.selection.indices) == [i for i in range(400) if i % 37 == 5]
    assert list(result.scan.selection.offsets) == list(scan.selection.offsets)
    assert sum(accepted) > 200  # most lines went the typed way
