"""``manifest.ranges``: the one line splitter, range planner and ``map_ranges`` over real worker
processes (a worker that dies, this process working too, URLs that cannot be split)."""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from totask_manifest._manifest import blocks, ranges
from totask_manifest._storage import write_bytes_atomic

SAMPLE = b'\xef\xbb\xbf{"a":1}\r\n\n{"b": 2}\n   \r\n{"c":3}'


def lines_and_pid(url: str, start: int, end: int | None, die_in_worker_at: int | None) -> tuple[list[bytes], int]:
    """A ``map_ranges`` function: the range's lines, and which process read them. A worker (never
    the calling process) given ``die_in_worker_at`` inside its range dies without a word, leaving
    ``RANGES_TEST_DIED`` behind; the calling process, where that variable is set, reads nothing
    before that file exists (else it could read every range, the first included, before a worker
    started: the test that a dead worker's range is read here then saw no worker die)."""
    parent = os.getpid() == int(os.environ["RANGES_TEST_PARENT"])
    died = os.environ.get("RANGES_TEST_DIED")
    if die_in_worker_at is not None and not parent and start <= die_in_worker_at < (end if end is not None else 1 << 62):
        if died:
            Path(died).touch()
        os._exit(9)
    if parent and died:
        for _ in range(6000):  # 60 s at most: a pool that never starts fails the test, it does not hang
            if os.path.exists(died):
                break
            time.sleep(0.01)
    with open(url, "rb") as f:
        return list(itertools.chain.from_iterable(ranges.iter_bodies(f, start=start, end=end))), os.getpid()


def numbered_file(tmp_path: Path, count: int) -> tuple[Path, list[bytes]]:
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 50)) for i in range(count)]
    path = tmp_path / "n.manifest"
    path.write_bytes(ranges.BOM + b"\n".join(lines) + b"\n")
    return path, lines


@pytest.mark.parametrize("size,workers", [(0, 4), (100, 1), (100, 4), (10_000, 3), (1 << 30, 2), (12_345, 7)])
def test_plans_tile_the_file(size: int, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 1000)
    plan = ranges.plan_ranges(size, workers)
    assert plan[0][0] == 0 and plan[-1][1] == size
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(plan))
    if workers == 1 or size < 2000:
        assert plan == [(0, size)]
    else:
        assert workers <= len(plan) <= workers * ranges.RANGES_PER_WORKER


def test_more_ranges_a_worker_are_smaller_down_to_the_minimum() -> None:
    """``validate`` asks for 32 ranges a worker: 8 MB ones for a 430 MB file, where the default
    8 a worker gives 27 MB ones; a 100 MB file gets 11 either way, none under the minimum."""
    size = 430_000_000
    assert len(ranges.plan_ranges(size, 2)) == 2 * ranges.RANGES_PER_WORKER
    fine = ranges.plan_ranges(size, 2, per_worker=32)
    assert len(fine) == size // ranges.MIN_RANGE_BYTES == 51
    assert min(b - a for a, b in fine) >= ranges.MIN_RANGE_BYTES
    assert fine[0][0] == 0 and fine[-1][1] == size
    assert len(ranges.plan_ranges(100_000_000, 2, per_worker=32)) == len(ranges.plan_ranges(100_000_000, 2)) == 11


def test_a_tapered_plan_is_smallest_where_the_processes_meet() -> None:
    """``stats`` tapers its ranges: the pool's workers take them from the front and the calling
    process from the back, so they meet at ``(workers - 1) / workers`` of the file; whoever
    finishes first waited for the other's last range, some 30 MB with 16 even ones. There the
    ranges are an eighth of the minimum, growing by half their distance up to the plan's own."""
    size = 485_000_000
    for workers in (2, 3):
        even, plan = ranges.plan_ranges(size, workers), ranges.plan_ranges(size, workers, taper=True)
        assert plan[0][0] == 0 and plan[-1][1] == size
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(plan))
        step, meet, smallest = even[0][1], size * (workers - 1) // workers, ranges.MIN_RANGE_BYTES // 8
        assert plan[0] == even[0] and plan[-1] == even[-1] and max(b - a for a, b in plan) <= step
        at_meet = [b - a for a, b in plan if a <= meet + smallest and b >= meet - smallest]
        assert max(at_meet) == smallest == min(b - a for a, b in plan)
        # each range no more than half its distance from the meeting point (or the smallest)
        assert all(b - a <= max(smallest, min(abs(a - meet), abs(b - meet))) for a, b in plan)
        assert len(even) < len(plan) <= len(even) + 24
    assert ranges.plan_ranges(10_000, 2, taper=True) == [(0, 10_000)]
    assert ranges.plan_ranges(size, 1, taper=True) == [(0, size)]


