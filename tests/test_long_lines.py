"""A line over the byte cap (``long_lines.MAX_LINE_BYTES``) is read past, never held: every
splitter yields a ``TooLong`` marker in its place, and every reader refuses it by name.

The splitter tests lower the cap (a test must not write gigabytes); the memory tests run the
commands in a subprocess on a 50 MB line, over the real cap."""

from __future__ import annotations

import io
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, TOY
from totask_manifest._cli import main
from totask_manifest._manifest import blocks, long_lines, ranges

MARK = b"<marker>"


def expected_lines(data: bytes, start: int, end: int | None, cap: int, newlines: bool) -> list[tuple[bytes, int]]:
    """The reference: ``(body, 0)`` for each line starting in ``[start, end)``, or ``(MARK, its
    size in the file)`` for a line over ``cap`` bytes (its ``\\n`` not counted); where ``end``
    cuts such a line, the size is its bytes up to ``end`` (the least a marker may say)."""
    out: list[tuple[bytes, int]] = []
    at = 0
    pieces = data.split(b"\n")
    for i, piece in enumerate(pieces):
        terminated = i < len(pieces) - 1
        if not terminated and not piece:
            break
        size = len(piece) + terminated
        if start <= at < (len(data) if end is None else end):
            if len(piece) > cap:
                out.append((MARK, size if end is None else min(size, end - at)))
            else:
                body = piece[len(ranges.BOM):] if at == 0 and piece.startswith(ranges.BOM) else piece
                out.append((body + (b"\n" if newlines and terminated else b""), 0))
        at += size
    return out


def seen(batches: list[list[bytes]]) -> list[tuple[bytes, int]]:
    out: list[tuple[bytes, int]] = []
    for batch in batches:
        if any(type(line) is long_lines.TooLong for line in batch):
            assert len(batch) == 1, batch  # a marker comes alone: readers test a batch's first line
            assert batch[0] in (b"\x00", b"\x00\n"), batch
        out += [(MARK, line.size) if type(line) is long_lines.TooLong else (line, 0) for line in batch]
    return out


def same(got: list[tuple[bytes, int]], expected: list[tuple[bytes, int]]) -> bool:
    """Lines equal; a marker's size exact, or at least the reference's where the range ends inside the line."""
    return len(got) == len(expected) and all(
        g == e or (g[0] == e[0] == MARK and g[1] >= e[1]) for g, e in zip(got, expected, strict=True))


def test_every_splitter_yields_a_marker_for_a_line_over_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """``iter_bodies`` (with and without ``\\n``), ``iter_blocks`` and ``iter_line_lists`` give each range its lines,
    with a marker (its size in the file) for each line over the cap, whatever the chunk size,
    the range bounds, a BOM, ``\\r`` or a last line without its ``\\n``."""
    rng = random.Random(11)
    for _ in range(4000):
        cap = rng.randint(1, 12)
        monkeypatch.setattr(long_lines, "MAX_LINE_BYTES", cap)
        lines = [bytes(rng.choice(b"ab\r ") for _ in range(rng.choice((rng.randint(0, 6), rng.randint(0, 30)))))
                 for _ in range(rng.randint(0, 10))]
        data = (ranges.BOM if rng.random() < 0.2 else b"") + b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        bounds = [0, *sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 3))), len(data)]
        chunk = rng.randint(1, 9)
        for start, end in itertools.pairwise(bounds):
            end_or_none = None if end == len(data) and rng.random() < 0.5 else end
            case = (data, start, end_or_none, chunk, cap)
            for newlines in (False, True):
                got = seen(list(ranges.iter_bodies(io.BytesIO(data), start=start, end=end_or_none, chunk=chunk,
                                                   newlines=newlines)))
                assert same(got, expected_lines(data, start, end_or_none, cap, newlines)), (*case, newlines, got)
            split = [[b] if type(b) is long_lines.TooLong else blocks.split_block(b)
                     for b in blocks.iter_blocks(io.BytesIO(data), start=start, end=end_or_none, chunk=chunk)]
            assert same(seen(split), expected_lines(data, start, end_or_none, cap, False)), (*case, seen(split))
            # stats' reader, which seeks back over a line cut by a chunk's end: the same lines, with \n
            listed = seen([lines for lines, _ in blocks.iter_line_lists(io.BytesIO(data), start=start,
                                                                        end=end_or_none, chunk=chunk)])
            assert same(listed, expected_lines(data, start, end_or_none, cap, True)), (*case, listed)


