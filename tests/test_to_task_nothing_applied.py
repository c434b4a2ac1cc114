"""A ToTask run in which Synapse refused every write (a 400 to each submit) said ``SUCCEEDED``
(``success=0, failed=N``), and ``run`` exited 0, though no task got a label: ``apply`` on the same
job says ``nothing was applied: each of the N tasks failed`` and exits 1, and an annotation
that labels nothing already makes the run ``FAILED``. Such a run is now ``FAILED`` with apply's
reason, its counts and failures kept, the Synapse job told so, and ``run`` exits 1.
"""

from __future__ import annotations

import orjson
import yaml

from totask_manifest import ToTaskAction
from totask_manifest._cli import main
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _params(pid: int) -> dict:
    return {"name": "Refused", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


def test_a_run_whose_every_write_was_refused_failed(synapse, files, tmp_path, monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 3)
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))
    synapse.add_fault(Fault(status=400, method="PUT", path="annotate_task_data", times=None))

    result = ToTaskAction(params=_params(pid), output_root=str(tmp_path)).start()

    assert result["status"] == "FAILED", result
    assert "nothing was applied: each of the 3 tasks failed" in result["message"]
    assert (result["total_tasks"], result["success_count"], result["failed_count"]) == (3, 0, 3)
    assert sorted(f["task_id"] for f in result["failures"]) == sorted(t["id"] for t in synapse.project_tasks(pid))
    assert all("400 Bad Request" in f["error"] for f in result["failures"])
    final = synapse.job_patches[job_id][-1]
    assert final["status"] == "FAILED" and final["result"]["error"] == result["message"]
    assert all(t["data"] == {} for t in synapse.project_tasks(pid))


def test_run_exits_1_when_nothing_was_applied_and_0_when_one_task_was(synapse, files, tmp_path, capsys) -> None:
    pid = seed_tasks(synapse, files, 2)
    tasks = sorted(t["id"] for t in synapse.project_tasks(pid))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(_params(pid)))
    fault = synapse.add_fault(Fault(status=400, method="PUT", path=f"^/tasks/{tasks[0]}/", times=None))

    assert main(["run", str(params_file), "--output", str(tmp_path / "one")]) == 0  # one written: a success
    assert orjson.loads(capsys.readouterr().out)["success_count"] == 1

    synapse.faults.remove(fault)
    synapse.add_fault(Fault(status=400, method="PUT", times=None))
    for t in tasks:
        synapse.tasks[t]["data"] = {"extra": {"other": True}}
    params_file.write_text(yaml.safe_dump({**_params(pid), "name": "Refused_All"}))
    assert main(["run", str(params_file), "--output", str(tmp_path / "all")]) == 1
    result = orjson.loads(capsys.readouterr().out)
    assert result["status"] == "FAILED" and result["message"].startswith("nothing was applied: each of the 2")
