"""``status`` of a ToTask run moved to ``.totask-archive/`` said its input had changed. The archived
``job.json`` names the export in the live job folder (``ROOT/<name>/synapse-export.manifest``), which
the next run had replaced with its own export, so ``status`` compared the archived run's checksum
with another run's file: ``changed: the input manifest ... changed since job ... read it``, false. An
input kept inside the job's own folder moves with the folder: ``status`` now reads (and names) the
archived copy, and says the input changed only when that copy did.
"""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction, status
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _params(pid: int) -> dict:
    return {"name": "Archived_Run", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


@pytest.mark.slow
def test_status_of_an_archived_run_checks_its_own_export(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    assert ToTaskAction(params=_params(pid), output_root=str(tmp_path)).start()["status"] == "SUCCEEDED"
    synapse.add_task(pid, synapse.add_data_unit(dict(synapse.data_units[synapse.project_tasks(pid)[0]["data_unit"]]["files"])))
    assert ToTaskAction(params=_params(pid), output_root=str(tmp_path)).start()["status"] == "SUCCEEDED"
    [archived] = list((tmp_path / ".totask-archive").iterdir())
    own_export = archived / "synapse-export.manifest"
    assert own_export.read_bytes() != (tmp_path / "archived-run" / "synapse-export.manifest").read_bytes()

    shown = run_cli("status", str(archived))

    assert shown.returncode == 0, shown.stderr
    assert "changed" not in shown.stdout + shown.stderr, shown.stdout
    assert f"(2 lines, read from its copy {own_export})" in shown.stdout, shown.stdout
    data = status(str(archived))
    assert "input-changed" not in data and data["input"]["read"] == str(own_export)

    # honest both ways: the archived copy edited is said to have changed
    own_export.write_bytes(own_export.read_bytes().replace(b'"task_id"', b'"task_id" ', 1))
    assert status(str(archived))["input-changed"].startswith(f"the input manifest {own_export} changed")
