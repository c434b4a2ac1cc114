"""A job's selection (16 bytes a selected line: ``selection.bin``) is written and read back without
copies of its arrays: at 2,000,000 lines the copies made ``annotate`` and ``chain`` peak at 201 MB
RSS where the arrays are 32 MB. Measured with tracemalloc in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO

_PEAKS = """
import sys, tracemalloc, orjson
from array import array
from totask_manifest._jobs import selection as selection_module
from totask_manifest._jobs.selection import LineSelection
n, url = int(sys.argv[1]), sys.argv[2]
sel = LineSelection(n, array("q", range(n)), array("q", range(0, 500 * n, 500)), "ab" * 32, {"size": 500 * n})
sel.save(url + ".warm")  # imports what the measured calls would count
tracemalloc.start()
sel.save(url)
_, save_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
del sel
selection_module._last.clear()
tracemalloc.start()
back = LineSelection.load(url)
_, load_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
ok = list(back.indices[:3]) == [0, 1, 2] and back.offsets[-1] == 500 * (n - 1) and back.lines == n
print(orjson.dumps([save_peak, load_peak, ok]).decode())
"""


def test_a_selection_is_saved_and_loaded_without_copies_of_its_arrays(tmp_path: Path) -> None:
    n = 400_000  # arrays of 6.4 MB together
    done = subprocess.run([sys.executable, "-c", _PEAKS, str(n), str(tmp_path / "selection.bin")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    save_peak, load_peak, ok = orjson.loads(done.stdout)
    assert ok
    arrays = 16 * n
    # saving held two copies of the arrays more (the bytes of each, then one string of all);
    # what stays is the writer's buffer
    assert save_peak < arrays // 3, (save_peak, arrays)
    # loading: the file's bytes and the arrays read from them, no copy of the body between
    assert load_peak < 2.2 * arrays, (load_peak, arrays)


_SCAN_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._jobs.scan_ranges import InputScan, add_range, scan_input, scan_range
from totask_manifest._manifest.ranges import plan_ranges
url, size = sys.argv[1], int(sys.argv[2])
scan_input(url, "boxes", workers=1, checksum=False)  # imports what the measured calls would count
tracemalloc.start()
whole = scan_input(url, "boxes", workers=1, checksum=False)
_, whole_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
tracemalloc.start()
parts = [scan_range(url, start, end, "boxes") for start, end in plan_ranges(size, 4, min_bytes=size // 8)]
held, _ = tracemalloc.get_traced_memory()
tracemalloc.reset_peak()
added = InputScan()
for part in parts:
    add_range(added, part)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
add_peak = peak - held
same = (added.selection.indices, added.selection.offsets) == (whole.selection.indices, whole.selection.offsets)
print(orjson.dumps([whole.selected, len(parts), whole_peak, add_peak, same]).decode())
"""


@pytest.mark.slow
def test_the_input_scan_holds_its_selection_once(tmp_path: Path) -> None:
    """The scan's selection is its ranges' arrays, taken over or copied and freed: each range kept
    its own until the scan ended, so a scan peaked at twice the selection (34 bytes a selected
    line here, 18 now; adding the ranges took 3.4 MB over theirs, 0.57 MB now)."""
    n = 200_000
    url = tmp_path / "in.manifest"
    url.write_bytes(b"".join(b'{"source-ref":"s3://b/%08d.jpg"}\n' % i for i in range(n)))
    done = subprocess.run([sys.executable, "-c", _SCAN_PEAKS, str(url), str(url.stat().st_size)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    selected, ranges, whole_peak, add_peak, same = orjson.loads(done.stdout)
    assert (selected, same) == (n, True) and ranges > 4, ranges
    arrays = 16 * n
    assert whole_peak < 1.15 * arrays, (whole_peak, arrays)  # the arrays and their last growth
    # the ranges' arrays are the selection's, or copied into it and freed: no second copy at once
    # (each range's were copied, and all freed at the end: the peak held both)
    assert add_peak < 0.25 * arrays, (add_peak, arrays)
