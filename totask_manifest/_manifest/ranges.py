"""The one line splitter and byte-range planner: how every command reads a manifest in pieces.

Partition rule: a line belongs to the byte range its first byte is in, so ranges ``[a, b)``
that tile a file give every line to exactly one reader, whatever the boundaries cut through
(a line, a ``\\r\\n``, a blank line). A UTF-8 byte order mark before the file's first line is
not part of that line's JSON (``split_bom``); it only ever sits in the range starting at 0.

``map_ranges`` runs one function over the ranges of a big file in worker processes, with this
process working through ranges too (no one waits for a process to start), a dead worker's
ranges redone here (exact results, only slower), and a Ctrl-C that ends the command with its
one line and exit 130: workers ignore SIGINT (``pool.quiet_worker``) and the interrupted command
ends them (``pool.stop``). Why: a terminal sends Ctrl-C to every process of its foreground group;
Python's own handler raised ``KeyboardInterrupt`` in each worker wherever it was (often inside
an import) and each printed a traceback, and a future already cancelled made Python 3.11's
pool thread raise ``InvalidStateError`` as well.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from io import BytesIO
from typing import IO, Any, Literal, TypeVar

from .. import _storage as storage
from .._cpus import usable_cpus
from .._errors import ManifestError, StorageError, UsageError, counted, file_changed
from . import long_lines, pool
from .file_kind import refuse_not_text
from .line import BOM

T = TypeVar("T")
CHUNK = 1 << 20
#: ranges are at least this long; a file under twice this is read by one process
MIN_RANGE_BYTES = 8 << 20
#: ranges per worker: many small ranges even out processes that start late or get less CPU
RANGES_PER_WORKER = 8
#: a tapered plan's ranges (``plan_ranges``) are ``min_bytes`` over this at the smallest, where the
#: processes are expected to meet, and each is half its distance from there, up to the plan's size
TAPER_DIVISOR = 8
TAPER_GROWTH = 0.5
log = logging.getLogger("totask_manifest")


# --- splitting ---------------------------------------------------------------------------------

def _split(f: IO[bytes], start: int, end: int | None, chunk: int,
           newlines: bool = False) -> Iterator[tuple[list[bytes], bool]]:
    """``(lines, terminated)`` batches of the lines starting in ``[start, end)``; only a file's last
    line can come unterminated, alone in the last batch. Lines come without their ``\n``, or
    with it (``newlines``: the last unterminated line stays without). A line over
    ``MAX_LINE_BYTES`` comes as a ``TooLong`` marker alone in its batch, read past and never held.

    Why both: ``bytes.split`` looks at every byte in a loop of its own (245 ns a line of the
    benchmark's 480 bytes, measured against 95), while ``BytesIO.readlines`` finds each ``\n`` with
    ``memchr`` but keeps it; a JSON parser takes it as trailing whitespace."""
    offset = long_lines.line_start(f, start, chunk, end)  # file offset of the first byte of ``pending``
    pending = b""
    long_line: list[bytes] = []  # chunks of a line longer than a chunk, joined once it ends
    held = 0  # bytes in ``long_line``
    carry = b""  # what followed a line read past, in its last chunk
    newline = 0 if newlines else 1  # bytes of a line not in its ``bytes``
    while end is None or offset < end:
        data = carry or f.read(chunk)
        carry = b""
        if not data:
            if long_line:
                pending = b"".join([*long_line, pending])
            if len(pending) > long_lines.MAX_LINE_BYTES:
                yield [long_lines.too_long(len(pending), b"")], False
            elif pending:
                yield [pending], False
            return
        if b"\n" not in data:  # joined once, not once per chunk (a 40 MB line costs 40 MB, not 800)
            long_line.append(pending)
            held += len(pending)
            pending = data
            if held + len(data) > long_lines.MAX_LINE_BYTES:  # over the cap: read on to its end
                size = held + len(data)
                limit = None if end is None else end - offset - size  # the range's bytes left
                skipped, carry, terminated = long_lines.skip_line(f, chunk, limit)
                size += skipped
                long_line, held, pending = [], 0, b""
                yield [long_lines.too_long(size, b"\n" if newlines and terminated else b"")], terminated
                offset += size
            continue
        if long_line:
            pending = b"".join([*long_line, pending])
            long_line, held = [], 0
        buf = pending + data
        pending = b""
        too_long = long_lines.long_line_at(buf)  # a line over the cap whole in ``buf`` (rare)
        if too_long >= 0:  # the lines before it now, then its marker, then the rest (``carry``)
            cut = buf.index(b"\n", too_long) + 1
            buf, carry, too_long = buf[:too_long], buf[cut:], cut - too_long
        if buf:
            if newlines:
                lines = BytesIO(buf).readlines()  # shares ``buf``, no copy
                pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
            else:
                lines = buf.split(b"\n")
                pending = lines.pop()
            size = len(buf) - len(pending)  # the lines' bytes, terminators included: no pass over them
            if end is not None and offset + size > end:
                kept = []
                for line in lines:  # the range ends inside this batch: keep lines starting before ``end``
                    if offset >= end:
                        break
                    kept.append(line)
                    offset += len(line) + newline
                yield kept, True
                return
            offset += size
            yield lines, True
        if too_long > 0:
            if end is not None and offset >= end:
                return
            yield [long_lines.too_long(too_long, b"\n" if newlines else b"")], True
            offset += too_long


def iter_line_batches(f: IO[bytes], *, start: int = 0, end: int | None = None,
                      chunk: int = CHUNK, newlines: bool = False) -> Iterator[list[bytes]]:
    """The lines of ``[start, end)`` in batches, without their ``\n`` (a ``\r`` stays; JSON
    ignores it) or with it (``newlines``), a BOM left in place. A batch is one ``split`` of a
    chunk: no per-line step."""
    for lines, _terminated in _split(f, start, end, chunk, newlines):
        yield lines


def iter_raw_lines(f: IO[bytes], *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Raw lines with their terminators (a last line without one stays so), BOM included; a line
    over ``MAX_LINE_BYTES`` raises ``ManifestError`` (``line-too-long``): no reader of whole
    lines can carry it (``io.iter_lines_from`` names its line)."""
    for lines, _terminated in _split(f, start, end, CHUNK, newlines=True):
        if type(lines[0]) is long_lines.TooLong:
            raise ManifestError(long_lines.message(), rule="line-too-long")
        yield from lines


def split_bom(raw: bytes) -> tuple[bytes, bytes]:
    """``(BOM or b"", rest)`` of a file's first line: the mark is kept when a line is written back,
    never parsed."""
    return (BOM, raw[len(BOM):]) if raw.startswith(BOM) else (b"", raw)


def iter_bodies(f: IO[bytes], *, start: int = 0, end: int | None = None,
                chunk: int = CHUNK, newlines: bool = False) -> Iterator[list[bytes]]:
    """``iter_line_batches`` ready for ``orjson.loads``: the file's BOM taken off its first line
    (``newlines``: each line keeps its ``\n``, the cheaper split for a caller that only parses)."""
    batches = iter_line_batches(f, start=start, end=end, chunk=chunk, newlines=newlines)
    if start > 0:
        yield from batches
        return
    for first in batches:
        if first:
            first[0] = split_bom(first[0])[1]
        yield first
        break
    yield from batches


# --- planning ----------------------------------------------------------------------------------

#: the most worker processes a command takes a CPU: past one a CPU they only wait their turn for
#: it (the work is parsing, CPU-bound); the margin keeps a count fitted to a bigger machine usable
WORKERS_PER_CPU = 4


def most_workers() -> int:
    """The largest ``--workers`` accepted here: ``WORKERS_PER_CPU`` for each CPU this process may
    run on (``usable_cpus``, which the default of one a CPU reads too)."""
    return WORKERS_PER_CPU * usable_cpus()


def check_workers(workers: int | None, name: str = "workers") -> None:
    """Refuse ``--workers`` below 1 (exit 2) in every command that reads byte ranges (``validate``,
    ``stats``, ``evaluate``): ``map_ranges`` would read 0 or -3 as its default, one per CPU. And
    above ``most_workers()``: each is a process, so ``--workers 64`` on 2 CPUs started 64, to
    share those 2 (a typo, or a count meant for another machine).
    ``name``: what the caller typed (the CLI's ``--workers``, the Python API's keyword)."""
    if workers is not None and workers < 1:
        raise UsageError(f"{name} must be at least 1 (got {workers})")
    if workers is not None and workers > most_workers():
        cpus = usable_cpus()
        raise UsageError(f"{name} {workers} is more than {WORKERS_PER_CPU} processes a CPU ({counted(cpus, 'CPU')} here): "
                         f"give at most {most_workers()} (default: {cpus}, one a CPU)")


def plan_ranges(size: int, workers: int, *, min_bytes: int | None = None,
                per_worker: int = RANGES_PER_WORKER, taper: bool = False) -> list[tuple[int, int]]:
    """Byte ranges tiling ``[0, size)``: ``per_worker`` per worker, each at least ``min_bytes``
    (``MIN_RANGE_BYTES``), at least one per worker; one range for one worker or a file under
    twice ``min_bytes``. ``taper``: the ranges shrink towards where ``map_ranges``' processes are
    expected to meet (``_tapered``)."""
    min_bytes = MIN_RANGE_BYTES if min_bytes is None else min_bytes
    if workers <= 1 or size < 2 * min_bytes:
        return [(0, size)]
    count = max(workers, min(workers * per_worker, size // min_bytes))
    step = -(-size // count)
    cuts = [i * step for i in range(count) if i * step < size]
    if taper:
        cuts = _tapered(cuts, size, step, size * (workers - 1) // workers, max(min_bytes // TAPER_DIVISOR, 1))
    return list(zip(cuts, [*cuts[1:], size], strict=True))


def _tapered(cuts: list[int], size: int, step: int, meet: int, smallest: int) -> list[int]:
    """``cuts`` (range starts, ``step`` apart) with the ranges around ``meet`` cut smaller: each
    ``TAPER_GROWTH`` of its distance from ``meet``, ``smallest`` at least, ``step`` at most.

    Why: the pool's workers take ranges from the front and ``map_ranges``' own process from the
    back; whoever finishes first waits for the other's last range, idle (one range of sixteen on
    two processes was some 0.14 s of CPU, half a range lost on average). Small ranges where they
    meet shorten that wait; big ones elsewhere keep the ranges few. Growing with the distance, a
    meeting away from ``meet`` (a worker that started late, or got less CPU) still waits little."""
    near: list[int] = [meet]
    reach = 0
    while reach * TAPER_GROWTH < step:  # beyond, the plan's own ranges
        reach += max(smallest, int(reach * TAPER_GROWTH))
        near += [meet - reach, meet + reach]
    kept = [c for c in cuts if abs(c - meet) >= reach + smallest]
    return sorted({0, *kept, *(c for c in near if 0 < c < size)})


# --- mapping over worker processes -------------------------------------------------------------

def _context(start_method: Literal["fork", "spawn"] | None) -> multiprocessing.context.BaseContext | None:
    """``fork`` (None: when this process runs no other thread, so nothing holds a lock across the
    fork) or ``spawn``; None when spawn cannot work (it re-runs the main script: impossible for
    one read from stdin)."""
    if start_method != "spawn" and "fork" in multiprocessing.get_all_start_methods() and (
            start_method == "fork" or threading.active_count() == 1):
        return multiprocessing.get_context("fork")
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.exists(main_file):
        return None
    return multiprocessing.get_context("spawn")


def _splittable(url: str, remote: bool) -> bool:
    """Whether worker processes can read the URL (not so for ``memory://``); other URLs than
    local files only when ``remote`` (a ranged read of an object costs a request). A plain
    local path is answered without fsspec: importing it (some 80 ms) held back the first range
    and the workers' start, which come after this."""
    if storage.plain_local_path(url) is not None:
        return True
    fs, _ = storage.url_to_fs(url)
    if storage.is_local(fs):
        return True
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return remote and "memory" not in protocols


#: in a pool worker: one flag per range, set by whichever process takes the range first
_claims: Any = None
_TAKEN = object()


def _start_worker(claims: Any, conf: dict, parent: int) -> None:
    """Pool initializer: quiet on SIGINT, ended when ``parent`` is gone (``pool.end_with``), the
    claim flags, the parent's run-time storage options (none when the parent never loaded
    fsspec: a worker that needs it reads its own config)."""
    global _claims
    pool.quiet_worker()
    pool.end_with(parent)
    _claims = claims
    if conf:
        import fsspec.config

        fsspec.config.conf.update(conf)


def _claim(claims: Any, i: int) -> bool:
    """Take range ``i`` unless another process has. Claims replace ``Future.cancel``: a future
    cancelled while queued makes Python 3.11's pool thread raise ``InvalidStateError`` when a
    worker dies, and leaves the pool half torn down."""
    with claims.get_lock():
        if claims[i]:
            return False
        claims[i] = 1
        return True


def _in_worker(i: int, fn: Callable[..., T], url: str, start: int, end: int, args: tuple) -> Any:
    return fn(url, start, end, *args) if _claim(_claims, i) else _TAKEN


def map_ranges(fn: Callable[..., T], url: str, args: Sequence[Any] = (), *, workers: int | None = None,
               start_method: Literal["fork", "spawn"] | None = None, remote: bool = True,
               min_bytes: int | None = None, per_worker: int = RANGES_PER_WORKER, taper: bool = False,
               started: Callable[[], object] | None = None) -> list[T]:
    """``fn(url, start, end, *args)`` for each range of the file at ``url``, results in file order.

    One call ``fn(url, 0, None, *args)`` in this process for a small file, one worker, or a URL
    that cannot be split (see ``_splittable``). Otherwise ``workers - 1`` pool processes take
    ranges from the front while this process takes them from the back (each range is claimed
    once, by whoever comes first); a worker that dies leaves its ranges to this process. ``fn``
    must be a module-level function (it crosses to spawned processes by name).

    ``per_worker`` ranges per worker (``plan_ranges``): more, smaller ones shorten the wait for
    the last one at the end, for a little more work a range; ``taper`` cuts the ranges smaller
    where the processes are expected to meet instead (``plan_ranges``).

    ``started`` is called once, as soon as this process may start a thread of its own: after
    the workers exist (or at once when there are none). A thread started before would make the
    pool spawn its workers (``_context``), which import the package again, instead of forking.
    """
    workers = workers or usable_cpus()
    with storage.open_read(url) as f:  # a missing file or a folder: the clear error every command gives
        refuse_not_text(f, url)
        refuse_pipe(f, url)
        size = f.seek(0, os.SEEK_END)
    context = _context(start_method) if _splits(url, size, workers, remote=remote, min_bytes=min_bytes) else None
    if context is None:
        if started is not None:
            started()
        return [fn(url, 0, None, *args)]
    ranges = plan_ranges(size, workers, min_bytes=min_bytes, per_worker=per_worker, taper=taper)
    before = version(url)
    try:
        parts = _map_split(fn, url, args, ranges, workers, context, started)
    except Exception:
        refuse_changed(url, before)  # a read that failed because the file changed says so (s3fs: FileExpired)
        raise
    refuse_changed(url, before)
    return parts


def _splits(url: str, size: int, workers: int, *, remote: bool, min_bytes: int | None = None) -> bool:
    """Whether ``map_ranges`` reads a file of ``size`` bytes at ``url`` in ranges over worker
    processes: more than one worker, at least twice ``min_bytes`` (``plan_ranges``) and a URL they
    can read (``_splittable``). The one rule: ``would_split`` tells it before a command reads."""
    return len(plan_ranges(size, workers, min_bytes=min_bytes)) > 1 and _splittable(url, remote)


def would_split(url: str, workers: int | None, *, remote: bool = True) -> bool:
    """Whether ``map_ranges(..., url, workers=workers, remote=remote)`` would read ``url`` with
    worker processes: a command that reads in one process for a reason of its own says that
    ``--workers`` was not taken only where the workers would have been used (a small file is read
    in one process anyway, and ``stats`` and ``validate`` say nothing of it)."""
    workers = workers or usable_cpus()
    if workers <= 1:
        return False
    with storage.open_read(url) as f:
        size = f.seek(0, os.SEEK_END)
    return _splits(url, size, workers, remote=remote)


def refuse_pipe(f: IO[bytes], url: str) -> None:
    """A manifest that cannot seek (``<(zcat in.manifest.gz)``, ``/dev/stdin`` fed by a pipe, a
    FIFO): every command said "File or stream is not seekable.", naming nothing. A manifest is read
    in byte ranges, and a job reads its input again at its lines' offsets and on resume."""
    if not f.seekable():
        raise StorageError(f"cannot read {storage.redact_url(str(url))}: it is a pipe (process substitution, "
                           "/dev/stdin fed by a pipe, a FIFO), not a file; manifests are read in byte ranges, and a "
                           "job reads its input again when it resumes: write it to a file first and give that file")


def version(url: str) -> tuple[str, ...]:
    """What the store says of this version of the file (size, modification time, ETag, inode),
    asked anew (not from fsspec's listings cache). Each process opens the file on its own, and
    an object store pins a read to the version it opened (s3fs asks with ``If-Match``), so only
    a comparison of the file before and after all the reads finds one replaced between them."""
    local = storage.plain_local_path(url)
    try:
        if local is not None:
            st = os.stat(local)
            return str(st.st_size), str(st.st_mtime_ns), str(st.st_ino)
        fs, path = storage.url_to_fs(url)
        fs.invalidate_cache(path)
        with storage.backend_errors(url):
            info = fs.info(path)
    except FileNotFoundError:
        return ("gone",)
    return tuple(str(info.get(k)) for k in ("size", "mtime", "LastModified", "ETag", "etag", "Last-Modified", "ino",
                                             "generation"))


def refuse_changed(url: str, before: tuple[str, ...]) -> None:
    """Refuse a file whose ``version`` is not ``before`` any more: its ranges, read by several
    processes, may come from both versions (lines counted twice or left out, and said valid)."""
    if version(url) != before:
        raise file_changed(url)


def _map_split(fn: Callable[..., T], url: str, args: Sequence[Any], ranges: list[tuple[int, int]], workers: int,
               context: multiprocessing.context.BaseContext, started: Callable[[], object] | None) -> list[T]:
    """``map_ranges`` over more than one range, in pool processes and this one."""
    # run-time storage options, for spawned workers; none unless fsspec was loaded (a plain
    # local path is read without it, ``_splittable``)
    fsspec_config = sys.modules.get("fsspec.config")
    conf = copy.deepcopy(fsspec_config.conf) if fsspec_config is not None else {}
    parts: dict[int, T] = {}
    if context.get_start_method() != "fork":  # forked, the pool's locks register with no tracker
        pool.tracker_started()  # before the first lock: a SIGHUP to the group must not kill it
    claims = context.Array("b", len(ranges))
    broken = False
    with ProcessPoolExecutor(max_workers=min(workers - 1, len(ranges) - 1), mp_context=context,
                             initializer=_start_worker, initargs=(claims, conf, os.getpid())) as executor:
        futures: list[Future] = []
        try:
            with pool.spawning(), pool.main_script_kept_out():  # the first ``submit`` starts the workers
                for i, (start, end) in enumerate(ranges):
                    try:
                        futures.append(executor.submit(_in_worker, i, fn, url, start, end, tuple(args)))
                    except BrokenProcessPool:  # a worker died already: the ranges not handed out are read here
                        break
            if started is not None:
                started()
            for i in reversed(range(len(ranges))):
                if not _claim(claims, i):
                    break  # the workers have reached this far from the front
                parts[i] = fn(url, *ranges[i], *args)
            for i, future in enumerate(futures):
                if i in parts:
                    continue
                try:
                    result = pool.result_of(executor, future, futures)
                except BrokenProcessPool as exc:  # a worker was killed: exact results, only slower
                    if not broken:
                        log.warning("a worker process died (%s); reading the rest in this process", exc)
                    broken = True
                    result = fn(url, *ranges[i], *args)
                if result is _TAKEN:  # pragma: no cover - this process claimed it: in ``parts`` already
                    continue
                parts[i] = result
            for i in range(len(futures), len(ranges)):  # not handed out (the pool broke), nor claimed above
                if i not in parts:
                    parts[i] = fn(url, *ranges[i], *args)
        except BaseException:
            pool.stop(executor, futures)  # a Ctrl-C: no traceback from the pool or its workers
            raise
    return [parts[i] for i in range(len(ranges))]
