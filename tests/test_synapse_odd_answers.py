"""A backend (or a proxy in front of it) that answers 200 with JSON of the wrong shape: a string,
a list where an object was asked for, a page of numbers, an object without the data asked for.
Export, apply and rollback said so in a traceback (``AttributeError: 'str' object has no
attribute 'get'``); apply ``--force`` took a task answered without its ``data`` for a task
holding nothing, journalled that as its previous data and overwrote the task's annotations, so
rollback "restored" nothing over them. Each is now one line naming the request, and nothing is
written.
"""

from __future__ import annotations

import pytest

from totask_manifest._cli import main
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}


@pytest.mark.parametrize(("path", "body", "said"), [
    (r"^/sdk/tasks/", "down for maintenance", "Synapse answered GET /sdk/tasks/ with a JSON string where a page of results was expected"),
    (r"^/sdk/tasks/", [1, 2, 3], "Synapse answered GET /sdk/tasks/ with a JSON number where a listed object was expected"),
    (r"^/sdk/tasks/", {"results": [{"name": "x"}]}, "Synapse listed a task without an id (GET /sdk/tasks/)"),
    (r"^/tasks/\d+/", ["x"], "with a JSON list where an object was expected"),
])
def test_export_of_an_answer_of_the_wrong_shape_is_one_line(synapse, files, tmp_path, capsys, path, body, said) -> None:
    pid = seed_tasks(synapse, files, 3)
    synapse.add_fault(Fault(status=200, method="GET", path=path, body=body, times=None))
    out = tmp_path / "out.manifest"
    assert main(["export", "--project", str(pid), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and TOKEN not in err, err
    assert len(err.strip().splitlines()) == 1 and said in err, err
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing written, no temporary left


@pytest.fixture
def job(synapse, files, client, tmp_path):
    pid = seed_tasks(synapse, files, 4, data=ORIGINAL)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    return pid, make_job(tmp_path, export)


@pytest.mark.parametrize("body", [["x"], "ok", {"id": 1}])
def test_a_forced_apply_never_writes_over_a_task_it_could_not_read(synapse, client, job, body) -> None:
    pid, path = job
    synapse.add_fault(Fault(status=200, method="GET", path=r"^/(sdk/)?tasks/", body=body, times=None))
    report = apply_job(str(path), client=client, force=True)
    assert report.totals["failed"] == 4 and report.totals["applied"] == 0, report.summary()
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))
    assert not synapse.requests_to("PUT")


def test_rollback_of_a_task_answered_with_the_wrong_shape_fails_that_task_in_one_line(synapse, client, job,
                                                                                        capsys) -> None:
    pid, path = job
    assert apply_job(str(path), client=client).totals["applied"] == 4
    synapse.add_fault(Fault(status=200, method="GET", path=r"^/tasks/\d+/", body=["x"], times=1))
    assert main(["rollback", str(path)]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "Traceback" not in text, text
    assert "with a JSON list where an object was expected" in text
    assert "rollback: 3 restored, 0 already as before, 0 changed by someone else (skipped), 1 failed" in text, text
    assert main(["rollback", str(path)]) == 0
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))


@pytest.mark.parametrize("force", [False, True])
def test_rollback_of_a_task_answered_without_its_data_says_so_and_restores_nothing(synapse, client, job, capsys,
                                                                                   force) -> None:
    """A task the backend answers without its ``data`` (a proxy or a permission stripping it) was
    counted 'changed by someone else (skipped)': a conflict, which the user resolves with
    ``--force``, and which ``--force`` overwrote unseen. It is a failure that says what the
    answer lacked, that nothing was restored, and to run rollback again."""
    pid, path = job
    assert apply_job(str(path), client=client).totals["applied"] == 4
    tid = min(t["id"] for t in synapse.project_tasks(pid))
    synapse.add_fault(Fault(status=200, method="GET", path=rf"^/tasks/{tid}/$", body={"id": tid}, times=1))
    applied = len(synapse.requests_to("PUT", rf"^/tasks/{tid}/"))
    assert main(["rollback", str(path), *(["--force"] if force else [])]) == 1
    err = capsys.readouterr()
    text = err.out + err.err
    assert "Traceback" not in text, text
    assert (f"task {tid}: failed (Synapse answered GET /tasks/{tid}/ without the task's data: nothing restored "
            f"(what it holds now is unknown); run rollback again to restore it)") in err.out, text
    assert ("rollback: 3 restored, 0 already as before, 0 changed by someone else (skipped), 1 failed; "
            "1 tasks not restored yet (run rollback again)") in err.err, text
    assert synapse.tasks[tid]["data"] != ORIGINAL and len(synapse.requests_to("PUT", rf"^/tasks/{tid}/")) == applied
    assert main(["rollback", str(path)]) == 0
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))
