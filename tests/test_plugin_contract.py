"""A plugin that breaks the annotator contract (docs/plugins.md), run as its user runs it: the
job says what the plugin did wrong in one line, ends FAILED (exit 1), labels no line with another
line's outcome and loses none; no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PLUGIN = '''
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from totask_manifest import Annotator, BatchAnnotator, Labeled, Options, option


@dataclass(frozen=True)
class BrokenOptions(Options):
    behave: str = option("ok", help="how the plugin breaks")


class Broken(BatchAnnotator):
    name = "broken"
    Options = BrokenOptions
    batch_size = 4

    def annotate_batch(self, items):
        behave = self.options.behave
        if behave == "exit":
            sys.exit(3)
        if behave == "thread":
            threading.Thread(target=time.sleep, args=(3600,), name="plugin-sleeper").start()
        if behave in ("raise", "raise-close"):
            raise RuntimeError("no model loaded")
        if behave == "thread-raises" and items[0].index >= 4:
            worker = threading.Thread(target=self._load, name="plugin-loader")
            worker.start()
            worker.join()
        out = []
        for item in items:
            if behave == "type":
                out.append("nope")
            elif behave == "bytes":
                out.append(Labeled(0, {"class-name": b"cat"}))
            else:
                out.append(Labeled(item.index % 2, {"class-name": "cat"}))
        if behave == "short":
            del out[1]  # the outcome of the second item dropped: the rest would shift up a line
        if behave == "none":
            return None  # a return forgotten
        return out

    def _load(self):
        raise OSError("no weights")

    def close(self):
        import os

        if self.options.behave in ("close", "raise-close"):
            raise RuntimeError("pool stuck with key " + os.environ.get("SYNAPSE_ACCESS_TOKEN", ""))
        if self.options.behave == "close-thread":  # a writer thread that flushes as it closes
            flusher = threading.Thread(target=self._flush, name="plugin-flusher")
            flusher.start()
            flusher.join()

    def _flush(self):
        raise OSError("disk full")


class Plain(Annotator):
    """``annotate`` itself, yielding what the option says."""

    name = "plain"
    Options = BrokenOptions

    def annotate(self, items):
        for item in items:
            outcome = Labeled(0, {"class-name": "cat"})
            if self.options.behave == "bare":
                yield outcome
            elif self.options.behave != "drop" or item.index != 2:
                yield item, outcome
            if self.options.behave == "twice":
                yield item, outcome
'''


#: in the environment of the plugin's runs: a close() that quotes it must not show it
SECRET = "wJalrXUtnFEMI0K7MDENGbPxRfiCYzEXAMPLEKEY"


@pytest.fixture
def plugin_job(tmp_path):
    (tmp_path / "pkg" / "brokenplug").mkdir(parents=True)
    (tmp_path / "pkg" / "brokenplug" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "brokenplug" / "mod.py").write_text(PLUGIN)
    manifest = tmp_path / "in.manifest"
    manifest.write_text("".join(json.dumps({"source-ref": f"s3://b/img{i}.jpg", "n": i}) + "\n" for i in range(6)))

    def run(behave: str, timeout: float = 60, cls: str = "Broken", *,
            command: list[str] | None = None) -> tuple[subprocess.CompletedProcess, Path]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path / "pkg")]),
               "SYNAPSE_ACCESS_TOKEN": SECRET}
        r = subprocess.run(
            [sys.executable, "-m", "totask_manifest", *(command or [
                "annotate", str(manifest), "--job-name", behave, "--task-type", "image-classification",
                "--method", f"brokenplug.mod:{cls}", "--behave", behave, "--output", str(tmp_path / "out")])],
            capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)
        return r, tmp_path / "out" / behave

    return run, manifest


def _job(job: Path) -> dict:
    return json.loads((job / "job.json").read_text())


@pytest.mark.slow
def test_a_batch_with_one_outcome_missing_labels_no_line_with_the_next_lines_outcome(plugin_job) -> None:
    """``annotate_batch`` returned 3 outcomes for 4 items: the first 3 were recorded against the
    first 3 lines (the second line got the third's label) before zip noticed, with a traceback."""
    run, manifest = plugin_job
    r, job = run("short")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert ("brokenplug.mod:Broken: annotate_batch returned 3 outcomes for 4 items (lines 1-4)"
            in r.stderr), r.stderr
    state = _job(job)
    assert state["status"] == "FAILED" and state["metrics"]["success"] == 0
    assert (job / "manifests/output/output.manifest").read_bytes() == manifest.read_bytes()


@pytest.mark.slow
def test_a_plugin_that_raises_is_named_with_where_it_raised_in_one_line(plugin_job) -> None:
    """An exception from the plugin's own code printed the job's traceback; its author needs the
    plugin's line, the user one line."""
    run, manifest = plugin_job
    r, job = run("raise")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    where = f"{job.parents[1] / 'pkg' / 'brokenplug' / 'mod.py'} line 29, in annotate_batch"
    error = f"method plugin 'brokenplug.mod:Broken' raised RuntimeError: no model loaded ({where})"
    assert f"job raise failed: {error}" in r.stderr, r.stderr
    assert _job(job)["status"] == "FAILED" and _job(job)["error"] == error
    assert (job / "manifests/output/output.manifest").read_bytes() == manifest.read_bytes()


@pytest.mark.slow
def test_a_thread_of_the_plugin_that_raises_fails_the_job_in_one_line(plugin_job) -> None:
    """A thread the plugin started raised: Python printed its traceback, ``annotate_batch`` returned
    its outcomes anyway and the job said COMPLETED. The batch that thread served is not recorded."""
    run, _ = plugin_job
    r, job = run("thread-raises")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    where = f"{job.parents[1] / 'pkg' / 'brokenplug' / 'mod.py'} line 49, in _load"
    error = (f"method plugin 'brokenplug.mod:Broken' raised OSError: no weights in its thread 'plugin-loader' "
             f"({where})")
    assert f"job thread-raises failed: {error}" in r.stderr, r.stderr
    state = _job(job)
    assert state["status"] == "FAILED" and state["error"] == error
    assert state["metrics"]["success"] == 4 and state["metrics"]["stand_by"] == 2, state["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize(("behave", "said", "recorded"), [
    ("bare", "annotate yielded a Labeled; it yields (item, outcome) pairs", 0),
    ("twice", "annotate yielded a second outcome for line 1 (or one for an item it was not given)", 1),
    ("drop", "annotate ended without an outcome for line 3 (4 lines from it on not recorded)", 2),
])
def test_an_annotate_that_does_not_yield_one_pair_per_item_is_named_in_one_line(
        plugin_job, behave: str, said: str, recorded: int) -> None:
    """A bare outcome failed the job with the engine's traceback (``cannot unpack``); a second
    outcome for a line was taken without a word; an item left without one ended the job saying
    "the engine finished with 4 selected lines neither labeled nor failed"."""
    run, _ = plugin_job
    r, job = run(behave, cls="Plain")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"error: method 'brokenplug.mod:Plain': {said}" in r.stdout, r.stdout + r.stderr
    state = _job(job)
    assert state["status"] == "FAILED" and state["metrics"]["success"] == recorded, state