def test_tapered_ranges_give_every_line_once_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, lines = numbered_file(tmp_path, 20_000)
    monkeypatch.setenv("RANGES_TEST_PARENT", str(os.getpid()))
    parts = ranges.map_ranges(lines_and_pid, str(path), (None,), workers=2, start_method="fork", min_bytes=4096,
                              taper=True)
    assert len(parts) == len(ranges.plan_ranges(path.stat().st_size, 2, min_bytes=4096, taper=True)) > 16
    assert [line for got, _ in parts for line in got] == lines


def test_forked_workers_start_no_resource_tracker(tmp_path: Path) -> None:
    """A forked pool's locks are unlinked at once and register with no resource tracker, whose
    start (a fresh interpreter, some 20 ms of a CPU) held back the workers' start: it is started
    for spawned workers only."""
    path, lines = numbered_file(tmp_path, 3000)
    out = mapped_in_a_fresh_process(path, "from multiprocessing import resource_tracker\n", ("fork", "spawn"),
                                    "resource_tracker._resource_tracker._fd is not None")
    assert out == [str(len(lines)), "False", str(len(lines)), "True"]


def mapped_in_a_fresh_process(path: Path, imports: str, methods: tuple[str, ...], shown: str) -> list[str]:
    """``map_ranges`` over ``path`` (``lines_and_pid``, 2 workers) in a fresh interpreter, once per
    start method of ``methods``: the lines read and ``shown`` (a Python expression) after each."""
    code = (
        f"import os, sys\n{imports}"
        "from totask_manifest._manifest import ranges\n"
        "from tests.test_ranges import lines_and_pid\n"
        "os.environ['RANGES_TEST_PARENT'] = str(os.getpid())\n"
        f"for method in {methods!r}:\n"
        f"    parts = ranges.map_ranges(lines_and_pid, {str(path)!r}, (None,), workers=2, min_bytes=4096,"
        " start_method=method)\n"
        f"    print(sum(len(p[0]) for p in parts), {shown})\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    return out.stdout.split()


def test_bom_is_taken_off_the_files_first_line_only() -> None:
    assert ranges.split_bom(SAMPLE) == (ranges.BOM, SAMPLE[3:])
    assert ranges.split_bom(b"{}") == (b"", b"{}")
    assert next(ranges.iter_bodies(io.BytesIO(SAMPLE)))[0] == b'{"a":1}\r'
    mid = b"{}\n" + ranges.BOM + b"{}\n"
    assert list(ranges.iter_bodies(io.BytesIO(mid))) == [[b"{}", ranges.BOM + b"{}"]]
    assert list(ranges.iter_bodies(io.BytesIO(mid), start=3)) == [[ranges.BOM + b"{}"]]


def test_raw_lines_keep_terminators_and_a_last_line_without_one() -> None:
    assert list(ranges.iter_raw_lines(io.BytesIO(SAMPLE))) == [
        ranges.BOM + b'{"a":1}\r\n', b"\n", b'{"b": 2}\n', b"   \r\n", b'{"c":3}']


def test_every_line_once_in_order_this_process_working_too(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path, lines = numbered_file(tmp_path, 20_000)
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 4096)
    monkeypatch.setenv("RANGES_TEST_PARENT", str(os.getpid()))
    parts = ranges.map_ranges(lines_and_pid, str(path), (None,), workers=3, start_method="fork")
    assert len(parts) == 3 * ranges.RANGES_PER_WORKER
    assert [line for got, _ in parts for line in got] == lines
    pids = {pid for _, pid in parts}
    assert os.getpid() in pids and len(pids) > 1  # the pool's workers and this process


def test_a_worker_that_dies_leaves_its_ranges_to_this_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    path, lines = numbered_file(tmp_path, 20_000)
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 4096)
    monkeypatch.setenv("RANGES_TEST_PARENT", str(os.getpid()))
    monkeypatch.setenv("RANGES_TEST_DIED", str(tmp_path / "died"))
    parts = ranges.map_ranges(lines_and_pid, str(path), (10,), workers=3, start_method="fork")
    assert [line for got, _ in parts for line in got] == lines  # nothing lost, nothing twice, no hang
    assert parts[0][1] == os.getpid()  # the first range, where a worker died, was read here
    assert "a worker process died" in caplog.text


