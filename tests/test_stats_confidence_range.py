"""A confidence outside [0, 1] (``validate``: schema-maximum, schema-minimum) falls in no bin of
``stats``' histogram: 1.5 was counted with 0.9 to 1.0 and -0.2 with 0.0 to 0.1, both in the mean.
They are now counted apart, out of the histogram and the mean, by the fast path and the generic
count alike, and said in the text."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import orjson
import pytest

from totask_manifest._analytics.stats import _count_lines, format_text, manifest_stats
from totask_manifest._analytics.stats_tables import merge_partials


def line(confidence: float) -> bytes:
    return orjson.dumps({
        "source-ref": "s3://b/a.jpg",
        "boxes": {"image_size": [{"width": 100, "height": 80, "depth": 3}],
                  "annotations": [{"class_id": 0, "top": 1, "left": 1, "height": 5, "width": 5}]},
        "boxes-metadata": {"objects": [{"confidence": confidence}], "class-map": {"0": "cat"},
                           "type": "groundtruth/object-detection", "human-annotated": "no",
                           "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/x"}}) + b"\n"


CONFIDENCES = [1.5, -0.2, 0.55, 1.0, 0.0, 1.0000001]


@pytest.mark.parametrize("fast", [True, False])
def test_confidences_outside_0_1_are_counted_apart(fast: bool) -> None:
    block = b"".join(map(line, CONFIDENCES))
    part = _count_lines([(BytesIO(block).readlines(), block)], None, fast=fast)
    a = merge_partials("m", [part], None).attributes["boxes"]
    assert a.confidence_out_of_range == 3
    assert a.confidence_count == 3 and a.confidence_histogram[0] == 1 and a.confidence_histogram[5] == 1
    assert a.confidence_histogram[9] == 1 and a.confidence_mean == pytest.approx(1.55 / 3)


def test_the_text_and_json_say_them(tmp_path: Path) -> None:
    path = tmp_path / "m.manifest"
    path.write_bytes(b"".join(map(line, CONFIDENCES)))
    stats = manifest_stats(str(path), workers=1)
    assert stats.to_dict()["attributes"]["boxes"]["confidence_out_of_range"] == 3
    assert ("confidences outside [0, 1] (not in the histogram nor the mean; validate names their lines): 3"
            in format_text(stats))
