"""The "backend down" rule (``Breaker``) as review8 found it wanting, on the fake Synapse server: broken
tasks while the backend answers fail alone (scattered reads of an export, lines without a project id), and
an outage of the writes alone is stopped, keeping the writes made, even when tasks that send no write
(conflicts) come between its failures."""

from __future__ import annotations

import orjson
import pytest

from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.workers import FRESH_OUTAGE
from totask_manifest.testing.builders import make_job, seed_tasks, seeded_export
from totask_manifest.testing.recording import Fault

from .support.breaker import kept, write_outage_stop

pytest_plugins = ["totask_manifest.testing.fixtures"]


def broken_writes(synapse, task_ids) -> None:
    """Every PUT of these tasks is answered 500: the tasks' own failure, the backend answering the rest."""
    alternatives = "|".join(map(str, task_ids))
    synapse.add_fault(Fault(status=500, method="PUT", path=rf"^/tasks/({alternatives})/annotate_task_data/$",
                            times=None))


def edited_since_export(synapse, every: int, *, first: int = 0) -> int:
    """Every ``every``-th task from the ``first`` on changed in Synapse since the export: a conflict, no write
    sent for it. Returns how many."""
    edited = [tid for i, tid in enumerate(sorted(synapse.tasks)) if i >= first and i % every == every - 1]
    for tid in edited:
        synapse.tasks[tid]["data"] = {"edited": True}
    return len(edited)


