"""Run ``totask-manifest ARGS`` with a Ctrl-C sent at one named point of a command, as a terminal
sends it (``SIGINT`` to the whole process group: the command and its pool workers). How
``tests/test_scan_interrupt.py`` (a job's start) and ``tests/test_ctrl_c_edges.py`` (its end, and
the end of ``apply`` and ``convert``) place the signal exactly, without sleeps that race:

    python -m tests.support.ctrl_c_at POINT ARGS...

Start it in a session of its own (``start_new_session=True``): the signal goes to its group.

Points:

- ``before-lease``: the job's configuration was checked, its lease is about to be taken;
- ``lease-created``: the lease file was just created, ``acquire`` has not returned yet;
- ``spawning``: the input scan's pool workers are being started (``pool.spawning``);
- ``checksum``: the checksum thread is being started (``--one-process``: the scan without pool);
- ``scanning``: this process is reading its first range of the input;
- ``worker-dies``: a pool worker is killed part way through sending its result (no Ctrl-C);
- ``worker-mid-result``: Ctrl-C while a pool worker is part way through sending its result;

and at a command's end, once its work is done:

- ``committed``: the job's output manifest was just renamed into place (``commit.write_output``
  returned), job.json does not say COMPLETED yet;
- ``recorded``: job.json was just saved with the job's final status (``execute._finish`` returned);
- ``restoring``: ``execute.stop_on_signals`` is leaving: SIGINT's handler is back, SIGTERM's not yet;
- ``restored``: ``execute.stop_on_signals`` has put both back (the job's result is being made);
- ``done``: the command's library call (``annotate``, ``resume``, ``chain``, ``apply_job``,
  ``convert``) has just returned;
- ``lease-release``: the job folder's lease is being given back (``Lease.release`` entered);
- ``summary``: the command's first write to stdout once its library call returned;
- ``returned``: ``_cli.main`` got the command's exit code from its handler;
- ``main-returned``: ``_cli.main`` returned, ``sys.exit`` has not run yet;
- ``exit``: the interpreter is exiting (an ``atexit`` callback, after the command's own);
- ``finalizing``: the interpreter is tearing its modules down, past its ``atexit`` callbacks
  (Python has put the handlers of the signals back to their defaults by then).

The CLI runs as the ``totask-manifest`` script runs it: ``sys.exit(main())`` with ``sys.argv`` set.

``--one-process`` (first, after POINT) makes the scan a one-process one, as for a small input.

What is sent at the point is ``$CTRL_C_AT_SIGNAL``: ``SIGINT`` (the default: a terminal's Ctrl-C, to
the group), ``SIGTERM`` (to the group, as ``timeout``, systemd and ``docker stop`` of a shell send
it), ``SIGTERM-pid`` (to the command alone, as ``kill PID``: its pool workers get nothing), ``SIGKILL-pid`` (``kill -9 PID``) or
``SIGHUP`` (to the group, as a shell whose terminal closed sends it to its jobs).
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
SIGNAL = "CTRL_C_AT_SIGNAL"
SENT = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGTERM-pid": signal.SIGTERM, "SIGHUP": signal.SIGHUP,
        "SIGKILL-pid": signal.SIGKILL}


def ctrl_c() -> None:
    """SIGINT to this process group, as a terminal's Ctrl-C; or SIGTERM, to the group or to the
    command alone, or SIGHUP to the group (``$CTRL_C_AT_SIGNAL``)."""
    how = os.environ.get(SIGNAL, "SIGINT")
    if how.endswith("-pid"):
        os.kill(int(os.environ[PARENT]), SENT[how])
    else:
        os.killpg(0, SENT[how])


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


def _before(owner: Any, name: str, first: Any) -> None:
    original = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        first()
        return original(*args, **kwargs)

    setattr(owner, name, wrapped)


class _AtTeardown:
    """Sends the point's signal as its ``__del__`` runs: held by this module's globals, it is
    released as the interpreter clears the modules, past every ``atexit`` callback and past the
    moment Python put the handlers of the signals it had taken back to their defaults
    (``finalizing``). What it calls is bound now: the modules it would look in are being cleared."""

    def __init__(self) -> None:
        how = os.environ.get(SIGNAL, "SIGINT")
        if how.endswith("-pid"):
            self._send: tuple[Any, int, int] = (os.kill, int(os.environ[PARENT]), SENT[how])
        else:
            self._send = (os.killpg, 0, SENT[how])

    def __del__(self) -> None:
        send, to, signum = self._send
        send(to, signum)


_AT_TEARDOWN: _AtTeardown | None = None


class _Done:
    """Whether the command's library call returned (``summary`` waits for it)."""

    returned = False

    @classmethod
    def mark(cls) -> None:
        cls.returned = True
        if os.environ[POINT] == "done":
            ctrl_c()


