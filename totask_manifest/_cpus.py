"""How many CPUs this process may run on: the count every default and bound sized by CPUs reads."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (``os.sched_getaffinity``), where the
    platform has one, else ``os.cpu_count()``; 1 when neither is known. ``os.cpu_count()`` counts
    the host's CPUs: in a container, or under ``taskset``, limited to fewer, ``--workers`` was
    bounded (and defaulted, and a Ray instance sized) by CPUs the process cannot use."""
    getaffinity = getattr(os, "sched_getaffinity", None)  # Linux; not macOS or Windows
    if getaffinity is not None:
        try:
            return len(getaffinity(0)) or 1
        except OSError:
            pass
    return os.cpu_count() or 1
