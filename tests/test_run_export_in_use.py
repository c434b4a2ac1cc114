"""While ``run`` exports its tasks it holds the job folder's lease and no ``job.json`` exists yet.
Every other command given that folder then said something of its own (all exit 2): ``apply`` and
``resume`` "is not a job folder: ... a job is starting there", ``rollback`` "neither job.json nor
a Synapse journal found" (no holder named), ``evaluate`` "no job.json and no
manifests/output/output.manifest", where ``run`` itself said the folder was in use. They all say
it is in use now, naming the run, as a real ``run`` held in its export shows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli
from tests.test_run_lease import _run, stop, wait_for_export
from totask_manifest.testing.synapse_server import SynapseServer


@pytest.mark.slow
def test_every_command_says_a_job_folder_a_run_exports_into_is_in_use(tmp_path: Path) -> None:
    server = SynapseServer(tokens=("tok-1",)).start()
    run = None
    said = {}
    try:
        project = server.seed(50)
        server.latency = 0.3
        params = tmp_path / "a.json"
        params.write_bytes(orjson.dumps({"name": "Run_Two", "project": project, "agent": 1, "method": "file",
                                         "target_specification_name": "annotation_data"}))
        out, job = tmp_path / "out", tmp_path / "out" / "run-two"
        run = _run(params, out, server)
        wait_for_export(run, job)
        server.held = True  # the export waits until every command has been answered
        env = {"SYNAPSE_HOST": server.url, "SYNAPSE_ACCESS_TOKEN": "tok-1"}
        for command in ("apply", "resume", "rollback", "evaluate", "status"):
            said[command] = run_cli(command, str(job), env=env)
        exporting = run.poll() is None and not (job / "job.json").exists()
    finally:
        stop(run, server)
    assert exporting, "the run's export ended before the commands were answered: nothing tested"
    for command, result in said.items():
        err = result.stderr
        assert result.returncode == 2, (command, err)
        assert f"job {job} is in use by pid {run.pid} on host" in err and "(run, holder" in err, (command, err)
        assert "not a job folder" not in err and "Traceback" not in err, (command, err)
