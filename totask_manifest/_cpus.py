"""How many CPUs this process may run on: the count every default and bound sized by CPUs reads."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

#: where cgroup file systems are mounted (v2: the unified tree; v1: one folder a controller)
CGROUP_ROOT = "/sys/fs/cgroup"
#: which cgroup this process is in, a line a hierarchy: ``ID:controllers:path`` (v2: ``0::path``)
SELF_CGROUP = "/proc/self/cgroup"


def usable_cpus(root: str = CGROUP_ROOT, self_cgroup: str = SELF_CGROUP) -> int:
    """The CPUs this process may run on: its affinity mask (``os.sched_getaffinity``), where the
    platform has one, else ``os.cpu_count()``; 1 when neither is known; fewer where a cgroup CPU
    quota (``docker --cpus=2``, a Kubernetes CPU limit: ``cgroup_cpu_quota``) allows less time
    than that. ``os.cpu_count()`` counts the host's CPUs: in a container, or under ``taskset``,
    limited to fewer, ``--workers`` was bounded (and defaulted, and a Ray instance sized) by CPUs
    the process cannot use. ``root`` and ``self_cgroup``: the files read, for tests."""
    cpus = _affinity_cpus()
    quota = cgroup_cpu_quota(root, self_cgroup)
    return cpus if quota is None else min(cpus, quota)


def _affinity_cpus() -> int:
    """The affinity mask's count (Linux), else ``os.cpu_count()``, else 1."""
    getaffinity = getattr(os, "sched_getaffinity", None)  # Linux; not macOS or Windows
    if getaffinity is not None:
        try:
            return len(getaffinity(0)) or 1
        except OSError:
            pass
    return os.cpu_count() or 1


def cgroup_cpu_quota(root: str = CGROUP_ROOT, self_cgroup: str = SELF_CGROUP) -> int | None:
    """The CPUs a cgroup CPU quota allows this process (``ceil(quota / period)``, at least 1), or
    None without one. Read from the process's own cgroup (``self_cgroup`` maps it to a folder under
    ``root``) and each folder above it up to ``root``, the smallest: a limit set on a parent holds
    for its children, and in a container the process's own cgroup is usually ``root`` itself (a
    cgroup namespace) or a path that is not mounted there (v1 without one). cgroup v2's
    ``cpu.max`` (``200000 100000``; ``max ...``: none), v1's ``cpu.cfs_quota_us`` (-1: none) over
    ``cpu.cfs_period_us``. A file that is missing or cannot be read or parsed is no quota."""
    found = [q for folder in _cgroup_folders(root, self_cgroup) if (q := _folder_quota(folder)) is not None]
    return min(found) if found else None


def _cgroup_folders(root: str, self_cgroup: str) -> Iterator[str]:
    """Each folder that may hold this process's CPU limit: its cgroup's, in the v2 tree and the v1
    ``cpu`` controller's, and every folder above it up to the mount; the mounts alone when
    ``self_cgroup`` cannot be read."""
    try:
        with open(self_cgroup, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    mounts: list[tuple[str, str]] = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":  # v2 (``unified/``: a hybrid host's v2 tree)
            mounts += [(root, path), (os.path.join(root, "unified"), path)]
        elif "cpu" in controllers.split(","):  # v1: mounted as ``cpu``, ``cpu,cpuacct`` or both
            mounts += [(os.path.join(root, "cpu"), path), (os.path.join(root, controllers), path)]
    seen: set[str] = set()
    for mount, path in mounts or [(root, "/"), (os.path.join(root, "cpu"), "/")]:
        for folder in _upwards(mount, path):
            if folder not in seen:
                seen.add(folder)
                yield folder


def _upwards(mount: str, path: str) -> Iterator[str]:
    """``mount`` joined with ``path`` (a cgroup path, from ``/``), then each folder above up to ``mount``."""
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    for n in range(len(parts), -1, -1):
        yield os.path.join(mount, *parts[:n])


def _folder_quota(folder: str) -> int | None:
    """The CPUs ``folder``'s own quota allows (v2, else v1), or None."""
    v2 = _read(os.path.join(folder, "cpu.max"))
    if v2 is not None:
        fields = v2.split()
        return _cpus_of(fields[0], fields[1]) if len(fields) == 2 else None
    quota, period = _read(os.path.join(folder, "cpu.cfs_quota_us")), _read(os.path.join(folder, "cpu.cfs_period_us"))
    return _cpus_of(quota, period) if quota is not None and period is not None else None


def _cpus_of(quota: str, period: str) -> int | None:
    """``ceil(quota / period)``, at least 1; None for ``max``, -1 or anything that is not a count."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None  # "max": no quota
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def _read(path: str) -> str | None:
    """The file's text, stripped; None when it is missing or cannot be read."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
