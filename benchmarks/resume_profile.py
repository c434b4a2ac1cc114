"""Where a resume with one line left spends its time, warm or cold (``--cold``: the page cache of
the input, the parts and the old output dropped first with ``posix_fadvise(DONTNEED)``).

Run after ``resume_chain_bench.py`` made the job: ``python benchmarks/resume_profile.py [--cold]
[--profile]``. Prints the phases (timestamps around the job's own functions) and the load.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import time
from pathlib import Path

t0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from resume_chain_bench import DATA, load, one_line_left  # noqa: E402

from totask_manifest import _api as api  # noqa: E402
from totask_manifest import _write_behind  # noqa: E402
from totask_manifest._jobs import commit, execute  # noqa: E402

T_IMPORT = time.perf_counter() - t0
marks: list[tuple[str, float]] = []


def wrap(mod, name, label=None):
    fn = getattr(mod, name)

    def inner(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            marks.append((label or name, time.perf_counter() - t))
    setattr(mod, name, inner)


def drop(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cold", action="store_true")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--ahead", type=int, help="parts read ahead (read_ahead.AHEAD)")
    p.add_argument("--kernel", choices=("on", "off"), help="force the commit's copy_file_range on or off")
    p.add_argument("--job", default=str(DATA / "resume-bbox-1000000"))
    args = p.parse_args()
    job = args.job
    one_line_left(job)
    if args.cold:
        os.sync()
        for root, _dirs, files in os.walk(job):
            for f in files:
                drop(os.path.join(root, f))
        drop(str(DATA / "bbox-1000000.manifest"))
    if args.ahead is not None:
        from totask_manifest._jobs import read_ahead
        read_ahead.AHEAD = args.ahead
    if args.kernel:
        import functools
        commit.Sink = functools.partial(commit.Sink, kernel=args.kernel == "on")
    wrap(execute, "summarize")
    wrap(execute, "write_output")
    wrap(commit, "write_failures")
    wrap(_write_behind, "sync", "final fsync")
    import totask_manifest._storage as st
    st.sync = _write_behind.sync
    wrap(st, "fsync_dir")
    wrap(api, "job_selection")
    t = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    r = api.resume(job)
    total = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = f"cpu user {ru1.ru_utime - ru0.ru_utime:.2f} sys {ru1.ru_stime - ru0.ru_stime:.2f}"
    if args.profile:
        prof.disable()
    assert r.status == "COMPLETED", r
    print(f"imports {T_IMPORT:.2f} s; resume {total:.2f} s {'cold' if args.cold else 'warm'} "
          f"kernel={args.kernel} ahead={args.ahead} {cpu} ({load()})")
    for label, s in marks:
        print(f"  {label:16s} {s:.3f} s")
    if args.profile:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