def without_projects(export) -> None:
    """The export's lines with ``synapse.project`` removed (a converted or hand-made manifest)."""
    lines = []
    for raw in export.read_bytes().splitlines():
        record = orjson.loads(raw)
        record["synapse"].pop("project")
        lines.append(orjson.dumps(record))
    export.write_bytes(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize("broken", [8, 12])
@pytest.mark.parametrize("status", [500, 503])
def test_scattered_broken_task_reads_are_skipped_not_an_outage(synapse, files, client, tmp_path, broken,
                                                               status) -> None:
    """Every 8th of 100 task reads answered ``status`` every time, the rest and the check answered: the
    broken reads' last tries went out after the window's other reads were answered, so each looked
    fresh, and 8 of them stopped the export as "the Synapse backend is unavailable", nothing written
    (review8 #1). They are the tasks' own: skipped."""
    pid = seed_tasks(synapse, files, 100)
    ids = sorted(synapse.tasks)[::8][:broken]
    synapse.add_fault(Fault(status=status, method="GET", path=rf"^/tasks/({'|'.join(map(str, ids))})/$", times=None))
    out = tmp_path / "out.manifest"
    result = export_tasks(pid, str(out), client=client)
    assert result.exported == 100 - broken and len(result.skipped) == broken, result
    assert len(out.read_bytes().splitlines()) == 100 - broken


@pytest.mark.parametrize("concurrency", [1, 4, 32])
def test_a_write_outage_between_conflicts_is_stopped(synapse, files, client, tmp_path, concurrency) -> None:
    """Every PUT answered 503 (reads and the check answered: a read-only or maintenance mode), every 4th
    task a conflict (no write sent): each conflict restarted the fresh count, so the outage ran to the end,
    each write tried 4 times, no stop (review8 #2). Stopped by B, which rolls nothing back (none was made)."""
    _, export = seeded_export(synapse, files, client, tmp_path, 40)
    conflicts = edited_since_export(synapse, 4)
    synapse.add_fault(Fault(status=503, method="PUT", times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    stop = write_outage_stop(1001).match(report.fatal or "")
    assert stop is not None and int(stop[1]) >= FRESH_OUTAGE, report.fatal  # more: those that failed meanwhile
    assert report.rollback is None and kept(report.summary(), 0), report.summary()
    assert len(synapse.requests_to("PUT")) < 4 * (40 - conflicts), "the outage ran to the run's end"


@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_write_outage_after_good_writes_keeps_them_despite_conflicts(synapse, files, client, tmp_path,
                                                                      concurrency) -> None:
    """The first writes answered, then every PUT 503, one task in 5 after that a conflict: at concurrency 1
    `10 applied, 10 conflicts, 40 failed`, no stop (review8 #2). Stopped now, and the good writes (each
    answered 2xx) kept: reads answered, B cannot tell an outage of the writes from broken tasks."""
    _, export = seeded_export(synapse, files, client, tmp_path, 60)
    edited_since_export(synapse, 5, first=10)
    good = 10 if concurrency == 1 else 4
    synapse.add_fault(Fault(status=503, method="PUT", skip=good, times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    assert write_outage_stop(1001).match(report.fatal or ""), report.summary()
    assert report.rollback is None and kept(report.summary(), good), report.summary()
    assert f"run 'totask-manifest apply {report.job_url}' again to send the rest" in report.summary()
    assert len(synapse.requests_to("PUT", r"^/tasks/\d+/annotate_task_data/$")) < 3 * 50, "the outage ran on"


@pytest.mark.parametrize("concurrency", [1, 4])
def test_three_broken_tasks_without_a_project_fail_alone(synapse, files, client, tmp_path, concurrency) -> None:
    """Lines without ``synapse.project``: no check to ask, and 3 broken tasks in a row stopped the run and
    rolled back its good writes (review8 #4). Without a check the row stops the run at ``FRESH_OUTAGE``."""
    _, export = seeded_export(synapse, files, client, tmp_path, 12)
    without_projects(export)
    broken_writes(synapse, sorted(synapse.tasks)[4:7])
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    assert report.fatal is None and report.rollback is None, report.summary()
    assert report.summary().startswith("9 applied, 0 unchanged, 0 conflicts (skipped), 3 failed"), report.summary()


def test_an_outage_without_a_project_is_stopped_at_the_fresh_count(synapse, files, client, tmp_path) -> None:
    """Lines without ``synapse.project`` and the writes after the 2nd answered 500 (each of its 3 tries, the
    fast client's), 8 of them: no check can tell, so ``FRESH_OUTAGE`` failures in a row stop the run, saying
    why no check was asked; the 2 good writes are kept (nothing rolled back: as B, nothing tells an outage)."""
    _, export = seeded_export(synapse, files, client, tmp_path, 20)
    without_projects(export)
    synapse.add_fault(Fault(status=500, method="PUT", skip=2, times=FRESH_OUTAGE * 3))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=1)
    assert report.fatal is not None and report.fatal.startswith(
        f"the Synapse backend is unavailable ({FRESH_OUTAGE} tasks in a row failed, with no project id to ask "
        "whether it answers; last: Synapse answered 500"), report.fatal
    assert report.rollback is None and kept(report.summary(), 2), report.summary()
    assert len(synapse.requests_to("GET", r"^/projects/")) == 1  # the export's, none from the run


@pytest.mark.parametrize("concurrency", [1, 4, 32])
def test_a_write_outage_answered_500_after_good_writes_is_stopped_keeping_them(synapse, files, client, tmp_path,
                                                                               concurrency) -> None:
    """The first 10 PUTs answered, every later one 500 (a database refusing writes: Django answers 500), reads
    and the check answered: a 500 restarted B's count, so every write was tried to the end, the job left
    half-applied (review12 #1). Stopped; the 10 answered writes kept, nothing rolled back."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 60)
    synapse.add_fault(Fault(status=500, method="PUT", skip=10, times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    stop = write_outage_stop(pid).match(report.fatal or "")
    assert stop is not None and int(stop[1]) >= FRESH_OUTAGE, report.summary()
    assert report.rollback is None and kept(report.summary(), 10), report.summary()
    if concurrency == 1:  # at 32 the writes of the lines sent while the first ones were out all go
        assert len(synapse.requests_to("PUT")) < 10 + 3 * 50, "every write was tried to the end"