@pytest.mark.slow
def test_an_annotate_batch_that_returns_none_is_named_in_one_line(plugin_job) -> None:
    """A forgotten ``return`` failed the job with a traceback of the job's own (``'NoneType' object
    is not iterable`` in ``_paired``)."""
    run, _ = plugin_job
    r, job = run("none")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("error: brokenplug.mod:Broken: annotate_batch returned None for lines 1-4; it returns a list of "
            "outcomes, one per item, in the same order" in r.stdout), r.stdout + r.stderr
    assert _job(job)["status"] == "FAILED"


@pytest.mark.slow
def test_a_close_that_raises_keeps_every_label_and_resume_finishes_without_the_plugin(plugin_job) -> None:
    """``close()`` raised after every line was labeled: the job said FAILED naming only the
    exception, and every ``resume`` built the plugin to label nothing, met the same ``close()``
    and failed again, so the job could never be finished."""
    run, _ = plugin_job
    r, job = run("close")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    where = f"{job.parents[1] / 'pkg' / 'brokenplug' / 'mod.py'} line 55, in close"
    error = "method plugin 'brokenplug.mod:Broken': close() raised RuntimeError: pool stuck with key ***"
    state = _job(job)
    assert state["status"] == "FAILED" and state["error"].startswith(error), state["error"]
    assert f"({where}) after its last outcome: the lines it labeled are recorded" in state["error"]
    assert "run resume once close() is fixed (no line is labeled again)" in state["error"]
    assert f"error: {state['error']}" in r.stdout and SECRET not in r.stdout + r.stderr
    assert state["metrics"]["success"] == 6 and state["metrics"]["stand_by"] == 0, state["metrics"]
    output = (job / "manifests/output/output.manifest").read_bytes()
    assert all(b'"close":' in line for line in output.splitlines())
    # nothing is left to label: the plugin is not built, so its close() (still broken) is not met again
    r, _ = run("close", command=["resume", str(job)])
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "every selected line is recorded; nothing to label" in r.stderr, r.stderr
    assert _job(job)["status"] == "COMPLETED" and _job(job)["error"] is None
    assert (job / "manifests/output/output.manifest").read_bytes() == output  # same creation-dates: not labeled again


