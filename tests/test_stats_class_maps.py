"""``stats``' fast path reads a class map as its text, once per distinct text
(``stats_structs.ClassMaps``), counts the labeled lines' types, ``human-annotated`` values and job
names a column at a time (``stats_fast._tally``), reads a local file with fewer copies
(``blocks.iter_line_lists``), and learns a file's line shapes once a process, not once a byte
range (``stats._learned``). Each is held to the generic count, the specification, here."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.test_stats_fast import _stats, assert_equal, detection, failed
from totask_manifest._analytics import stats, stats_fast, stats_structs
from totask_manifest._analytics.stats import Tally, count_manifest, count_range
from totask_manifest._analytics.stats_fast import FastPath
from totask_manifest._analytics.stats_tables import ManifestStats, merge_partials


def _fast(lines: list[bytes], batch: int = 100) -> tuple[FastPath, Tally]:
    tally, fast = Tally(None), FastPath(None)
    for i in range(0, len(lines), batch):
        fast.count(lines[i: i + batch], tally)
    tally.part.lines = len(lines)
    tally.flush()
    return fast, tally


def _two_attributes(rng: random.Random, i: int) -> dict:
    return {**detection(rng, i=i), **{k: v for k, v in detection(rng, "more", i=i).items() if k != "source-ref"}}


@pytest.mark.parametrize("odd", [{"0": 5}, {"1": ["a"]}, {"2": None}, [], None, "person"])
def test_a_line_whose_class_map_the_fast_path_does_not_count_goes_generic_whole(odd):
    """A map with a name that is not a string, or one that is not an object, in the second of two
    attributes: the generic count names such a box by the name's JSON text. The line is counted
    generically for both attributes (the first not counted twice), the others stay fast."""
    rng = random.Random(8)
    lines = []
    for i in range(300):
        record = _two_attributes(rng, i)
        if i % 29 == 3:
            record["more-metadata"]["class-map"] = odd
        lines.append(orjson.dumps(record))
    fast, tally = _fast(lines)
    assert fast.generic_lines == len(range(3, 300, 29)) and fast.fast_lines == 300 - fast.generic_lines
    assert_equal(merge_partials("m", [tally.part], None), _stats(lines, None, fast=False, batch=100))


def test_a_class_map_orjson_refuses_makes_its_line_unreadable_in_both():
    """A lone surrogate escape in a name: orjson refuses it (and the whole line). The block holds
    a backslash, so it is decoded typed, and a typed block's class map is decoded as a dict, whose
    strings msgspec checks as orjson does."""
    rng = random.Random(9)
    lines = [orjson.dumps(detection(rng, i=i)) for i in range(50)]
    record = detection(rng, i=50)
    record["boxes-metadata"]["class-map"] = {"0": "SURROGATE"}
    lines.insert(20, orjson.dumps(record).replace(b"SURROGATE", b"\\ud800"))
    fast, tally = _fast(lines, batch=60)
    got = merge_partials("m", [tally.part], None)
    assert got.invalid_lines == 1 and fast.generic_lines == 1
    assert_equal(got, _stats(lines, None, fast=False, batch=60))


def test_the_class_maps_remembered_are_bounded_in_bytes(monkeypatch):
    """Maps of many classes, each line's its own: past ``CLASS_MAP_BYTES`` of texts none is kept
    (memory stays flat), and each is read where its line is counted."""
    monkeypatch.setattr(stats_structs, "CLASS_MAP_BYTES", 2000)
    rng = random.Random(12)
    lines = []
    for i in range(200):
        record = detection(rng, i=i)
        record["boxes-metadata"]["class-map"] |= {str(k): f"class {k} of line {i}" for k in range(10, 30)}
        lines.append(orjson.dumps(record))
    fast, tally = _fast(lines)
    assert 0 < fast.class_maps._held <= 2000 and fast.fast_lines >= 199
    assert_equal(merge_partials("m", [tally.part], None), _stats(lines, None, fast=False, batch=100))


def _stats_both(lines: list[bytes], named: list[str] | None) -> ManifestStats:
    want = _stats(lines, named, fast=False, batch=10)
    assert_equal(_stats(lines, named, fast=True, batch=10), want)
    return want


_A = b'"a":{"annotations":[{"class_id":1}]},"a-metadata":{"class-map":%s,"type":"object-detection"}'
_B = b'"b":{"annotations":[]},"b-metadata":{"class-map":%s,"type":"object-detection"}'


def test_two_attributes_whose_maps_are_refused_on_different_lines():
    """Each attribute's refused lines are gathered before any count (a review found the second
    attribute's refusal raised out of ``stats``)."""
    lines = [b"{" + _A % a + b"," + _B % b + b"}" for a, b in
             ((b'{"1":"x"}', b'{"0":"y"}'), (b'{"1":5}', b'{"0":"y"}'), (b'{"1":"x"}', b'{"0":6}'))]
    assert _stats_both(lines, None).attributes["a"].lines == 3


@pytest.mark.parametrize("bad", [b'"\xff"', b"1e999", b"9" * 400], ids=["invalid UTF-8", "1e999", "400 digits"])
@pytest.mark.parametrize("where", ["another attribute's map", "the first of two class-map keys"])
def test_a_class_map_orjson_refuses_anywhere_in_a_typed_block_makes_its_line_unreadable(bad, where):
    """A class map is kept as its text only in a block ``SkipProof`` holds (ASCII, no exponent, no
    long digit run); in a typed block msgspec decodes it, as strictly as orjson. Found by a review:
    the text of a map no count read (another attribute's, with ``--label-attribute``), or the
    first of two ``class-map`` keys, was never checked."""
    if where == "another attribute's map":
        odd = b"{" + _A % b'{"1":"x"}' + b"," + _B % (b'{"1":' + bad + b"}") + b"}"
    else:
        odd = b"{" + _A % (b'{"1":' + bad + b'},"class-map":{"1":"x"}') + b"}"
    good = b"{" + _A % b'{"1":"x"}' + b"," + _B % b'{"1":"y"}' + b"}"  # teaches both attributes' keys
    lines = [good, odd, good]
    for named in (None, ["a"]):
        assert _stats_both(lines, named).invalid_lines == 1


