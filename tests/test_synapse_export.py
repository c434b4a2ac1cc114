"""``export``: tasks to manifest lines, filters, limits, the guide's fatal errors, any fsspec URL."""

from __future__ import annotations

import asyncio

import fsspec
import orjson
import pytest

from tests.jobs_helpers import run_cli
from totask_manifest._cli import main
from totask_manifest._errors import FatalSynapseError, UsageError
from totask_manifest._synapse.client import AsyncSynapseClient
from totask_manifest._synapse.export import export_tasks, parse_filters
from totask_manifest._synapse.listing import Listing
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.taskdata import data_hash
from totask_manifest.testing.builders import TOKEN, fast_client, seed_tasks, token_headers
from totask_manifest.testing.recording import json_response

pytest_plugins = ["totask_manifest.testing.fixtures"]


def read_records(path) -> list[dict]:
    return [orjson.loads(line) for line in open(path, "rb").read().splitlines()]


def test_export_writes_one_line_per_task_with_the_synapse_key(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 5)
    tasks = synapse.project_tasks(pid)
    tasks[1]["data"] = {"annotations": {"image_1": []}, "extra": {"note": "é"}}
    out = tmp_path / "tasks.manifest"
    result = export_tasks(pid, str(out), client=client)
    assert result.exported == 5 and result.skipped == []
    records = read_records(out)
    assert [r["synapse"]["task_id"] for r in records] == sorted(t["id"] for t in tasks)
    for record, task in zip(records, sorted(tasks, key=lambda t: t["id"]), strict=True):
        unit = synapse.data_units[task["data_unit"]]
        assert record["source-ref"] == unit["files"]["image_1"]["url"]
        assert set(record) == {"source-ref", "synapse"}
        syn = record["synapse"]
        assert syn["project"] == pid and syn["data_unit_id"] == unit["id"]
        assert syn["files"]["annotation_data"] == {"url": unit["files"]["annotation_data"]["url"], "is_primary": False,
                                                   "file_name_original": unit["files"]["annotation_data"]["file_name_original"]}
        assert syn["files"]["image_1"]["is_primary"] is True
        assert syn["data_hash"] == data_hash(task["data"])
    assert records[1]["synapse"]["data_hash"] != records[0]["synapse"]["data_hash"]
    # the files host is never contacted by export, so it cannot have seen a token
    assert files.requests == [] and token_headers(synapse.requests) == synapse.requests


def test_filters_are_anded_on_the_backend(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 8)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    layout = [("pending", None, "2025-01-05"), ("pending", 7, "2025-01-10"), ("in_progress", None, "2025-01-20"),
              ("done", None, "2025-01-12"), ("pending", None, "2025-02-01"), ("in_progress", 7, "2025-01-15"),
              ("pending", None, "2024-12-31"), ("in_progress", None, "2025-01-31")]
    for task, (status, assignee, created) in zip(tasks, layout, strict=True):
        task.update(status=status, assignee=assignee, created_at=created + "T08:00:00Z")
    out = tmp_path / "f.manifest"
    code = main(["export", "--project", str(pid), "--filter", "status__in=pending,in_progress", "--filter", "assignee=null",
                 "--filter", "created_at__gte=2025-01-01", "--filter", "created_at__lte=2025-01-31", "-o", str(out)])
    assert code == 0
    got = [r["synapse"]["task_id"] for r in read_records(out)]
    assert got == [tasks[0]["id"], tasks[2]["id"], tasks[7]["id"]]
    [listing] = synapse.requests_to("GET", "^/sdk/tasks/$")
    assert listing.query["status__in"] == "pending,in_progress" and listing.query["assignee__isnull"] == "true"
    assert listing.query["fields"] == "id,status,assignee,created_at" and listing.query["project"] == str(pid)
    assert len(listing.query_items) == len(listing.query)  # each key sent once


