"""``usable_cpus`` counted the affinity mask only: a container limited by a CPU quota (``docker
--cpus=2``: cgroup v2 ``cpu.max`` ``200000 100000``, v1 ``cpu.cfs_quota_us`` over
``cpu.cfs_period_us``) on a 64-CPU host defaulted ``--workers`` to 64 and bounded it at 256. The
quota is now read from the process's own cgroup (``/proc/self/cgroup``) and the folders above it:
``ceil(quota / period)``, at least 1, never more than the affinity mask. Real files under
``tmp_path`` stand in for ``/sys/fs/cgroup`` and ``/proc/self/cgroup``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from totask_manifest._cpus import cgroup_cpu_quota, usable_cpus

AFFINITY = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _tree(tmp_path: Path, files: dict[str, str], self_cgroup: str) -> tuple[str, str]:
    """``root`` holding ``files`` (path: text) and a ``/proc/self/cgroup`` holding ``self_cgroup``."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "self").write_text(self_cgroup)
    return str(root), str(tmp_path / "self")


@pytest.mark.parametrize("files, self_cgroup, cpus", [
    ({"cpu.max": "200000 100000\n"}, "0::/\n", 2),  # docker --cpus=2, a cgroup namespace
    ({"cpu.max": "150000 100000\n"}, "0::/\n", 2),  # 1.5 CPUs: the second one is used in part
    ({"cpu.max": "10000 100000\n"}, "0::/\n", 1),  # a tenth of one: still one process
    ({"cpu.max": "max 100000\n"}, "0::/\n", None),  # no quota
    ({"cpu.max": "garbage\n"}, "0::/\n", None),
    ({"cpu.max": "\n"}, "0::/\n", None),
    ({}, "0::/\n", None),  # no such file: no controller, or not Linux
    # the process's own cgroup, and a limit on a parent that holds for it: the smallest
    ({"kubepods/pod1/c1/cpu.max": "400000 100000", "kubepods/pod1/cpu.max": "300000 100000"},
     "0::/kubepods/pod1/c1\n", 3),
    ({"kubepods/cpu.max": "max 100000", "kubepods/c1/cpu.max": "100000 100000"}, "0::/kubepods/c1\n", 1),
    # v1: the cpu controller's folder, named as the hierarchy line names it or as cpu
    ({"cpu,cpuacct/cpu.cfs_quota_us": "300000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
     "4:cpu,cpuacct:/\n1:memory:/x\n", 3),
    ({"cpu/docker/abc/cpu.cfs_quota_us": "200000", "cpu/docker/abc/cpu.cfs_period_us": "100000"},
     "3:cpu:/docker/abc\n", 2),
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "3:cpu:/\n", None),
    # v1 without a cgroup namespace: the path is the host's, the container's cgroup is the mount
    ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "100000"}, "3:cpu,cpuacct:/docker/abc\n", 1),
    ({"cpu/cpu.cfs_quota_us": "100000", "cpu/cpu.cfs_period_us": "0"}, "3:cpu:/\n", None),
])
def test_the_quota_is_read(tmp_path, files, self_cgroup, cpus):
    root, self_file = _tree(tmp_path, files, self_cgroup)
    assert cgroup_cpu_quota(root, self_file) == cpus
    assert usable_cpus(root, self_file) == (AFFINITY if cpus is None else min(AFFINITY, cpus))


def test_an_unreadable_self_cgroup_reads_the_mount_itself(tmp_path):
    root, _ = _tree(tmp_path, {"cpu.max": "100000 100000"}, "")
    assert cgroup_cpu_quota(root, str(tmp_path / "missing")) == 1


def test_a_quota_above_the_affinity_mask_changes_nothing(tmp_path):
    root, self_file = _tree(tmp_path, {"cpu.max": f"{(AFFINITY + 3) * 100000} 100000"}, "0::/\n")
    assert usable_cpus(root, self_file) == AFFINITY


def test_this_machine_reads_without_error():
    assert 1 <= usable_cpus() <= AFFINITY
