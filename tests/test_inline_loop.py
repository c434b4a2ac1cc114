"""``InlineLoop``: the file job's event loop run in the job's own thread. It must keep the
promises ``LoopThread.map_unordered`` keeps (bounded, lossless, lazy, cancel on close, errors
re-raised), keep work in flight while the caller is busy, and never run inside another loop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tests.jobs_helpers import REPO
from tests.support.http_server import slow_labels
from totask_manifest._fetch import FetchPolicy, LoopThread, SyncFetcher
from totask_manifest._fetch.inline import InlineLoop


@pytest.fixture(params=["inline", "thread"])
def loop(request):
    made = InlineLoop() if request.param == "inline" else LoopThread()
    yield made
    made.close()


def test_bounded_and_loses_nothing(loop):
    state = {"running": 0, "peak": 0}

    async def work(i: int) -> int:
        state["running"] += 1
        state["peak"] = max(state["peak"], state["running"])
        await asyncio.sleep(0.001 * (i % 7))
        state["running"] -= 1
        return i * i

    out = list(loop.map_unordered(work, iter(range(500)), limit=16))
    assert sorted(i for i, _ in out) == list(range(500)) and all(r == i * i for i, r in out)
    assert 1 < state["peak"] <= 16


def test_items_are_pulled_lazily(loop):
    pulled: list[int] = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        return i

    gen = loop.map_unordered(work, source(), limit=4)
    next(gen)
    assert len(pulled) <= 5
    gen.close()


def test_an_exception_of_fn_is_raised_to_the_caller(loop):
    async def work(i: int) -> int:
        if i == 3:
            raise ValueError("line 3 broke")
        return i

    with pytest.raises(ValueError, match="line 3 broke"):
        list(loop.map_unordered(work, range(10), limit=2))


@pytest.mark.parametrize("fn", [lambda i: 1 / 0, lambda i: i], ids=["raises-at-once", "no-coroutine"])
def test_fn_failing_before_any_await_is_raised_to_the_caller(loop, fn):
    """``fn`` raising as it is called (or giving no coroutine: a plain function passed by mistake)
    failed inside the loop thread's callback, which only printed it: the caller waited for ever.
    Run in a thread so that a hang fails the test instead of the suite."""
    raised: list[BaseException] = []

    def consume() -> None:
        try:
            list(loop.map_unordered(fn, range(3), limit=2))
        except Exception as exc:  # the test reads what was raised
            raised.append(exc)

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "map_unordered hung on fn failing before any await"
    assert len(raised) == 1 and isinstance(raised[0], (ZeroDivisionError, TypeError)), raised


def _first_at_once_the_rest_until_cancelled(cancelled: list[int]) -> Any:
    """Work whose item 0 ends at once and every other item waits (30 s) until cancelled, noting
    the cancelled items in ``cancelled``."""

    async def work(i: int) -> int:
        try:
            await asyncio.sleep(0 if i == 0 else 30)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    return work


def test_closing_early_cancels_the_rest(loop):
    cancelled: list[int] = []

    work = _first_at_once_the_rest_until_cancelled(cancelled)

    gen = loop.map_unordered(work, range(10), limit=10)
    assert next(gen) == (0, 0)
    gen.close()
    deadline = time.monotonic() + 30  # a safety net: a loaded machine may take seconds to run the cancellations
    while len(cancelled) < 9 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(cancelled) == list(range(1, 10))


def test_work_stays_in_flight_while_the_caller_is_busy():
    """20 waits of 0.2 s overlap with the caller's own 20 x 20 ms: about 0.6 s, not 4.4 s."""
    inline = InlineLoop()

    async def work(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    started = time.monotonic()
    try:
        for _ in inline.map_unordered(work, range(20), limit=20):
            time.sleep(0.02)
    finally:
        inline.close()
    assert time.monotonic() - started < 1.5


def test_run_after_map_unordered_is_not_cut_short():
    """A task finishing while ``run`` drives the loop must not stop that run early."""
    inline = InlineLoop()

    async def work(i: int) -> int:
        await asyncio.sleep(0.01 * i)
        return i

    async def later() -> str:
        await asyncio.sleep(0.2)
        return "done"

    try:
        gen = inline.map_unordered(work, range(5), limit=5)
        assert next(gen)[0] == 0
        assert inline.run(later(), timeout=30) == "done"  # the other four finish meanwhile (30 s: a safety net)
        assert sorted(i for i, _ in gen) == [1, 2, 3, 4]
    finally:
        inline.close()


def test_inside_a_running_loop_a_thread_is_used():
    async def main() -> object:
        return InlineLoop.for_this_thread()

    made = asyncio.run(main())
    try:
        assert isinstance(made, LoopThread)
    finally:
        made.close()
    plain = InlineLoop.for_this_thread()
    assert isinstance(plain, InlineLoop)
    plain.close()


def test_sync_fetcher_inline_fetches_and_closes(tmp_path):
    (tmp_path / "a.json").write_bytes(b"{}")
    with SyncFetcher(FetchPolicy(allow_root=str(tmp_path)), inline=True) as sync:
        assert isinstance(sync.loop_thread, InlineLoop)
        assert sync.fetch(str(tmp_path / "a.json")) == b"{}"
    assert sync.loop_thread.loop.is_closed()


class _Leave(BaseException):
    """Like the job's second Ctrl-C (``_jobs.execute.HardStop``): raised by a signal handler."""


def test_a_base_exception_raised_in_a_loop_callback_reaches_the_caller():
    inline = InlineLoop()

    def handler_fires() -> None:
        raise _Leave

    async def work(i: int) -> int:
        if i == 2:
            asyncio.get_running_loop().call_soon(handler_fires)  # not inside a task: asyncio would log it
        await asyncio.sleep(0.05 if i >= 2 else 0)
        return i

    try:
        with pytest.raises(_Leave):
            list(inline.map_unordered(work, range(6), limit=6))
        inline.loop.call_soon(handler_fires)
        with pytest.raises(_Leave):
            inline.run(asyncio.sleep(1))
    finally:
        inline.close()



def test_no_worker_is_left_behind():
    """Finished, failed or closed early: no worker task stays pending on the loop."""
    inline = InlineLoop()

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        if i == 7:
            raise ValueError("seven")
        return i

    try:
        assert sorted(i for i, _ in inline.map_unordered(work, range(5), limit=4)) == list(range(5))
        assert not asyncio.all_tasks(inline.loop)
        with pytest.raises(ValueError, match="seven"):
            list(inline.map_unordered(work, range(20), limit=4))
        assert not asyncio.all_tasks(inline.loop)
        gen = inline.map_unordered(work, range(20), limit=4)
        next(gen)
        gen.close()
        assert not asyncio.all_tasks(inline.loop)
        assert list(inline.map_unordered(work, [], limit=4)) == []
    finally:
        inline.close()


def test_an_item_whose_work_is_cancelled_raises_cancelled_error(loop):
    """As a task's result would: the caller learns the item did not finish."""

    async def work(i: int) -> int:
        if i == 1:
            raise asyncio.CancelledError
        await asyncio.sleep(0)
        return i

    with pytest.raises(asyncio.CancelledError):
        list(loop.map_unordered(work, range(4), limit=2))


def test_a_line_in_backoff_does_not_hold_a_request_slot():
    """A real server answers one URL 503 with ``Retry-After: 1`` once; while that line waits out
    its backoff, the other lines still fetch two at a time (the policy's concurrency), as
    docs/file-annotator.md promises."""
    lock = threading.Lock()
    state = {"in_flight": 0, "retry_calls": 0, "backoff": False, "peak_in_backoff": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/retry":
                with lock:
                    state["retry_calls"] += 1
                    first = state["retry_calls"] == 1
                    state["backoff"] = first
                self.send_response(503 if first else 200)
                if first:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            with lock:
                state["in_flight"] += 1
                if state["backoff"]:
                    state["peak_in_backoff"] = max(state["peak_in_backoff"], state["in_flight"])
            time.sleep(0.05)
            with lock:
                state["in_flight"] -= 1
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/retry"] + [f"{base}/fast/{i}" for i in range(30)]
    try:
        with SyncFetcher(FetchPolicy(concurrency=2, retries=2), inline=True) as sync:
            out = list(sync.map_unordered(sync.fetcher.fetch, urls, 3))  # 2 + a quarter, as the file annotator
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(u for u, _ in out) == sorted(urls)
    assert state["retry_calls"] == 2
    assert state["peak_in_backoff"] == 2, "a request slot sat idle while a line waited out its backoff"


def test_close_cancels_the_work_of_a_map_left_open():
    """``close`` while a ``map_unordered`` is left suspended (not closed) with work in flight
    cancels that work at once. Its workers took the cancellation for their item's own and
    carried on: close waited out its whole timeout and left their tasks pending."""
    inline = InlineLoop()
    cancelled: list[int] = []

    work = _first_at_once_the_rest_until_cancelled(cancelled)

    gen = inline.map_unordered(work, range(10), limit=3)
    assert next(gen) == (0, 0)
    started = time.monotonic()
    inline.close()
    assert time.monotonic() - started < 2
    assert sorted(cancelled) == [1, 2]
    gen.close()  # its loop is closed: nothing left to cancel


def test_a_base_exception_leaving_run_ends_its_task_first():
    """The job's second Ctrl-C (``HardStop``, raised by a signal handler in a loop callback)
    leaving ``run``: the coroutine was left pending, wait_for's inner task with it, and a loop
    not closed afterwards made Python print "Task was destroyed but it is pending!" at exit.
    ``run`` now cancels its task and lets it finish before it raises."""
    inline = InlineLoop()
    cleaned: list[float | None] = []

    def handler_fires() -> None:
        raise _Leave

    async def work(timeout: float | None) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(timeout)

    try:
        for timeout in (None, 10.0):
            inline.loop.call_later(0.02, handler_fires)
            with pytest.raises(_Leave):
                inline.run(work(timeout), timeout=timeout)
            assert not asyncio.all_tasks(inline.loop)
        assert cleaned == [None, 10.0]
    finally:
        inline.close()


def test_a_keyboard_interrupt_raised_in_runs_task_is_retrieved():
    """asyncio re-raises a ``KeyboardInterrupt`` out of the loop and also keeps it as the task's
    exception: ``run`` retrieves it, so nothing is logged ("never retrieved") when the task goes,
    and the loop's handler does not take that log entry for an exception to raise later."""
    inline = InlineLoop()

    async def interrupted() -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            inline.run(interrupted())
        gc.collect()
        assert inline.run(asyncio.sleep(0, "next")) == "next"
    finally:
        inline.close()


# A file job whose fetcher takes its time to close: the second Ctrl-C lands in ``InlineLoop.run``
_SLOW_CLOSE = """
import asyncio, os, sys
from pathlib import Path
from totask_manifest._fetch.fetcher import Fetcher
from totask_manifest._cli import main

closing = Fetcher.aclose

async def slow_close(self):
    Path(os.environ["CLOSING_MARK"]).touch()
    try:
        await asyncio.sleep(30)
    finally:
        await closing(self)

Fetcher.aclose = slow_close
sys.exit(main(sys.argv[1:]))
"""


#: lines of the job the two Ctrl-C stop: far more than the 0.5 s before the first can finish
#: (64 in flight, 0.2 s a request: some 10 s of work). With 200, a quick job had pulled its last
#: lines by then, completed, and exited 0 (seen once in 22 runs)
_CLOSE_LINES = 3000


@pytest.mark.slow
def test_a_second_ctrl_c_while_the_file_job_closes_its_fetcher_prints_no_traceback(tmp_path):
    """First SIGINT: the file job finishes its lines in flight and closes its fetcher; the second
    lands in that close (``InlineLoop.run``) and leaves at once: exit 130 (README: 128 plus the
    signal number), STOPPED, the output manifest valid (finished lines labeled, the rest as in the
    input), and stderr holds no traceback. The task ``run`` left pending used to make Python print
    "Task was destroyed but it is pending!" at exit."""

    with slow_labels() as base:
        _second_ctrl_c_while_closing(tmp_path, base)


def _second_ctrl_c_while_closing(tmp_path, base: str) -> None:
    """The test above, its label files served slowly from ``base``."""
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/i{i}.jpg", "u": f"{base}/l{i}.json"}) + b"\n"
                             for i in range(_CLOSE_LINES)))
    out, mark = tmp_path / "out", tmp_path / "closing"
    env = dict(os.environ, PYTHONPATH=str(REPO), CLOSING_MARK=str(mark))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CLOSE, "annotate", str(inp), "--job-name", "j", "--label-attribute", "cls",
         "--task-type", "image-classification", "--method", "file", "--url-key", "u", "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (out / "j" / "job.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # lines in flight
        proc.send_signal(signal.SIGINT)
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mark.exists(), "the job never closed its fetcher"
        time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - started < 10, "the second signal did not leave at once"
    for bad in ("Traceback", "never retrieved", "destroyed but it is pending", "Exception ignored"):
        assert bad not in stderr, stderr
    assert proc.returncode == 130, stderr
    job = orjson.loads((out / "j" / "job.json").read_bytes())
    assert job["status"] == "STOPPED", job
    src = inp.read_bytes().splitlines(keepends=True)
    got = (out / "j" / "manifests" / "output" / "output.manifest").read_bytes().splitlines(keepends=True)
    assert len(got) == len(src)
    labeled = sum(a != b for a, b in zip(src, got, strict=True))
    assert 0 < labeled < len(src) and job["metrics"]["success"] == labeled
    assert job["metrics"]["stand_by"] == len(src) - labeled
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], "a temporary file was left"


