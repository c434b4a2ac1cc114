"""What ``stats`` holds while it counts does not grow with the boxes a line holds nor with the lines.

The confidences of a batch of lines are held as Python floats (about 32 bytes each) until they
are binned; batches were counted in lines alone (50,000), so 50-box lines held 2.5 million of
them (80 MB) before the first flush: ``stats`` of a 25,000-line file peaked at 117 MB RSS, of a
200,000-line one at 205 MB. A batch now ends at ``CONF_HELD`` confidences too.

Measured with tracemalloc in a process of its own (a thread another test left running would count
in this one's window), one worker, on two files alike but for their length.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest._analytics.stats import CONF_HELD

BOXES = 200


def many_boxes(path: Path, lines: int) -> str:
    """``lines`` detection lines of ``BOXES`` scored boxes each, as a job writes them."""
    value = {"image_size": [{"width": 640, "height": 480, "depth": 3}],
             "annotations": [{"class_id": j % 3, "left": j, "top": 20, "width": 30, "height": 40}
                             for j in range(BOXES)]}
    meta = {"objects": [{"confidence": j / BOXES} for j in range(BOXES)], "class-map": {"0": "a", "1": "b", "2": "c"},
            "type": "groundtruth/object-detection", "human-annotated": "no",
            "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/boxes"}
    tail = orjson.dumps({"boxes": value, "boxes-metadata": meta})[1:]
    path.write_bytes(b"".join(b'{"source-ref":"s3://b/%08d.jpg",' % i + tail + b"\n" for i in range(lines)))
    return str(path)


_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._analytics.stats import manifest_stats
manifest_stats(sys.argv[1], workers=1)  # imports and compiles what the measured calls would count
out = []
for url in sys.argv[2:]:
    tracemalloc.start()
    try:
        stats = manifest_stats(url, workers=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([stats.attributes["boxes"].confidence_count, peak])
print(orjson.dumps(out).decode())
"""


@pytest.mark.slow
def test_stats_memory_does_not_grow_with_the_confidences_held(tmp_path: Path) -> None:
    sizes = (1_000, 3_000)  # 200,000 and 600,000 confidences: both over CONF_HELD, both under 50,000 lines
    assert sizes[0] * BOXES > CONF_HELD
    urls = [many_boxes(tmp_path / f"in-{n}.manifest", n) for n in sizes]
    done = subprocess.run([sys.executable, "-c", _PEAKS, many_boxes(tmp_path / "warm.manifest", 5), *urls],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (small_n, small_peak), (large_n, large_peak) = orjson.loads(done.stdout)
    assert (small_n, large_n) == (sizes[0] * BOXES, sizes[1] * BOXES)
    # holding every confidence of the batch (float objects, list slots, numpy's array of them at the
    # flush) cost about 53 bytes each: 21 MB more for the 400,000 more (13.4 MB, 34.6 MB; now 11.7 both)
    assert large_peak - small_peak < 1 << 20, (small_peak, large_peak)
