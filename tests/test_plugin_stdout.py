"""What a plugin prints does not reach the command's stdout: a script reading the job's summary
read the plugin's text among it. The plugin's own text goes to
stderr, from its module, ``check()``, ``__init__``, ``annotate_batch``, a thread it starts, a
subprocess it runs and a ``--converter`` hook; the command's stdout is the summary alone. Real CLI
subprocesses, plugins the test writes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.jobs_helpers import REPO, plugin_job_argv
from totask_manifest import _plugin_output
from totask_manifest._plugin_output import plugin_code, stdout_routed

PLUGIN = '''
import os
import sys
import threading

from totask_manifest import BatchAnnotator, Labeled

print("chatty: imported")


class Chatty(BatchAnnotator):
    name = "chatty"
    batch_size = 2

    @classmethod
    def check(cls, options, task_type):
        print("chatty: check")

    def __init__(self, context):
        super().__init__(context)
        print("chatty: init", flush=True)

    def annotate_batch(self, items):
        print(f"chatty: batch of {len(items)}")
        sys.stdout.buffer.write(b"chatty: bytes\\n")
        worker = threading.Thread(target=print, args=("chatty: from a thread",))
        worker.start()
        worker.join()
        os.system("echo chatty: from a subprocess")
        return [Labeled(0, {"class-name": "a", "confidence": 0.5}) for _ in items]

    def close(self):
        print("chatty: close")


class Convert:
    def convert_data_from_file(self, primary_file_url, primary_file_name, data_file_url, data_file_name,
                               task_data=None):
        print("chatty: converted", data_file_name)
        return {"annotations": {"image_1": [{"id": "a000000001", "tool": "classification",
                                             "classification": {"class": "a"}}]},
                "annotationsData": {"image_1": [{"id": "a000000001"}]}}
'''


def _annotate(tmp_path: Path, *method: str) -> subprocess.CompletedProcess:
    return subprocess.run(plugin_job_argv(tmp_path, "chatty", PLUGIN, *method),
                          env=dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}"), capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)


def _summary(tmp_path: Path) -> str:
    job = tmp_path / "out" / "j"
    return (f"job {job}: COMPLETED\nmetrics: total=3 success=3 failed=0 routed=0 stand_by=0\n"
            f"output manifest: {job / 'manifests/output/output.manifest'}\n")


def test_a_method_plugins_prints_go_to_stderr_and_stdout_is_the_summary(tmp_path: Path) -> None:
    r = _annotate(tmp_path, "--method", "chatty:Chatty")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == _summary(tmp_path), r.stdout
    for said in ("imported", "check", "init", "batch of 2", "batch of 1", "bytes", "from a thread",
                 "from a subprocess", "close"):
        assert f"chatty: {said}\n" in r.stderr, (said, r.stderr)


def test_a_converters_prints_go_to_stderr(tmp_path: Path) -> None:
    r = _annotate(tmp_path, "--method", "file", "--url-key", "label-ref", "--converter", "chatty:Convert",
                  "--allow-root", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == _summary(tmp_path), r.stdout
    # the hooks run in threads at once: their prints may interleave, word by word
    assert "chatty: imported\n" in r.stderr and r.stderr.count("chatty: converted") == 3, r.stderr
    assert all(f"l{i}.json" in r.stderr for i in range(3)), r.stderr
    # the hooks' to_thread pool is closed with its idle threads ended, not taken for the method's own
    assert "running after close()" not in r.stderr, r.stderr


def test_a_thread_started_by_plugin_code_prints_to_stderr_after_it_returned(monkeypatch) -> None:
    """A plugin's thread still running once its code returned (left after ``close()``) writes
    to stderr too; the command's own writes, in the same process, reach stdout."""
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    go = threading.Event()
    with stdout_routed():
        with plugin_code():
            late = threading.Thread(target=lambda: (go.wait(30), print("plugin: late")))
            late.start()
        go.set()
        late.join(30)
        print("command: summary")
    assert sys.stdout is out
    assert out.getvalue() == "command: summary\n" and err.getvalue() == "plugin: late\n"


def test_without_the_cli_plugin_code_leaves_stdout_alone(capsys) -> None:
    """From Python (no ``stdout_routed``) a library does not take its caller's stdout."""
    with plugin_code():
        print("plugin: said")
    assert capsys.readouterr().out == "plugin: said\n"
    assert _plugin_output._saved_fd is None
