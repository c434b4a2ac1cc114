"""``stats``' skips (``stats_lean``): a block is decoded with a box's coordinates and
``image_size`` skipped only where the proof holds, and the counts stay the generic count's.

Each case msgspec's skip would let through (orjson refuses it) is put where the skip is: in a
box's ``top`` and in ``image_size``; each must be refused by the proof, and the file's counts must
be the generic count's. A proof that always said no would pass those, so bench-shaped lines are
checked to take the skips.
"""

from __future__ import annotations

import random
import sys

import orjson
import pytest

from tests.test_stats_fast import _stats, assert_equal, detection
from totask_manifest._analytics import stats_lean
from totask_manifest._analytics.stats import Tally, count_range, merge_partials
from totask_manifest._analytics.stats_fast import FastPath
from totask_manifest._analytics.stats_lean import SkipProof

#: (what replaces a box's ``"top":<number>``, whether orjson reads the line)
SKIPPED_VALUES = [
    (b'"top":1e999', False),  # overflows a double: orjson refuses, a skip would not
    (b'"top":-1.8E308', False),
    (b'"top":1e5', True),  # an exponent orjson reads: the proof still says no (it cannot tell)
    (b'"top":' + b"9" * 400, False),
    (b'"top":' + b"9" * 300, True),
    (b'"top":"\xff"', False),  # invalid UTF-8 in a skipped string
    (b'"top":"\xc3\xa9"', True),  # valid UTF-8, not ASCII
    (b'"top":"\\ud800"', False),  # a lone surrogate escape
    (b'"top":"a\\"b"', True),
    (b'"top":' + b"[" * 1100 + b"]" * 1100, False),  # past orjson's depth limit
]


def _line(rng: random.Random, i: int, top: bytes | None = None) -> bytes:
    record = detection(rng, i=i)
    record["boxes"]["annotations"] = [{"class_id": 1, "top": 1.5, "left": 2, "height": 3, "width": 4}]
    record["boxes-metadata"]["class-map"] = {"1": "car"}
    line = orjson.dumps(record)
    return line if top is None else line.replace(b'"top":1.5', top, 1)


def _clean_lines(n: int) -> list[bytes]:
    rng = random.Random(11)
    return [_line(rng, i) + b"\n" for i in range(n)]


def test_bench_shaped_blocks_are_decoded_with_skips():
    lines = _clean_lines(200)
    fast, tally = FastPath(None), Tally(None)
    fast.count(lines, tally, b"".join(lines))
    assert fast.skipping_lines == 200 and fast.fast_lines == 200


@pytest.mark.parametrize(("value", "readable"), SKIPPED_VALUES)
def test_the_proof_refuses_what_a_skip_would_let_through(value, readable, monkeypatch):
    """Nesting aside: on Python 3.11 msgspec's own recursion limit refuses it (the next test), so
    the proof looks at line lengths only where that limit is higher (checked here as if so)."""
    monkeypatch.setattr(stats_lean, "_shallow_skips", lambda: False)
    lines = _clean_lines(20)
    lines[7] = _line(random.Random(1), 7, value) + b"\n"
    assert (b'"top":1.5' not in lines[7]) and SkipProof()(b"".join(lines), lines) is False
    try:
        orjson.loads(lines[7])
        assert readable
    except orjson.JSONDecodeError:
        assert not readable


@pytest.mark.parametrize(("value", "readable"), SKIPPED_VALUES)
@pytest.mark.parametrize("where", ["top", "image_size"])
def test_a_file_holding_it_is_counted_as_the_generic_count_does(tmp_path, value, readable, where):
    """Through ``count_range``, the reader ``stats`` runs (blocks read from a file)."""
    lines = _clean_lines(30)
    odd = _line(random.Random(2), 9, value)
    if where == "image_size":
        odd = _line(random.Random(2), 9).replace(b'"depth":3', b'"depth":3,"x":' + value.split(b":", 1)[1], 1)
    lines[9] = odd + b"\n"
    path = tmp_path / "m.manifest"
    path.write_bytes(b"".join(lines))
    got = merge_partials("m", [count_range(str(path), 0, None, None)], None)
    assert_equal(got, _stats([line.rstrip(b"\n") for line in lines], None, fast=False))
    assert got.invalid_lines == (0 if readable else 1)


def test_a_false_alarm_costs_only_the_skip():
    """A digit then ``e`` inside a string (``s3://b/2e.jpg``) is no exponent, but the proof cannot
    tell: the block is decoded typed, and counted the same."""
    lines = _clean_lines(20)
    lines[3] = lines[3].replace(b"s3://bucket/images/", b"s3://bucket/2e/", 1)
    fast, tally = FastPath(None), Tally(None)
    fast.count(lines, tally, b"".join(lines))
    assert fast.skipping_lines == 0 and fast.fast_lines == 20


def test_without_a_recursion_limit_below_orjson_s_long_lines_are_decoded_typed(monkeypatch):
    """From Python 3.12 msgspec may nest deeper than orjson: a line of 2048 bytes or more could
    hold a skip 1024 levels deep, so its block is not skipped."""
    monkeypatch.setattr(stats_lean, "_shallow_skips", lambda: False)
    lines = _clean_lines(10)
    assert SkipProof()(b"".join(lines), lines)
    lines[4] = lines[4].replace(b'"top":1.5', b'"top":"' + b"x" * 2048 + b'"', 1)
    assert not SkipProof()(b"".join(lines), lines)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.11's recursion limit counts C and Python frames")
def test_a_skip_nested_past_the_recursion_limit_is_a_refusal_not_an_error():
    """Nested 1000 deep (orjson reads it: its limit is 1024), in a line the proof passes on 3.11:
    msgspec raises ``RecursionError``, which must send the line to the generic count."""
    lines = _clean_lines(10)
    lines[5] = _line(random.Random(5), 5, b'"top":' + b"[" * 1000 + b"]" * 1000) + b"\n"
    assert SkipProof()(b"".join(lines), lines)
    orjson.loads(lines[5])
    fast, tally = FastPath(None), Tally(None)
    fast.count(lines, tally, b"".join(lines))
    assert fast.generic_lines == 1
    tally.part.lines = len(lines)
    tally.flush()
    assert_equal(merge_partials("m", [tally.part], None), _stats([x.rstrip() for x in lines], None, fast=False))


@pytest.mark.parametrize("block", [b"", b"{", b"1e", b"{}\n"])
def test_blocks_of_a_few_bytes_are_proven_too(block):
    """A file holding only a BOM reaches the proof as an empty block."""
    assert SkipProof()(block, [block]) is (b"e" not in block)
