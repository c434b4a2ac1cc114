"""Run ``totask-manifest ARGS`` with a Ctrl-C sent at one named point of a job's start, as a
terminal sends it (``SIGINT`` to the whole process group: the command and its pool workers).
How ``tests/test_scan_interrupt.py`` places the signal exactly, without sleeps that race:

    python -m tests.support.ctrl_c_at POINT ARGS...

Start it in a session of its own (``start_new_session=True``): the signal goes to its group.

Points:

- ``lease-created``: the lease file was just created, ``acquire`` has not returned yet;
- ``spawning``: the input scan's pool workers are being started (``pool.spawning``);
- ``checksum``: the checksum thread is being started (``--one-process``: the scan without pool);
- ``scanning``: this process is reading its first range of the input;
- ``worker-dies``: a pool worker is killed part way through sending its result (no Ctrl-C);
- ``worker-mid-result``: Ctrl-C while a pool worker is part way through sending its result.

``--one-process`` (first, after POINT) makes the scan a one-process one, as for a small input.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

PARENT = "CTRL_C_AT_PARENT"
POINT = "CTRL_C_AT_POINT"


def ctrl_c() -> None:
    """SIGINT to this process group, as a terminal's Ctrl-C."""
    os.killpg(0, signal.SIGINT)


def _die_mid_send() -> None:
    """In a pool worker: its next message on the result pipe goes out half, then the worker dies
    (``worker-mid-result``: after a Ctrl-C to its group, waiting for the command to kill it)."""
    from multiprocessing import connection

    def half_then_die(self: Any, buf: Any) -> None:
        data = bytes(buf)
        self._send(len(data).to_bytes(4, "big", signed=True) + data[: len(data) // 2])
        if os.environ.get(POINT) == "worker-mid-result":
            ctrl_c()  # the worker ignores it; the command kills it (``pool.stop``)
            threading.Event().wait(60)
        os.kill(os.getpid(), signal.SIGKILL)

    connection.Connection._send_bytes = half_then_die  # type: ignore[method-assign]


_REAL_SCAN: Any = None


def scan_range(url: str, start: int, end: int | None, *args: Any) -> Any:
    """``scan_ranges.scan_range`` (it crosses to the workers by name): ``scanning``, a Ctrl-C as
    this process starts its first range; ``worker-*``, a worker's result goes out half."""
    from totask_manifest._jobs import scan_ranges

    global _REAL_SCAN
    if _REAL_SCAN is None:
        _REAL_SCAN = scan_ranges.scan_range
    in_worker = os.getpid() != int(os.environ[PARENT])
    if not in_worker and os.environ[POINT] == "scanning":
        os.environ[POINT] = "scanned"
        ctrl_c()
    result = _REAL_SCAN(url, start, end, *args)
    if in_worker and os.environ[POINT].startswith("worker-"):
        _die_mid_send()
    return result


def _after(module: Any, name: str, then: Any) -> None:
    original = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        then()
        return result

    setattr(module, name, wrapped)


def _install(point: str) -> None:
    from totask_manifest._jobs import lease, scan_ranges
    from totask_manifest._manifest import pool

    os.environ[PARENT], os.environ[POINT] = str(os.getpid()), point
    if point == "lease-created":
        _after(lease, "_create_exclusive", ctrl_c)
    elif point == "spawning":
        kept_out = pool.main_script_kept_out

        @contextlib.contextmanager
        def interrupted_while_spawning() -> Iterator[None]:
            ctrl_c()
            with kept_out():
                yield

        pool.main_script_kept_out = interrupted_while_spawning
    elif point == "checksum":
        start = scan_ranges._Checksum.start

        def interrupted_start(self: Any) -> None:
            ctrl_c()
            start(self)

        scan_ranges._Checksum.start = interrupted_start  # type: ignore[method-assign]
    elif point in ("scanning", "worker-dies", "worker-mid-result"):
        global _REAL_SCAN
        _REAL_SCAN = scan_ranges.scan_range
        scan_ranges.scan_range = scan_range
    else:
        raise SystemExit(f"unknown point {point!r}")


def main() -> int:
    point, args = sys.argv[1], sys.argv[2:]
    _install(point)
    if args[:1] == ["--one-process"]:
        from totask_manifest._manifest import ranges

        args = args[1:]
        ranges.MIN_RANGE_BYTES = 1 << 40
    from totask_manifest._cli import main as cli

    return cli(args)


if __name__ == "__main__":  # by its module name: ``scan_range`` crosses to the workers by it
    from tests.support.ctrl_c_at import main as by_name

    sys.exit(by_name())