def test_boxes_are_checked_against_their_own_line_s_map_in_one_lookup_as_maps_grow():
    """Hundreds of distinct maps (the table of named ids grows past its first 64 rows), some boxes
    their own map does not name, ids past a byte (that slice named box by box): the counts are the
    generic count's. (Whether a box its map does not name is told apart is
    ``test_stats_fast.test_boxes_are_named_by_their_own_line_s_class_map``'s.)"""
    rng = random.Random(14)
    lines = []
    for i in range(900):
        record = detection(rng, i=i)
        meta, anns = record["boxes-metadata"], record["boxes"]["annotations"]
        meta["class-map"][str(1000 + i % 300)] = f"extra {i % 300}"  # a map of its own, each key one name
        if i % 97 == 5 and meta["class-map"]:
            meta["class-map"].pop(next(iter(meta["class-map"])))  # a box its own map does not name
        if i % 211 == 7 and anns:
            anns[0]["class_id"] = 300  # past a byte: that slice is named box by box
        lines.append(orjson.dumps(record))
    fast, tally = _fast(lines, batch=300)
    assert len(fast.class_maps.maps) >= 250 and len(fast.class_maps.named) >= 256 and fast.generic_lines <= 1
    assert_equal(merge_partials("m", [tally.part], None), _stats(lines, None, fast=False, batch=300))


@pytest.mark.parametrize("extra", [0, 1, 300])
def test_boxes_without_a_confidence_are_counted_as_the_generic_count_counts(extra):
    """Lines with fewer objects than boxes (unscored boxes), and some with ``extra`` objects more
    than boxes (their confidences count, no box goes negative; 300: counts past a byte)."""
    rng = random.Random(15 + extra)
    lines = []
    for i in range(400):
        record = detection(rng, i=i)
        if extra and i % 13 == 4:
            record["boxes-metadata"]["objects"] += [{"confidence": 0.5}] * extra
        lines.append(orjson.dumps(record))
    fast, tally = _fast(lines)
    got = merge_partials("m", [tally.part], None)
    assert got.attributes["boxes"].unscored > 0 and fast.generic_lines <= 1
    assert_equal(got, _stats(lines, None, fast=False, batch=100))


@pytest.mark.parametrize("distinct", [1, 3, stats_fast.FEW_VALUES, stats_fast.FEW_VALUES + 1, 40])
def test_a_column_is_tallied_as_a_counter_counts_it(distinct):
    rng = random.Random(distinct)
    values = [None, *(f"job-{k}" for k in range(distinct - 1))]
    column = tuple(rng.choice(values) for _ in range(500))
    got, want = Counter({"job-0": 2}), Counter({"job-0": 2})
    stats_fast._tally(got, column)
    want.update(column)
    assert got == want


@pytest.mark.parametrize("read_bytes", [64, 700, 4096])
def test_a_local_file_read_with_seeks_back_counts_every_line(tmp_path: Path, monkeypatch, read_bytes):
    """Chunks smaller than a line, a few lines, many: each line counted once, in each byte range
    (a range's boundary inside a line), a BOM and a last line without its ``\\n`` too."""
    monkeypatch.setattr(stats, "READ_BYTES", read_bytes)
    rng = random.Random(read_bytes)
    lines = [orjson.dumps(failed(rng) if i % 11 == 5 else detection(rng, i=i)) for i in range(300)]
    path = tmp_path / "m.manifest"
    data = b"\xef\xbb\xbf" + b"\n".join(lines)
    path.write_bytes(data)
    want = _stats(lines, None, fast=False, batch=100)
    cuts = [0, len(data) // 3, len(data) // 3 + 1, 2 * len(data) // 3, None]
    parts = [count_range(str(path), start, end, None) for start, end in itertools.pairwise(cuts)]
    assert sum(part.lines for part in parts) == 300
    assert_equal(merge_partials("m", parts, None), want)


def test_a_process_learns_a_file_s_shapes_once_for_all_its_ranges(tmp_path: Path):
    rng = random.Random(13)
    lines = [orjson.dumps(detection(rng, i=i)) for i in range(600)]
    path = tmp_path / "m.manifest"
    path.write_bytes(b"\n".join(lines) + b"\n")
    size = path.stat().st_size
    first = count_range(str(path), 0, size // 2, None)
    quick = stats._learned[1]
    built = quick.shapes
    assert built >= 1 and quick.fast_lines > 250  # the structs built from the keys and job names learned
    second = count_range(str(path), size // 2, None, None)
    assert stats._learned[1] is quick and quick.shapes == built  # nothing learned or built twice
    assert quick.fast_lines + quick.generic_lines == 600
    assert_equal(merge_partials("m", [first, second], None), _stats(lines, None, fast=False, batch=100))
    count_range(str(path), 0, None, ["boxes"])  # other attributes: learned anew
    assert stats._learned[1] is not quick
    quick = stats._learned[1]
    count_manifest(str(path), label_attributes=["boxes"])  # a new call learns anew (the file may have changed)
    assert stats._learned[1] is not quick
