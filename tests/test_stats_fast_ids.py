"""``stats``' fast path against its generic count where class ids meet text: class-map keys that
look like ids and are not their text (``"01"``, ``" 1"``, ``"-0"``): a box is named by its id's
text (``stats_structs._ID_TEXT``) looked up in its own line's map, which holds no such key."""

from __future__ import annotations

import random

import orjson

from tests.test_stats_fast import _stats, assert_equal, detection
from totask_manifest._analytics.stats import Tally
from totask_manifest._analytics.stats_fast import FastPath
from totask_manifest._analytics.stats_structs import _ID_TEXT
from totask_manifest._analytics.stats_tables import merge_partials

#: keys int() reads but that are no id's text, one that int() refuses, and the texts of ids
KEYS = ["²", "--1", "-0", "01", " 1", "1_0", "١", "+7", "-3", "12", "x"]


def test_class_map_keys_that_look_like_ids_name_boxes_as_the_generic_count_does():
    rng = random.Random(11)
    lines = []
    for i in range(200):
        record = detection(rng, i=i)
        class_id = [-3, 0, 1, 7, 10, 12][i % 6]
        record["boxes"]["annotations"].append({"class_id": class_id, "top": 1.0, "left": 2.0, "height": 3, "width": 4})
        record["boxes-metadata"]["class-map"].update({key: f"name {key}" for key in rng.sample(KEYS, 4)})
        lines.append(orjson.dumps(record))
    tally, fast = Tally(None), FastPath(None)
    for i in range(0, len(lines), 50):
        fast.count(lines[i: i + 50], tally)
    assert fast.fast_lines > 150
    tally.part.lines = len(lines)
    tally.flush()
    got = merge_partials("m", [tally.part], None)
    assert_equal(got, _stats(lines, None, fast=False, batch=50))
    names = {(tuple(c.class_ids), c.name) for c in got.attributes["boxes"].classes}
    assert ((-3,), "name -3") in names and ((12,), "name 12") in names
    for class_id in (-3, 0, 1, 7, 10, 12):  # each id's text is its own, whatever keys were adopted
        assert _ID_TEXT[class_id] == str(class_id)