class _SubmitAfterBreak(ProcessPoolExecutor):
    """A pool whose second ``submit`` comes once its first worker has died: as when a worker is
    killed (the kernel's OOM killer) while ranges are still being handed out."""

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if getattr(self, "_handed", False):
            for _ in range(6000):  # 60 s at most: on a loaded machine the manager thread may see it late
                if self._broken:  # set by the pool's manager thread once it sees the death
                    break
                time.sleep(0.01)
        self._handed = True
        return super().submit(*args, **kwargs)


def test_a_worker_that_dies_while_ranges_are_handed_out_leaves_the_rest_to_this_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``submit`` on a pool already broken raises ``BrokenProcessPool``: it escaped, and the
    command failed with the pool's words (seen once in six runs of the test above)."""
    path, lines = numbered_file(tmp_path, 20_000)
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 4096)
    monkeypatch.setattr(ranges, "ProcessPoolExecutor", _SubmitAfterBreak)
    monkeypatch.setenv("RANGES_TEST_PARENT", str(os.getpid()))
    monkeypatch.setenv("RANGES_TEST_DIED", str(tmp_path / "died"))
    parts = ranges.map_ranges(lines_and_pid, str(path), (10,), workers=3, start_method="fork")
    assert [line for got, _ in parts for line in got] == lines
    assert all(pid == os.getpid() for _, pid in parts)  # the pool broke at once: every range read here


def test_small_files_and_memory_urls_are_one_call_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANGES_TEST_PARENT", str(os.getpid()))
    path, lines = numbered_file(tmp_path, 100)
    assert ranges.map_ranges(lines_and_pid, str(path), (None,), workers=4) == [(lines, os.getpid())]
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 64)
    url = "memory://ranges-test/n.manifest"
    write_bytes_atomic(url, path.read_bytes())
    got = ranges.map_ranges(_memory_lines, url, workers=4)  # a worker process could not see it
    assert got == [lines]


def _memory_lines(url: str, start: int, end: int | None) -> list[bytes]:
    from totask_manifest._storage import open_read

    with open_read(url) as f:
        return list(itertools.chain.from_iterable(ranges.iter_bodies(f, start=start, end=end)))


def test_blocks_hold_the_same_lines_as_bodies() -> None:
    """``iter_blocks`` (validate's reader) gives each range the lines ``iter_bodies`` gives it,
    whatever the chunk size, the range bounds, a BOM, blank lines, ``\\r`` or a last line
    without its ``\\n``."""
    import random

    rng = random.Random(5)
    for _ in range(3000):
        lines = [bytes(rng.choice(b"ab\r ") for _ in range(rng.randint(0, 7))) for _ in range(rng.randint(0, 12))]
        data = (ranges.BOM if rng.random() < 0.2 else b"") + b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        bounds = [0, *sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 3))), len(data)]
        chunk = rng.randint(1, 9)
        for start, end in itertools.pairwise(bounds):
            end_or_none = None if end == len(data) and rng.random() < 0.5 else end
            expected = list(itertools.chain.from_iterable(
                ranges.iter_bodies(io.BytesIO(data), start=start, end=end_or_none, chunk=chunk)))
            got = list(itertools.chain.from_iterable(map(blocks.split_block, blocks.iter_blocks(
                io.BytesIO(data), start=start, end=end_or_none, chunk=chunk))))
            assert got == expected, (data, start, end_or_none, chunk)


def test_bodies_with_their_newlines_tile_the_file() -> None:
    """``newlines=True`` (stats' reader, split by ``BytesIO.readlines``) gives each range the lines
    the plain split gives it, each with its ``\n`` (a last line without one stays so), and the
    ranges of a file joined back are the file without its BOM: no byte lost, none twice, whatever
    the chunk size, the range bounds, blank lines or ``\r``."""
    import random

    rng = random.Random(7)
    for _ in range(3000):
        lines = [bytes(rng.choice(b"ab\r ") for _ in range(rng.randint(0, 7))) for _ in range(rng.randint(0, 12))]
        bom = ranges.BOM if rng.random() < 0.2 else b""
        data = bom + b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")
        bounds = [0, *sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 3))), len(data)]
        chunk = rng.randint(1, 9)
        joined = []
        for start, end in itertools.pairwise(bounds):
            end_or_none = None if end == len(data) and rng.random() < 0.5 else end
            got = list(itertools.chain.from_iterable(ranges.iter_bodies(
                io.BytesIO(data), start=start, end=end_or_none, chunk=chunk, newlines=True)))
            plain = list(itertools.chain.from_iterable(
                ranges.iter_bodies(io.BytesIO(data), start=start, end=end_or_none, chunk=chunk)))
            assert [g.removesuffix(b"\n") for g in got] == plain, (data, start, end_or_none, chunk)
            assert all(g.endswith(b"\n") for g in got[:-1]), (data, start, end_or_none, chunk)
            joined += got
        assert b"".join(joined) == data[len(bom):], (data, bounds, chunk)


