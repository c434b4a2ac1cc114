"""Seeded mutations of the real Ground Truth manifests through ``validate``, ``stats`` and a
job's input check.

Whatever the bytes, the command ends with exit 0 (valid), 1 (invalid data) or 2 (usage/I-O),
and never with a traceback: ``main`` lets only exceptions it does not expect escape, so calling
it in this process finds every traceback a subprocess would print. ``FUZZ_INPUTS`` (default 240)
sets how many mutated files a run tries; every mutation is derived from one seed per input, so a
failure names the seed that reproduces it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import gt_files, requires_gt
from totask_manifest._cli import main
from totask_manifest._errors import InvalidInputError
from totask_manifest._jobs.scan_ranges import raise_for_problems, scan_input

pytestmark = [requires_gt, pytest.mark.slow]

SOURCES = gt_files(".manifest", ".jsonl")
INPUTS = int(os.environ.get("FUZZ_INPUTS", "240"))
HUGE = [b"18446744073709551616", b"9223372036854775808", b"-9223372036854775809", b"1e400", b"-1e400",
        b"123456789012345678901234567890", b"NaN", b"9" * 400]


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _insert(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return data[:at] + junk + data[at:]


def _no_newlines(data: bytes, rng: random.Random) -> bytes:
    return data.replace(b"\n", b"" if rng.random() < 0.5 else b" ")


def _one_line_no_newline(data: bytes, rng: random.Random) -> bytes:
    lines = data.splitlines()
    return lines[rng.randrange(len(lines))] if lines else data


def _huge_ints(data: bytes, rng: random.Random) -> bytes:
    """Replace some numbers (class ids, sizes, confidences) with values beyond 64 bits or floats."""
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i : i + 1].isdigit() and (i == 0 or not data[i - 1 : i].isalnum()) and rng.random() < 0.2:
            j = i
            while j < len(data) and data[j : j + 1].isdigit():
                j += 1
            out += rng.choice(HUGE)
            i = j
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def _bad_utf8(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return data[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]) + data[at:]


def _long_line(data: bytes, rng: random.Random) -> bytes:
    """A first line of more than 1 MiB (one read chunk) with no newline inside."""
    return b'{"source-ref":"s3://b/k","x":"' + b"a" * ((1 << 20) + rng.randrange(1000)) + b'"}' + (
        b"\n" + data if rng.random() < 0.5 else b"")


def _bom_and_crlf(data: bytes, rng: random.Random) -> bytes:
    return b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    _truncate, _insert, _no_newlines, _one_line_no_newline, _huge_ints, _bad_utf8, _long_line, _bom_and_crlf]


def mutated(seed: int) -> bytes:
    rng = random.Random(seed)
    data = SOURCES[rng.randrange(len(SOURCES))].read_bytes()
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


def run_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("chunk", range(8))
def test_validate_and_stats_never_raise_on_mutated_manifests(
        chunk: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures = []
    for seed in range(chunk, INPUTS, 8):
        path = tmp_path / f"m{seed}.manifest"
        path.write_bytes(mutated(seed))
        for argv in (["validate", str(path), "--workers", "1"], ["stats", str(path), "--workers", "1"],
                     ["stats", str(path), "--workers", "1", "--format", "json"]):
            try:
                code, err = run_command(argv, capsys)
            except BaseException as exc:  # any escape would be a traceback
                failures.append(f"seed {seed} {argv[0]}: {type(exc).__name__}: {exc}")
                continue
            if code not in (0, 1, 2) or (code == 2 and len(err.strip().splitlines()) != 1):
                failures.append(f"seed {seed} {argv[0]}: exit {code}, stderr {err!r}")
        try:  # a job's input check reads the same bytes with validate's line rules
            scan = scan_input(str(path), "category")
            raise_for_problems(str(path), scan)
        except InvalidInputError:
            pass
        except BaseException as exc:
            failures.append(f"seed {seed} input scan: {type(exc).__name__}: {exc}")
        path.unlink()
    assert not failures, "\n".join(failures[:20])


YOLO = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"


def test_validate_reads_one_line_without_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "one.manifest"
    path.write_bytes(YOLO.read_bytes().splitlines()[0])
    assert main(["validate", str(path)]) == 0
    assert ": valid: 1 line," in capsys.readouterr().out


def test_validate_reads_a_first_mebibyte_without_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "long.manifest"
    path.write_bytes(b'{"source-ref":"s3://b/k","x":"' + b"a" * (3 << 20) + b'"}\n' + YOLO.read_bytes())
    assert main(["validate", str(path), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    # over the byte cap (``long_lines.MAX_LINE_BYTES``): read past, its characters never counted
    assert "line 1: error: line is over 400,004 bytes" in out and "[line-too-long]" in out
    assert "INVALID: 51 lines, 1 error," in out  # its values are not read either (no attribute-too-long)


def test_stats_leaves_out_class_ids_beyond_64_bits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = YOLO.read_bytes().splitlines(keepends=True)
    first = lines[0].replace(b'"class_id":0', b'"class_id":18446744073709551615', 1)
    assert first != lines[0]
    path = tmp_path / "huge.manifest"
    path.write_bytes(first + lines[1])
    assert main(["stats", str(path), "--workers", "1", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "18446744073709551615" not in out
    # left out, but not silently: counted apart, and said in the text
    assert orjson.loads(out)["attributes"]["category"]["no_class_id"] == 1
    assert main(["stats", str(path), "--workers", "1"]) == 0
    assert "left out of every count: 1 box or label whose class_id" in capsys.readouterr().out