@pytest.mark.parametrize("loop_kind", ["inline", "thread"])
def test_close_returns_once_the_idle_to_thread_threads_have_ended(loop_kind) -> None:
    """A converter plugin's hooks run in ``asyncio.to_thread``'s pool. ``loop.close()`` shut it
    down without waiting, so its idle ``asyncio_N`` threads were still ending when the job looked
    for threads its annotator left: ``method 'file' left 3 thread(s) running after close()`` on
    most ``--converter`` runs (and the command left through ``os._exit``). Twenty rounds of 16
    calls; a call still running at close (a hook that never returns) does not hold it."""
    async def calls(n: int) -> list[int]:
        return list(await asyncio.gather(*(asyncio.to_thread(pow, i, 2) for i in range(n))))

    for _ in range(20):
        before = set(threading.enumerate())
        loop = InlineLoop() if loop_kind == "inline" else LoopThread()
        assert loop.run(calls(16)) == [i * i for i in range(16)]
        loop.close()
        left = [t.name for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        assert left == []

    stuck, release = threading.Event(), threading.Event()
    hung: list[threading.Thread] = []

    def hangs() -> None:
        hung.append(threading.current_thread())
        stuck.set()
        release.wait(60)

    async def one_hung() -> None:
        asyncio.get_running_loop().run_in_executor(None, hangs)
        await asyncio.to_thread(stuck.wait, 5)

    loop = InlineLoop() if loop_kind == "inline" else LoopThread()
    loop.run(one_hung())
    try:
        loop.close()
        assert stuck.is_set() and hung[0].is_alive()  # closed while the hook still runs
    finally:
        release.set()