def test_parse_filters_rejects_what_export_owns() -> None:
    assert parse_filters(["status=pending", "assignee=None", "data_collection=4"]) == {
        "status": "pending", "assignee": None, "data_collection": "4"}
    assert parse_filters(["status__in=a, b"]) == {"status__in": ["a", "b"]}
    assert parse_filters(["assignee="]) == {"assignee": None}
    for bad in (["project=3"], ["fields=data"], ["status"], ["=x"], ["status=a", "status=b"], ["status__in=,"]):
        with pytest.raises(UsageError):
            parse_filters(bad)


def layout_tasks(synapse, pid: int) -> list[dict]:
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    for task, (status, assignee) in zip(tasks, [("pending", None), ("pending", 7), ("in_progress", None),
                                                 ("done", None), ("review", None), ("in_progress", 3)], strict=True):
        task.update(status=status, assignee=assignee)
    return tasks


def test_filters_mean_what_the_guide_says(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 6)
    tasks = layout_tasks(synapse, pid)
    out = tmp_path / "f.manifest"
    result = export_tasks(pid, str(out), filters={"assignee": None, "status": ["pending", "in_progress"]}, client=client)
    assert [r["synapse"]["task_id"] for r in read_records(out)] == [tasks[0]["id"], tasks[2]["id"]]
    assert result.unmatched == {}
    listing = synapse.requests_to("GET", "^/sdk/tasks/$")[-1]
    assert ("assignee__isnull", "true") in listing.query_items and ("status__in", "pending,in_progress") in listing.query_items
    assert "assignee" not in listing.query and "status" not in listing.query


@pytest.mark.parametrize("ignored", ["status__in", "assignee__isnull"])
def test_a_filter_the_backend_ignored_is_reported_and_its_tasks_not_exported(synapse, files, client, tmp_path,
                                                                                caplog, ignored) -> None:
    pid = seed_tasks(synapse, files, 6)
    tasks = layout_tasks(synapse, pid)
    synapse.ignored_filters = {ignored}
    out = tmp_path / "f.manifest"
    result = export_tasks(pid, str(out), filters={"assignee": None, "status": ["pending", "in_progress"]}, client=client)
    assert [r["synapse"]["task_id"] for r in read_records(out)] == [tasks[0]["id"], tasks[2]["id"]]
    if ignored == "status__in":
        assert result.unmatched == {"status=pending,in_progress": 2}  # done and review
    else:
        assert result.unmatched == {"assignee=null": 2}  # assigned to 7 and to 3
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("warning: the backend did not apply filter ") and "2 listed tasks" in warning
    # the skipped tasks were never fetched
    fetched = {int(r.path.split("/")[2]) for r in synapse.requests_to("GET", r"^/tasks/\d+/$")}
    assert fetched == {tasks[0]["id"], tasks[2]["id"]}