class _SignalsRestoring:
    """``execute``'s ``signal`` module, which sends a Ctrl-C as ``stop_on_signals`` turns to
    SIGTERM's handler on leaving (``restoring``): SIGINT's is dealt with, SIGTERM's not yet. It
    looks at SIGTERM's handler twice: as it starts, and as it leaves."""

    def __init__(self) -> None:
        self._real = signal
        self._looked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def getsignal(self, signum: int) -> Any:
        if signum == self._real.SIGTERM:
            self._looked += 1
            if self._looked == 2:
                ctrl_c()
        return self._real.getsignal(signum)


class _StdoutOnce:
    """stdout, sending a Ctrl-C after the first write once the library call returned (``summary``)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._sent = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        if _Done.returned and not self._sent:
            self._sent = True
            self._stream.flush()
            ctrl_c()
        return n


def _install_end(point: str) -> None:
    """The points at a command's end, once its work is done."""
    import atexit

    from totask_manifest import _api, _cli
    from totask_manifest._analytics import convert
    from totask_manifest._jobs import execute, lease
    from totask_manifest._synapse import apply

    for owner, name in ((_api, "annotate"), (_api, "resume"), (_api, "chain"), (apply, "apply_job"),
                        (convert, "convert")):
        _after(owner, name, _Done.mark)
    if point == "committed":
        _after(execute, "write_output", ctrl_c)
    elif point == "recorded":
        _after(execute, "_finish", ctrl_c)
    elif point == "restoring":
        execute.signal = _SignalsRestoring()  # type: ignore[assignment]
    elif point == "restored":
        _before(execute, "job_result", ctrl_c)
    elif point == "lease-release":
        _before(lease.Lease, "release", ctrl_c)
    elif point == "summary":
        sys.stdout = _StdoutOnce(sys.stdout)
    elif point == "returned":
        build = _cli.build_parser

        def parser_whose_command_is_interrupted_after(*args: Any, **kwargs: Any) -> Any:
            parser = build(*args, **kwargs)
            parse = parser.parse_known_args

            def parse_known_args(*a: Any, **k: Any) -> Any:
                parsed, unknown = parse(*a, **k)
                _after(parsed, "func", ctrl_c)
                return parsed, unknown

            parser.parse_known_args = parse_known_args
            return parser

        _cli.build_parser = parser_whose_command_is_interrupted_after
    elif point == "exit":
        atexit.register(ctrl_c)  # the first registered runs last
    elif point == "finalizing":
        global _AT_TEARDOWN
        _AT_TEARDOWN = _AtTeardown()
    elif point not in ("done", "main-returned"):
        raise SystemExit(f"unknown point {point!r}")


END_POINTS = ("committed", "recorded", "restoring", "restored", "done", "lease-release", "summary", "returned",
              "main-returned", "exit", "finalizing")


def _install(point: str) -> None:
    from totask_manifest._jobs import lease, scan_ranges
    from totask_manifest._manifest import pool

    os.environ[PARENT], os.environ[POINT] = str(os.getpid()), point
    if point == "before-lease":
        from totask_manifest import _api

        _before(_api, "hold", ctrl_c)
    elif point == "lease-created":
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
    elif point in END_POINTS:
        _install_end(point)
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

    sys.argv = ["totask-manifest", *args]  # as the console script runs it: ``sys.exit(main())``
    code = cli()
    if point == "main-returned":
        ctrl_c()
    return code


if __name__ == "__main__":  # by its module name: ``scan_range`` crosses to the workers by it
    from tests.support.ctrl_c_at import main as by_name

    sys.exit(by_name())
