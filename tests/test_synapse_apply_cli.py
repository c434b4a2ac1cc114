"""``apply`` as a user runs it, a real process against the contract server: what it prints
when the backend answers with an error page, and when the user presses Ctrl-C part way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

#: what nginx answers in front of a backend: an HTML page over several lines
NGINX_400 = (b"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
             b"<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@pytest.fixture
def job(synapse, files, client, tmp_path) -> Path:
    """A project of 6 tasks, exported, labeled by a finished job."""
    pid = seed_tasks(synapse, files, 6)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    return make_job(tmp_path, export)


@pytest.mark.slow
def test_an_error_page_is_one_line_of_its_task(synapse, job) -> None:
    """The page's line breaks went into the task's line: ``task 3: failed (... <html>`` followed
    by the rest of the page on lines of their own, among the other tasks' lines."""
    synapse.add_fault(Fault(status=400, method="PUT", path="annotate_task_data", skip=2, times=1, body=NGINX_400))
    r = run_cli("apply", str(job))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 7 and lines[-1].startswith("5 applied, 0 unchanged, 0 conflicts (skipped), 1 failed"), lines
    failed = [line for line in lines if ": failed (" in line]
    assert len(failed) == 1, lines
    assert ("answered 400 Bad Request to PUT /tasks/" in failed[0]
            and "<html> <head><title>400 Bad Request</title></head> <body>" in failed[0]), failed[0]