def test_an_ignored_filter_that_leaves_nothing_is_fatal_and_the_cli_names_it(synapse, files, tmp_path, capsys,
                                                                            caplog) -> None:
    pid = seed_tasks(synapse, files, 6)
    layout_tasks(synapse, pid)
    synapse.ignored_filters = {"status"}
    out = tmp_path / "f.manifest"
    assert main(["export", "--project", str(pid), "--filter", "status=archived", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "No tasks found matching filters (status=archived)" in err and "listed 6 tasks, none matching" in err
    assert "did not apply filter status=archived: 6 listed tasks" in err and not out.exists()
    synapse.ignored_filters = {"status__in"}
    assert main(["export", "--project", str(pid), "--filter", "status__in=pending,done", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "the backend did not apply filter status__in=pending,done: 3 listed tasks" in caplog.text
    assert "exported 3 tasks" in captured.out


def test_task_matches_checks_what_the_task_carries() -> None:
    from totask_manifest._synapse.export import task_matches

    task = {"id": 1, "status": "pending", "assignee": {"id": 7, "name": "x"}, "created_at": "2025-01-31T08:00:00Z",
            "data_unit": 12, "is_locked": False, "score": 0.5}
    assert task_matches(task, "assignee", 7) and task_matches(task, "assignee", "7")
    assert task_matches(task, "assignee", None) is False and task_matches(task, "assignee__isnull", True) is False
    assert task_matches(task, "status", ["done", "pending"]) and task_matches(task, "status__in", "a,pending")
    assert task_matches(task, "created_at__lte", "2025-01-31") and task_matches(task, "created_at__gte", "2025-01-31")
    assert task_matches(task, "created_at__lt", "2025-01-30") is False
    assert task_matches(task, "data_unit__id", "12") and task_matches(task, "is_locked", "false")
    assert task_matches(task, "score__gt", 0.5) is False and task_matches(task, "score__gte", "0.5")
    assert task_matches(task, "reviewer", None) is None  # not carried: not checked
    assert task_matches(task, "status__icontains", "PEN") is None  # a lookup not checked here


def test_limit_and_pagination(synapse, files, tmp_path) -> None:
    pid = synapse.seed(27)
    c = fast_client(synapse, page_size=10)
    try:
        all_out, some_out = tmp_path / "all.manifest", tmp_path / "some.manifest"
        assert export_tasks(pid, str(all_out), client=c).exported == 27
        before = len(synapse.requests_to("GET", "^/sdk/tasks/$"))
        assert before == 3
        assert export_tasks(pid, str(some_out), limit=4, client=c).exported == 4
    finally:
        c.close()
    assert len(synapse.requests_to("GET", "^/sdk/tasks/$")) == before + 1  # stopped after the first page
    assert [r["synapse"]["task_id"] for r in read_records(some_out)] == [
        r["synapse"]["task_id"] for r in read_records(all_out)][:4]


def test_files_as_a_list_and_from_the_data_unit(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    synapse.files_as_list = True
    synapse.expand_files_in_task = False  # the task detail carries no files: export asks the data unit
    out = tmp_path / "t.manifest"
    export_tasks(pid, str(out), client=client)
    records = read_records(out)
    assert all(r["source-ref"].endswith(".png") for r in records)
    assert all(set(r["synapse"]["files"]) == {"image_1", "annotation_data"} for r in records)
    assert len(synapse.requests_to("GET", "^/data_units/")) == 2


def test_task_without_files_is_skipped_and_reported(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    victim = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])[1]
    synapse.data_units[victim["data_unit"]]["files"] = {}
    out = tmp_path / "t.manifest"
    result = export_tasks(pid, str(out), client=client)
    assert result.exported == 2
    assert result.skipped == [{"task_id": victim["id"], "reason": "Data unit does not have files", "line": 2}]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-project", "Project not found"),
        ("no-collection", "Project has no data collection"),
        ("no-spec", "Target specification not found"),
        ("no-tasks", "No tasks found matching filters"),
    ],
)
def test_fatal_errors_exit_non_zero_and_write_nothing(synapse, files, tmp_path, capsys, case, message) -> None:
    pid = synapse.seed(2)
    args = ["export", "--project", str(pid), "-o", str(tmp_path / "out.manifest")]
    if case == "no-project":
        args[2] = "424242"
    elif case == "no-collection":
        synapse.projects[pid]["data_collection"] = None
    elif case == "no-spec":
        args += ["--target-specification-name", "coco_json"]
    else:
        args += ["--filter", "status=done"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.manifest").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left behind either
    with pytest.raises(FatalSynapseError, match=message):
        export_tasks(int(args[2]), str(tmp_path / "again.manifest"),
                     target_specification_name="coco_json" if case == "no-spec" else None,
                     filters={"status": "done"} if case == "no-tasks" else None)


@pytest.mark.slow
def test_export_to_s3(synapse, files, client, s3) -> None:
    pid = seed_tasks(synapse, files, 3)
    bucket = s3.new_bucket()
    url = f"{bucket}/exports/tasks.manifest"
    assert export_tasks(pid, url, client=client).exported == 3
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    lines = fs.cat_file(url).splitlines()
    assert len(lines) == 3 and orjson.loads(lines[0])["synapse"]["project"] == pid
    assert [p for p in fs.ls(f"{bucket}/exports", detail=False) if ".tmp" in p] == []


def test_an_unwritable_output_is_refused_before_anything_is_fetched(synapse, files, tmp_path, capsys) -> None:
    pid = seed_tasks(synapse, files, 2)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["export", "--project", str(pid), "-o", str(blocker / "sub" / "out.manifest")]) != 0
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
    assert synapse.requests == []


def test_an_immutable_output_folder_is_refused_before_anything_is_fetched(synapse, files, immutable_folder,
                                                                         capsys) -> None:
    """``os.access`` says yes to root in a ``chattr +i`` folder: the fetch was spent before the
    write failed. A file made there (and removed) is the test."""
    pid = seed_tasks(synapse, files, 2)
    assert main(["export", "--project", str(pid), "-o", str(immutable_folder / "out.manifest")]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith(f"cannot write {immutable_folder / 'out.manifest'}: {immutable_folder} is not a "
                                "writable folder (Operation not permitted)"), err
    assert synapse.requests == [] and list(immutable_folder.iterdir()) == []


def test_atomic_writer_reports_an_os_error_as_a_storage_error(tmp_path) -> None:
    from totask_manifest._errors import StorageError
    from totask_manifest._storage import AtomicWriter

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot write"), AtomicWriter(str(blocker / "x.manifest")) as f:
        f.write(b"never")


def test_a_refused_token_names_what_to_check_in_one_line(synapse, files, tmp_path, capsys) -> None:
    """It said only Synapse's answer; a missing token's error names the variables, so does this."""
    from totask_manifest.testing.builders import TOKEN

    pid = synapse.seed(1)
    synapse.revoke(TOKEN)
    assert main(["export", "--project", str(pid), "-o", str(tmp_path / "out.manifest")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "401 Unauthorized" in err, err
    assert "(check the token: SYNAPSE_ACCESS_TOKEN, SYNAPSE_PLUGIN_RUN_USER_TOKEN or the access_token" in err
    assert TOKEN not in err and not (tmp_path / "out.manifest").exists()


@pytest.mark.slow
def test_the_command_says_each_thing_once(synapse, files, tmp_path) -> None:
    """A real process: the summary, a skipped task and an ignored filter each appear once
    (the library's log and the command's own print used to say the same thing twice)."""
    import os
    import subprocess
    import sys

    pid = seed_tasks(synapse, files, 6)
    tasks = layout_tasks(synapse, pid)
    synapse.data_units[tasks[0]["data_unit"]]["files"] = {}
    synapse.ignored_filters = {"status__in"}
    out = tmp_path / "once.manifest"
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "export", "--project", str(pid), "--filter",
                        "status__in=pending,done", "-o", str(out)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    assert text.count("exported ") == 1 and r.stdout.startswith("exported 2 tasks"), text
    assert text.count("did not apply filter status__in=pending,done") == 1, text
    assert text.count(f"task {tasks[0]['id']}") == 1 and "Data unit does not have files" in r.stderr, text


@pytest.mark.slow
def test_an_unreachable_synapse_host_is_an_io_error_exit_2(tmp_path, monkeypatch) -> None:
    """Nothing answered at all (connection refused): one line, exit 2 as for any I/O error."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, SYNAPSE_HOST=f"http://127.0.0.1:{port}", SYNAPSE_ACCESS_TOKEN="unreachable-test-token")
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "export", "--project", "1", "-o",
                        str(tmp_path / "e.manifest")], capture_output=True, text=True, timeout=120, env=env)
    assert "Traceback" not in r.stderr and r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("totask-manifest export: error: Synapse did not answer GET /projects/1/")
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "e.manifest").exists()


@pytest.mark.slow
def test_what_a_killed_export_left_is_removed_by_the_next_one(synapse, files, tmp_path) -> None:
    """``kill -9`` of a real export while it fetches the tasks' data: its hidden temporary
    (``.tmp-tasks.manifest-*``, holding what it had flushed of a large project) stayed for good
    beside the manifest, through every later export. The next export to that path removes it."""
    import os
    import signal

    from tests.jobs_helpers import popen_cli

    pid = seed_tasks(synapse, files, 300)
    out = tmp_path / "tasks.manifest"
    box: dict = {"fetched": 0}

    def kill_mid_fetch(_server, rec) -> None:
        if rec.method == "GET" and rec.path.startswith("/tasks/") and box.get("proc") is not None:
            box["fetched"] += 1
            if box["fetched"] == 100:
                os.kill(box["proc"].pid, signal.SIGKILL)

    synapse.hooks.append(kill_mid_fetch)
    box["proc"] = popen_cli("export", "--project", str(pid), "-o", str(out))
    assert box["proc"].wait(timeout=120) == -signal.SIGKILL, box["proc"].stderr.read()
    synapse.hooks.clear()
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".tmp-tasks.manifest-"), left
    stamp = (tmp_path / left[0]).stat().st_mtime - 60  # the next export a minute later, without waiting one:
    os.utime(tmp_path / left[0], (stamp, stamp))  # a temporary seconds old may be a live writer's not locked yet
    assert main(["export", "--project", str(pid), "-o", str(out)]) == 0
    assert len(read_records(out)) == 300
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def pending_tasks(synapse, n: int) -> tuple[int, list[int]]:
    pid = synapse.seed(n)
    ids = sorted(t["id"] for t in synapse.project_tasks(pid))
    for tid in ids:
        synapse.tasks[tid]["status"] = "pending"
    return pid, ids


def task_ids(path) -> list[int]:
    return [r["synapse"]["task_id"] for r in read_records(path)]


def ten_leave_at_page_two(synapse, ids: list[int]) -> None:
    """The first ten tasks leave the filter (``status=pending``) as page 2 of a listing is read."""

    def leave(server, rec) -> None:
        if rec.path.startswith("/sdk/tasks/") and rec.query.get("page") == "2":
            for tid in ids[:10]:
                server.tasks[tid]["status"] = "done"

    synapse.hooks.append(leave)


def test_a_listing_that_changes_while_it_is_read_is_listed_again(synapse, tmp_path) -> None:
    """Tasks leaving the filter (``status=pending``) while the pages are read shift the later
    pages forward: as many pending tasks as left were never listed, and export only warned to
    export again. It lists again, adding the tasks the first listing missed, until a listing
    finds nothing new: every task once, in the order first listed, and no warning."""
    pid, ids = pending_tasks(synapse, 300)

    ten_leave_at_page_two(synapse, ids)
    out = tmp_path / "out.manifest"
    done = run_cli("export", "--project", str(pid), "--filter", "status=pending", "-o", str(out))
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert ("the task listing changed while it was read (the backend counted 300 tasks, then 290): listing "
            "again (2 of at most 4 listings), to export the tasks it missed") in err, err
    assert ("the task listing had changed (listing 2 found 10 tasks the earlier listings had not): listing again "
            "(3 of at most 4 listings)") in err and "warning" not in err and "left out" not in err
    # the ten that left were pending when listed: exported; ids[100:110], shifted past page 2, come last
    assert task_ids(out) == ids[:100] + ids[110:] + ids[100:110]
    assert len(synapse.requests_to("GET", "^/sdk/tasks/$")) == 3 * 3  # 3 listings of 3 pages (300, then 290)
    assert len(synapse.requests_to("GET", r"^/tasks/\d+/$")) == 300  # each task's details fetched once
    assert done.stdout.startswith("exported 300 tasks")


def test_a_listing_that_keeps_changing_is_listed_a_bounded_number_of_times(synapse, tmp_path) -> None:
    """Ten more tasks leave the filter at every listing's second page: export lists four times,
    never writes a task twice, and only then warns, naming how many listings it made."""
    pid, ids = pending_tasks(synapse, 300)
    left = iter(ids)

    def ten_more_leave_at_each_page_two(server, rec) -> None:
        if rec.path.startswith("/sdk/tasks/") and rec.query.get("page") == "2":
            for tid in [next(left) for _ in range(10)]:
                server.tasks[tid]["status"] = "done"

    synapse.hooks.append(ten_more_leave_at_each_page_two)
    out = tmp_path / "out.manifest"
    result = export_tasks(pid, str(out), filters={"status": "pending"}, client=fast_client(synapse))
    got = task_ids(out)
    assert len(got) == len(set(got)) == result.exported
    assert result.listings == 4 and result.listing_changed == (300, 260)
    assert result.unmatched_warnings() == [
        "the task listing was still changing after 4 listings (the backend counted 300 tasks at first, 260 at the "
        "end): tasks may have been left out; export again to pick them up"]
    assert len(synapse.requests_to("GET", "^/sdk/tasks/$")) == 4 * 3


def test_a_listing_shifted_back_writes_no_task_twice(synapse, tmp_path) -> None:
    """Tasks entering the filter before the reader's page (a status set back to pending) shift
    the later pages back: the first listing lists tasks twice, which export wrote twice. Each is
    written once, and the tasks that entered are exported by the second listing."""
    pid, ids = pending_tasks(synapse, 250)
    for tid in ids[:20]:
        synapse.tasks[tid]["status"] = "done"

    def twenty_come_back_at_page_two(server, rec) -> None:
        if rec.path.startswith("/sdk/tasks/") and rec.query.get("page") == "2":
            for tid in ids[:20]:
                server.tasks[tid]["status"] = "pending"

    synapse.hooks.append(twenty_come_back_at_page_two)
    out = tmp_path / "out.manifest"
    result = export_tasks(pid, str(out), filters={"status": "pending"}, client=fast_client(synapse))
    assert task_ids(out) == ids[20:] + ids[:20]
    assert result.exported == 250 and result.listings == 3 and result.listing_changed is None


def test_a_limit_reached_ends_the_listing(synapse, tmp_path) -> None:
    """With ``--limit`` reached in the first listing nothing is listed again, nor warned."""
    pid, ids = pending_tasks(synapse, 300)

    ten_leave_at_page_two(synapse, ids)
    out = tmp_path / "out.manifest"
    result = export_tasks(pid, str(out), filters={"status": "pending"}, limit=150, client=fast_client(synapse))
    assert task_ids(out) == ids[:100] + ids[110:160]
    assert result.listings == 1 and result.listing_changed is None and result.unmatched_warnings() == []


def page_one_short(synapse, monkeypatch, listings: int | None = None, drop: int = 1) -> None:
    """The first page of the task listing comes back ``drop`` tasks short, its ``count`` unchanged
    (a page that shifted under an edit, or a backend's own slip), in the first ``listings`` listings
    (None: every one)."""
    paginate, served = synapse._paginate, {"short": 0}

    def short_page_one(request, items, render=None):
        response = paginate(request, items, render)
        if request.path != "/sdk/tasks/" or request.query.get("page", "1") != "1":
            return response
        if listings is not None and served["short"] >= listings:
            return response
        served["short"] += 1
        body = orjson.loads(response.body)
        body["results"] = body["results"][:-drop]
        return json_response(body)

    monkeypatch.setattr(synapse, "_paginate", short_page_one)


def test_a_listing_short_every_time_stops_naming_the_count_and_what_was_listed(synapse, monkeypatch,
                                                                                  tmp_path) -> None:
    """Page 1 holds one task fewer than it should and ``count`` stays 250: the task it left out was
    never listed, and export wrote the others and said it succeeded. It lists again once; short
    again, it stops in one line naming the project and both numbers, exit 1, nothing written."""
    pid, _ = pending_tasks(synapse, 250)
    page_one_short(synapse, monkeypatch)
    out = tmp_path / "out.manifest"
    done = run_cli("export", "--project", str(pid), "--filter", "status=pending", "-o", str(out))
    assert done.returncode == 1, done.stderr
    assert ("the task listing came back short (the backend counted 250 tasks, 249 were listed): listing again "
            "(2 of at most 4 listings), to export the tasks it missed") in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"totask-manifest export: error: the task listing of project {pid} came back short after 2 listings "
                    "(the backend counted 250 tasks, 249 were listed): tasks would have been left out, so nothing "
                    "was exported; export again to pick them up"), done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []
    assert len(synapse.requests_to("GET", "^/sdk/tasks/$")) == 2 * 3


def test_a_listing_short_once_is_listed_again_and_finds_the_task(synapse, monkeypatch, tmp_path) -> None:
    """A page short once (it shifted under an edit): the next listing lists the task it left out,
    exported last, and a third confirms nothing more is missing; no warning."""
    pid, ids = pending_tasks(synapse, 250)
    page_one_short(synapse, monkeypatch, listings=1)
    out = tmp_path / "out.manifest"
    result = export_tasks(pid, str(out), filters={"status": "pending"}, client=fast_client(synapse))
    assert task_ids(out) == ids[:99] + ids[100:] + [ids[99]]
    assert result.exported == 250 and result.listings == 3 and result.listing_changed is None
    assert result.unmatched_warnings() == []


def test_a_task_listed_and_counted_twice_in_every_listing_is_no_short_listing(synapse, monkeypatch, tmp_path,
                                                                                caplog) -> None:
    """A filter through a join without ``distinct()``: every listing holds a task twice and counts it
    twice. Its distinct tasks (5) against its count (6) called it short, and every export stopped
    after 3 listings ("tasks would have been left out") though every task was listed."""
    pid = synapse.seed(5)
    paginate = synapse._paginate

    def twice(request, items, render=None):
        response = paginate(request, items, render)
        if request.path != "/sdk/tasks/":
            return response
        body = orjson.loads(response.body)
        body["results"].append(body["results"][0])
        body["count"] += 1
        return json_response(body)

    monkeypatch.setattr(synapse, "_paginate", twice)
    result = export_tasks(pid, str(tmp_path / "out.manifest"), client=fast_client(synapse))
    assert result.exported == 5 and result.listings == 2 and result.listing_changed is None, result
    assert (f"the task listing of project {pid} lists 1 task again in each listing, and counts them (the backend "
            "counted 6 tasks, 5 are distinct): every task was listed, each exported once") in caplog.text


def test_a_listing_of_one_listing_short_stops_at_once(synapse, monkeypatch, tmp_path) -> None:
    """With no listing left to make, a short one stops as a second short one does (``Listing``'s
    ``passes``: the last listing short is never taken for a whole one)."""
    pid, _ = pending_tasks(synapse, 5)
    page_one_short(synapse, monkeypatch, drop=2)

    async def list_once() -> list[int]:
        async with AsyncSynapseClient(SynapseSettings(host=synapse.url, access_token=TOKEN)) as aio:
            return [tid async for tid in Listing(aio, {"project": pid}, {}, passes=1).ids()]

    with pytest.raises(FatalSynapseError, match=f"^the task listing of project {pid} came back short after 1 "
                       r"listing \(the backend counted 5 tasks, 3 were listed\)"):
        asyncio.run(list_once())


def test_more_tasks_listed_than_the_count_are_all_exported(synapse, monkeypatch, tmp_path) -> None:
    """A ``count`` below the tasks listed, none listed twice: every task is exported, as before
    (a task listed twice is what says the listing shifted back)."""
    pid, ids = pending_tasks(synapse, 6)
    paginate = synapse._paginate

    def count_one_low(request, items, render=None):
        body = orjson.loads(paginate(request, items, render).body)
        return json_response({**body, "count": body["count"] - 1})

    monkeypatch.setattr(synapse, "_paginate", count_one_low)
    out = tmp_path / "out.manifest"
    result = export_tasks(pid, str(out), client=fast_client(synapse))
    assert task_ids(out) == ids and result.listings == 1 and result.listing_changed is None
