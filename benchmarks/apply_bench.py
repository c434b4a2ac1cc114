"""Benchmark: ``apply`` of 10,000 tasks against the Synapse contract server with 20 ms per request.

The contract server (``totask_manifest.testing.synapse_server``) runs in its own process and
sleeps ``--latency`` seconds in every answer, like a remote backend. In the same run it measures:

1. ``export`` of the project's tasks (listing plus one detail GET per task);
2. ``apply_job`` of a finished job over those tasks: per task a read of its current data
   (idempotency and conflict check; one listing request per 100 tasks where the backend's
   ``id__in`` filter proves faithful, else one GET per task), a journal record flushed to disk
   (group-committed), and the PUT;
3. the same ``apply_job`` again: every task already holds its data, so only reads go out;
4. the baseline: a sequential loop, one ``httpx.Client`` PUT at a time, on ``--sequential``
   tasks, extrapolated to the same number of tasks.

Targets: apply at least 500 tasks/s, and at least 10x the sequential loop. A GET before every
PUT would double the requests (and, on 2 cores shared with the server, nearly halve the rate);
reading current data a window at a time keeps it near one request per task, and
``--concurrency`` tasks in flight over one aiohttp-backed pool turn latency into throughput.
``--per-task-get`` measures the one-GET-per-task path for comparison.

    python benchmarks/apply_bench.py [--tasks 10000] [--latency 0.02] [--concurrency 64] [--check]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start_server(tasks: int, latency: float) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "totask_manifest.testing.synapse_server", "--tasks", str(tasks), "--latency",
         str(latency), "--project", "1", "--no-record"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[1]
    token = proc.stdout.readline().split()[1]
    return proc, url, token


def sequential_puts(url: str, token: str, task_ids: list[int], data: dict) -> float:
    """Seconds for one blocking PUT after another (the naive loop)."""
    import httpx

    headers = {"Synapse-Access-Token": f"Token {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        started = time.perf_counter()
        for tid in task_ids:
            http.put(f"/tasks/{tid}/annotate_task_data/", json={"action": "submit", "data": data}).raise_for_status()
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential", type=int, default=300, help="tasks in the sequential baseline")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--per-task-get", action="store_true", help="read current data with one GET per task")
    args = parser.parse_args()

    from totask_manifest._formats.synapse import gt_to_dm_v1
    from totask_manifest._synapse.apply import apply_job
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest._synapse.settings import SynapseSettings
    from totask_manifest._synapse.sync_client import SynapseClient
    from totask_manifest.testing.builders import gt_label, make_job

    proc, url, token = start_server(args.tasks, args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="apply-bench-") as tmp:
            root = Path(tmp)
            client = SynapseClient(SynapseSettings(host=url, access_token=token), max_concurrency=args.concurrency)
            try:
                export = root / "export.manifest"
                t0 = time.perf_counter()
                exported = export_tasks(1, str(export), client=client).exported
                export_s = time.perf_counter() - t0
                job = make_job(root, export)

                sent_before = client.aio.sent
                t0 = time.perf_counter()
                report = apply_job(str(job), client=client, concurrency=args.concurrency,
                                   bulk_reads=not args.per_task_get)
                apply_s = time.perf_counter() - t0
                apply_requests = client.aio.sent - sent_before
                assert report.ok and report.totals["applied"] == args.tasks, report.summary()

                sent_before = client.aio.sent
                t0 = time.perf_counter()
                again = apply_job(str(job), client=client, concurrency=args.concurrency,
                                  bulk_reads=not args.per_task_get)
                again_s = time.perf_counter() - t0
                again_requests = client.aio.sent - sent_before
                assert again.totals["unchanged"] == args.tasks, again.summary()
            finally:
                client.close()

            ids = [int(line.split(b'"task_id":')[1].split(b",")[0]) for line in export.read_bytes().splitlines()]
            seq_s = sequential_puts(url, token, ids[: args.sequential], gt_to_dm_v1("object-detection", *gt_label(1)))
    finally:
        proc.stdin.close() if proc.stdin else None
        proc.terminate()
        proc.wait(10)

    apply_rate = args.tasks / apply_s
    seq_rate = args.sequential / seq_s
    seq_extrapolated = args.tasks / seq_rate
    ratio = seq_extrapolated / apply_s
    print(f"contract server: {args.tasks:,} tasks, {args.latency * 1000:.0f} ms per request, own process; "
          f"{os.cpu_count()} cores; concurrency {args.concurrency}")
    print(f"export:                {exported:,} tasks in {export_s:6.2f} s  = {exported / export_s:8,.0f} tasks/s")
    print(f"apply (read+journal+PUT): {args.tasks:,} tasks in {apply_s:6.2f} s = {apply_rate:8,.0f} tasks/s "
          f"({apply_requests:,} requests)")
    print(f"apply again (all unchanged, reads only): {again_s:6.2f} s = {args.tasks / again_s:8,.0f} tasks/s "
          f"({again_requests:,} requests)")
    print(f"sequential PUT loop:   {args.sequential} tasks in {seq_s:6.2f} s  = {seq_rate:8,.1f} tasks/s "
          f"-> {seq_extrapolated:,.0f} s for {args.tasks:,}")
    print(f"apply vs sequential:   {ratio:.1f}x")
    ok = apply_rate >= 500 and ratio >= 10
    print(f"targets (>= 500 tasks/s, >= 10x sequential): {'met' if ok else 'MISSED'}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