@pytest.mark.slow
def test_a_thread_that_raises_as_close_runs_fails_the_job_as_a_close_that_raises(plugin_job) -> None:
    """A thread of the plugin's that raised after its last outcome (a flush as close() ran) was a
    warning line and the job said COMPLETED: what it was to do may not be done, as for close()."""
    run, _ = plugin_job
    r, job = run("close-thread")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    line = next(n for n, text in enumerate(PLUGIN.splitlines(), 1) if 'OSError("disk full")' in text)
    where = f"{job.parents[1] / 'pkg' / 'brokenplug' / 'mod.py'} line {line}, in _flush"
    state = _job(job)
    assert state["status"] == "FAILED" and state["error"] == (
        f"method plugin 'brokenplug.mod:Broken' raised OSError: disk full in its thread 'plugin-flusher' ({where}) "
        "after its last outcome: the lines it labeled are recorded and in the output manifest; run resume once "
        "that thread is fixed (no line is labeled again)"), state["error"]
    assert state["metrics"]["success"] == 6 and state["metrics"]["stand_by"] == 0, state["metrics"]
    r, _ = run("close-thread", command=["resume", str(job)])
    assert r.returncode == 0 and _job(job)["status"] == "COMPLETED", r.stdout + r.stderr


@pytest.mark.slow
def test_a_close_that_raises_after_the_plugin_raised_does_not_hide_its_error(plugin_job) -> None:
    """The ``with`` that closed the annotator let close()'s exception replace the one the run met."""
    run, _ = plugin_job
    r, job = run("raise-close")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert _job(job)["error"].startswith("method plugin 'brokenplug.mod:Broken' raised RuntimeError: no model loaded")
    assert "close() raised RuntimeError: pool stuck" in r.stderr and SECRET not in r.stderr, r.stderr


OPTIONS_MISTAKES = '''
from totask_manifest import BatchAnnotator, Options, option


class Undecorated(Options):
    level: int = option(3)


class Plain:
    level = 3


class ForgotDataclass(BatchAnnotator):
    name = "forgot"
    Options = Undecorated

    def annotate_batch(self, items):
        return []


class NoOptionsClass(ForgotDataclass):
    Options = Plain
'''


@pytest.mark.parametrize(("cls", "said"), [
    ("ForgotDataclass", "its Options class Undecorated is not a dataclass: decorate it with @dataclass(frozen=True)"),
    ("NoOptionsClass", "its Options (<class 'optmistakes.Plain'>) is not a subclass of totask_manifest.Options"),
])
def test_an_options_class_the_cli_cannot_read_is_refused_in_one_line(tmp_path, cls: str, said: str) -> None:
    """``Options`` without ``@dataclass``: its flags were ``unrecognized arguments``; one that is no
    ``Options`` subclass: a traceback (``no attribute 'leaves'``) from every command."""
    (tmp_path / "optmistakes.py").write_text(OPTIONS_MISTAKES)
    (tmp_path / "in.manifest").write_text('{"source-ref": "s3://b/a.jpg"}\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "annotate", "in.manifest", "--job-name", "j",
                        "--task-type", "image-classification", "--method", f"optmistakes:{cls}", "--level", "4",
                        "--output", "out"], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"totask-manifest annotate: error: method 'optmistakes:{cls}': {said}"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_outcome_of_the_wrong_type_is_named_in_one_line(plugin_job) -> None:
    run, _ = plugin_job
    r, job = run("type")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("method 'brokenplug.mod:Broken' gave str 'nope' as line 1's outcome; an outcome is Labeled, "
            "Failed or Routed" in r.stderr), r.stderr
    assert _job(job)["status"] == "FAILED"