def test_a_line_over_the_cap_is_read_in_chunks_never_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """No read asks for more than a chunk, and no line yielded is longer than the cap, while the
    file holds a line 200 times the cap (the range boundary inside it too)."""
    monkeypatch.setattr(long_lines, "MAX_LINE_BYTES", 1000)
    data = b'{"source":"a"}\n' + b"x" * 200_000 + b'\n{"source":"b"}\n'
    reads: list[int] = []

    class Reader(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

        def readline(self, size: int | None = -1) -> bytes:  # pragma: no cover - the failure this test is for
            raise AssertionError("readline holds a whole line")

    for start in (0, 50_000):
        reads.clear()
        batches = list(ranges.iter_bodies(Reader(data), start=start, chunk=256))
        assert all(0 < size <= 256 for size in reads), reads
        assert max(len(line) for batch in batches for line in batch) <= 1000
        sizes = [line.size for batch in batches for line in batch if type(line) is long_lines.TooLong]
        assert sizes == ([200_001] if start == 0 else [])
        reads.clear()
        assert [b for b in blocks.iter_blocks(Reader(data), start=start, chunk=256)
                if type(b) is long_lines.TooLong] == ([b"\x00\n"] if start == 0 else [])
        assert all(0 < size <= 256 for size in reads), reads


# --- every reader refuses such a line by name ----------------------------------------------------

GOOD = b'{"source-ref":"s3://b/a.jpg","cls":1,"cls-metadata":{"type":"groundtruth/image-classification",' \
       b'"class-name":"cat","confidence":0.9,"job-name":"j","human-annotated":"no","creation-date":' \
       b'"2024-01-01T00:00:00"}}\n'
LONG = b'{"source-ref":"s3://b/k","x":"' + b"a" * 5000 + b'"}\n'


@pytest.fixture()
def long_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest whose line 2 is over a cap lowered to 1,000 bytes (the real one is 400,004)."""
    monkeypatch.setattr(long_lines, "MAX_LINE_BYTES", 1000)
    path = tmp_path / "in.manifest"
    path.write_bytes(GOOD + LONG + GOOD)
    return path


def test_validate_and_a_job_name_the_line_over_the_cap(long_manifest: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(long_manifest), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "line 2: error: line is over 1,000 bytes" in out and "[line-too-long]" in out
    assert "INVALID: 3 lines, 1 error," in out
    code = main(["annotate", str(long_manifest), "--method", TOY, "--label-attribute", "new", "--task-type",
                 "image-classification", "--job-name", "j", "--output", str(tmp_path / "jobs")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "has 1 bad line:\n  line 2: line is over 1,000 bytes" in err and "[line-too-long]" in err
    assert not (tmp_path / "jobs" / "j" / "job.json").exists()


def test_stats_and_evaluate_refuse_the_line_over_the_cap(long_manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """They read every line and report counts: the line is invalid data (exit 1), said as such."""
    assert main(["stats", str(long_manifest), "--workers", "1"]) == 1
    out, err = capsys.readouterr()
    assert "lines: 3 (0 blank)" in out and "lines over 1,000 bytes, not read (line-too-long" in out
    assert "not a JSON object" not in out
    assert err.startswith("totask-manifest stats: error: 1 line is over 1,000 bytes") and "[line-too-long]" in err, err
    assert err.count("\n") == 1, err  # that kind alone: no line is said to be broken JSON
    assert main(["evaluate", str(long_manifest), "--predicted", "cls", "--reference", "ref", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "1 line is over 1,000 bytes" in captured.err
    # its summary counts the line apart too: it may be a JSON object, it was not read
    assert "0 not a JSON object, 1 over 1,000 bytes (not read)" in captured.out, captured.out


def test_evaluate_names_both_a_line_over_the_cap_and_a_broken_one(
        long_manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each kind of invalid line is said, not only the first kind found."""
    long_manifest.write_bytes(GOOD + LONG + b'{"source-ref": "s3://b/t\n' + GOOD)
    assert main(["evaluate", str(long_manifest), "--predicted", "cls", "--reference", "ref", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "1 not a JSON object, 1 over 1,000 bytes (not read)" in captured.out, captured.out
    assert "1 line is over 1,000 bytes" in captured.err
    assert "1 line is not a JSON object" in captured.err, captured.err
    assert main(["stats", str(long_manifest), "--workers", "1", "--format", "json"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" line is ")[1][:14] for line in err] == ["over 1,000 byt", "not a JSON obj"], err
    assert all(line.startswith("totask-manifest stats: error: 1 line is") and "the counts leave it out" in line
               for line in err), err


@pytest.mark.parametrize("command", [
    ["convert", "--to", "parquet", "{in}", "{out}"],
    ["convert", "--to", "dm-schema-v1", "--label-attribute", "cls", "{in}", "{out}"],
    ["labeled", "--label-attribute", "cls", "-o", "{out}", "{in}"],
])
def test_commands_that_carry_whole_lines_refuse_the_file_and_write_nothing(
        long_manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = [a.format(**{"in": long_manifest, "out": out_dir / "result"}) for a in command]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "error: line 2: line is over 1,000 bytes" in err and "[line-too-long]" in err
    assert "Traceback" not in err
    assert list(out_dir.iterdir()) == []  # nothing half written, no temporary left


# --- memory: a 50 MB line over the real cap --------------------------------------------------------

#: run in a small process of its own, so that the command's peak is not this (big) process's at
#: the fork (Linux keeps a process's peak across ``exec``): the command's and its workers' peak
_PEAK = ("import resource, subprocess, sys\n"
         "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
         "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def peak_kb(args: list[str]) -> tuple[int, int]:
    """``(exit code, peak RSS in KB)`` of the command and its worker processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "totask_manifest", *args], env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KB, as Linux gives it")
def test_a_50_mb_line_takes_no_memory_in_proportion(tmp_path: Path) -> None:
    """Each reader's peak on a file with a 50 MB line stays within 25 MB of its peak on the same
    file without it. Before: 303 MB more for ``validate``, 205 for ``stats``, 317 for ``convert``,
    334 for ``annotate`` (the line joined, decoded and parsed; ``stats`` and ``convert`` exited 0)."""
    small = tmp_path / "small.manifest"
    small.write_bytes(GOOD * 2)
    big = tmp_path / "big.manifest"
    with big.open("wb") as f:
        f.write(GOOD + b'{"source-ref":"s3://b/k","x":"')
        for _ in range(50):
            f.write(b"a" * (1 << 20))
        f.write(b'"}\n' + GOOD)
    commands = {
        "validate": ["validate", "{}", "--workers", "2"],
        "stats": ["stats", "{}", "--workers", "1"],
        "convert": ["convert", "--to", "parquet", "{}", str(tmp_path / "{name}.parquet")],
        "annotate": ["annotate", "{}", "--method", TOY, "--label-attribute", "new", "--task-type",
                     "image-classification", "--job-name", "{name}", "--output", str(tmp_path / "jobs")],
    }
    for name, command in commands.items():
        peaks = {}
        for which, path in (("small", small), ("big", big)):
            code, peaks[which] = peak_kb([a.format(path, name=f"{name}-{which}") for a in command])
            assert code == (0 if which == "small" else 1), (name, which)
        assert peaks["big"] - peaks["small"] < 25 * 1024, (name, peaks)