def test_started_runs_once_after_the_pool_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job starts its checksum thread through ``started``: after the start method was chosen
    (a thread running then would make it spawn the workers, not fork them) and the workers were
    started, once; and once in the one-call case too."""
    path, lines = numbered_file(tmp_path, 20_000)
    monkeypatch.setattr(ranges, "MIN_RANGE_BYTES", 4096)
    monkeypatch.setenv("RANGES_TEST_PARENT", str(os.getpid()))
    events: list[str] = []
    real = ranges._context
    monkeypatch.setattr(ranges, "_context", lambda method: events.append("context") or real(method))
    parts = ranges.map_ranges(lines_and_pid, str(path), (None,), workers=2, start_method="fork",
                              started=lambda: events.append("started"))
    assert [line for got, _ in parts for line in got] == lines
    assert events == ["context", "started"]
    (tmp_path / "small").mkdir()
    small, _ = numbered_file(tmp_path / "small", 10)
    events.clear()
    ranges.map_ranges(lines_and_pid, str(small), (None,), workers=2, started=lambda: events.append("started"))
    assert events == ["started"]


def test_a_local_file_is_split_without_loading_fsspec(tmp_path: Path) -> None:
    """Importing fsspec (some 80 ms) held back the first range and the workers' start: a plain
    local path is split and read by the pool and this process without it."""
    path, lines = numbered_file(tmp_path, 3000)
    out = mapped_in_a_fresh_process(path, "", ("fork",), "len(parts), 'fsspec' in sys.modules")
    assert out == [str(len(lines)), str(2 * ranges.RANGES_PER_WORKER), "False"]


def test_spawned_workers_do_not_run_the_callers_script_again(tmp_path: Path) -> None:
    """A spawned worker ran the parent's ``__main__`` again (multiprocessing's way to find
    functions defined there): a user's script without the ``if __name__ == "__main__":`` guard
    ran whole in every worker. A job always spawns (its lease's heartbeat is a thread), so a
    plain script calling ``annotate`` on a file over 32 MB started the job again in each worker
    and redid whatever came before the call."""
    path, lines = numbered_file(tmp_path, 20_000)
    ran = tmp_path / "ran.log"
    script = tmp_path / "user_script.py"  # no guard, as the README's examples are written
    script.write_text(
        "import os\n"
        f"with open({str(ran)!r}, 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "from totask_manifest._manifest import ranges\n"
        "from tests.test_ranges import lines_and_pid\n"
        "os.environ['RANGES_TEST_PARENT'] = str(os.getpid())\n"
        f"parts = ranges.map_ranges(lines_and_pid, {str(path)!r}, (None,), workers=2, min_bytes=4096,"
        " start_method='spawn')\n"
        "print(sum(len(p[0]) for p in parts), len({p[1] for p in parts}))\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stdout.split()[0] == str(len(lines))
    assert len(ran.read_text().split()) == 1  # the script ran once: here, not again in the worker


def test_a_ctrl_c_another_thread_takes_while_workers_start_is_raised_after(tmp_path: Path) -> None:
    """While the pool's workers start, this thread blocks SIGINT; a Ctrl-C then lands in another
    thread of the process (a user's, a library's). The window ignored SIGINT process-wide, so it
    was lost there and the call ran to its end; now it is raised once the workers exist."""
    path, _lines = numbered_file(tmp_path, 20_000)
    code = (
        "import contextlib, os, signal, threading\n"
        "from totask_manifest._manifest import pool, ranges\n"
        "from tests.test_ranges import lines_and_pid\n"
        "os.environ['RANGES_TEST_PARENT'] = str(os.getpid())\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()  # takes what this thread blocks\n"
        "kept_out = pool.main_script_kept_out\n"
        "@contextlib.contextmanager\n"
        "def ctrl_c_in_the_window():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    with kept_out():\n"
        "        yield\n"
        "pool.main_script_kept_out = ctrl_c_in_the_window\n"
        "try:\n"
        f"    ranges.map_ranges(lines_and_pid, {str(path)!r}, (None,), workers=2, min_bytes=4096,"
        " start_method='spawn')\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(root)}, preexec_fn=_sigint_at_its_default)
    assert (out.returncode, out.stdout) == (0, "interrupted\n"), out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr


def _sigint_at_its_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a runner in the background hands it down ignored