@pytest.mark.slow
def test_a_label_json_cannot_hold_fails_its_line_as_label_not_json(plugin_job) -> None:
    """A ``bytes`` value in a label raised out of the schema check: the job FAILED with a traceback."""
    run, _ = plugin_job
    r, job = run("bytes")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    failures = [json.loads(line) for line in (job / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 6 and {f["rule"] for f in failures} == {"label-not-json"}
    assert "bytes" in failures[0]["reason"]


@pytest.mark.slow
def test_a_plugin_calling_sys_exit_fails_the_job_in_one_line(plugin_job) -> None:
    """``sys.exit(3)`` in ``annotate_batch`` ended the command with exit code 3, nothing printed,
    job.json left RUNNING and no output manifest."""
    run, manifest = plugin_job
    r, job = run("exit")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert "the annotator called sys.exit(3)" in r.stderr, r.stderr
    assert _job(job)["status"] == "FAILED"
    assert (job / "manifests/output/output.manifest").read_bytes() == manifest.read_bytes()


@pytest.mark.slow
def test_a_thread_the_plugin_left_running_does_not_hold_the_command_forever(plugin_job) -> None:
    """A non-daemon thread the annotator started kept the process alive after the job ended;
    ``timeout``'s SIGTERM came once the work was done, so nothing stopped it."""
    run, _ = plugin_job
    r, job = run("thread", timeout=90)
    assert r.returncode == 0, r.stderr
    assert "plugin-sleeper" in r.stderr, r.stderr
    assert _job(job)["status"] == "COMPLETED"


@pytest.mark.slow
def test_a_plugin_check_that_raises_is_a_usage_error_in_one_line(tmp_path) -> None:
    """``check`` raising a ValueError (not ``UsageError``) printed a traceback, exit 1."""
    (tmp_path / "checkplug.py").write_text(
        "from totask_manifest import BatchAnnotator\n\n\nclass Picky(BatchAnnotator):\n    name = 'picky'\n\n"
        "    @classmethod\n    def check(cls, options, task_type):\n        raise ValueError('no vocabulary')\n\n"
        "    def annotate_batch(self, items):\n        return []\n")
    (tmp_path / "in.manifest").write_text('{"source-ref": "s3://b/a.jpg"}\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "annotate", "in.manifest", "--job-name", "j",
                        "--task-type", "image-classification", "--method", "checkplug:Picky", "--output", "out"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "totask-manifest annotate: error: method plugin 'checkplug:Picky': its check of the options raised "
        f"ValueError: no vocabulary ({tmp_path / 'checkplug.py'} line 9, in check)")
    assert not (tmp_path / "out").exists()


_RAISING_OPTIONS = (
    "from dataclasses import dataclass\n\nfrom totask_manifest import BatchAnnotator, Options\n\n\n"
    "@dataclass(frozen=True)\nclass O(Options):\n    def __post_init__(self):\n        raise RuntimeError('x')\n\n\n"
    "class Plug(BatchAnnotator):\n    name = 'opt'\n    Options = O\n\n"
    "    def annotate_batch(self, items):\n        return []\n")


@pytest.mark.slow
def test_a_plugin_options_class_that_raises_is_a_usage_error_in_one_line(tmp_path) -> None:
    """An ``Options.__post_init__`` raising a RuntimeError (not ``UsageError``) printed a
    traceback, exit 1: the options are the user's input, so exit 2 naming the plugin and where."""
    (tmp_path / "optplug.py").write_text(_RAISING_OPTIONS)
    (tmp_path / "in.manifest").write_text('{"source-ref": "s3://b/a.jpg"}\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "annotate", "in.manifest", "--job-name", "j",
                        "--label-attribute", "cls", "--task-type", "image-classification",
                        "--method", "optplug:Plug", "--output", "out"],
                       capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        "totask-manifest annotate: error: method plugin 'optplug:Plug': its options raised "
        f"RuntimeError: x ({tmp_path / 'optplug.py'} line 9, in __post_init__)"]
    assert not (tmp_path / "out").exists()


def test_a_plugin_options_class_that_raises_is_a_usage_error_from_the_api(tmp_path, monkeypatch) -> None:
    """The Python API let the plugin's RuntimeError through, unnamed; nothing is written."""
    from totask_manifest import JobConfig, UsageError, annotate

    (tmp_path / "optplug_api.py").write_text(_RAISING_OPTIONS)
    (tmp_path / "in.manifest").write_text('{"source-ref": "s3://b/a.jpg"}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="cls", task_type="image-classification", method="optplug_api:Plug")
    with pytest.raises(UsageError) as caught:
        annotate(config)
    assert str(caught.value) == ("method plugin 'optplug_api:Plug': its options raised RuntimeError: x "
                                 f"({tmp_path / 'optplug_api.py'} line 9, in __post_init__)")
    assert not (tmp_path / "out").exists()
