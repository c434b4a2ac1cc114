"""A job.json holding a key no version of totask-manifest wrote (a newer version's: a new option that
changes the labels, say) is refused by every command that acts on the job or rewrites it, in one
line naming the keys and what to do, exit code 1 as a corrupt job.json, nothing written; ``status``
reads it and names the keys. Before, ``resume`` ran the job without the keys and rewrote job.json
without them, exit 0: the newer version's setting lost with nothing said. The job is the README's
sample job (file method); the commands run as subprocesses."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, run_cli, sample_job_args
from totask_manifest._annotators.base import _REGISTRY, get_annotator_class
from totask_manifest._errors import JobError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.known_keys import BUILT_IN_OPTIONS, unknown_keys
from totask_manifest._jobs.state import JobState
from totask_manifest._jobs.status import COMPLETED
from totask_manifest.testing.builders import make_job


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """The README's sample job ``out/j``, COMPLETED."""
    out = tmp_path_factory.mktemp("newer-job-keys") / "out"
    r = run_cli(*sample_job_args("j", out))
    assert r.returncode == 0, r.stderr
    return out / "j"


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A COMPLETED file-method job ``out/j`` as the engine writes its job.json (no run: the fast lane)."""
    root = tmp_path_factory.mktemp("newer-job-keys-made")
    export = root / "export.manifest"
    export.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg"}) + b"\n" for i in range(3)))
    return make_job(root / "out", export, name="j")


def _edited(job: Path, tmp_path: Path, *path: str, status: str = "STOPPED") -> Path:
    """A copy of ``job`` (under its own name), STOPPED, with a key ``path`` added to its job.json."""
    copy = tmp_path / "out" / "j"
    shutil.copytree(job, copy)
    data = orjson.loads((copy / "job.json").read_bytes())
    data["status"] = status
    where = data
    for key in path[:-1]:
        where = where[key]
    where[path[-1]] = 2
    (copy / "job.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    return copy


def _refusal(folder: Path, *names: str) -> str:
    them = "them" if len(names) > 1 else "it"
    return (f"{folder / 'job.json'} holds {'keys' if len(names) > 1 else 'key'} {', '.join(map(repr, names))} "
            f"that this version of totask-manifest does not know (a newer version wrote {them}); it would run the "
            f"job without {them} and drop {them} from job.json: upgrade totask-manifest to resume, chain, clone, "
            "annotate again or apply this job (status reads it)")


KEYS = [("future_key",), ("config", "future_opt"), ("config", "options", "future_option"), ("input", "future"),
        ("metrics", "skipped")]


@pytest.mark.parametrize("path", KEYS, ids=".".join)
def test_a_key_no_version_wrote_is_refused_naming_it(made, tmp_path, path):
    folder = _edited(made, tmp_path, *path)
    with pytest.raises(JobError) as info:
        Job.open(str(folder))
    assert str(info.value) == _refusal(folder, ".".join(path))
    assert info.value.exit_code == 1  # as a corrupt job.json: the data, not the command, is the matter
    seen = Job.open(str(folder), read_only=True)  # what status, report and evaluate read
    assert seen.unknown_keys == [".".join(path)] and seen.state.config.job_name == "j"


def test_several_keys_are_named_together(made, tmp_path):
    folder = _edited(made, tmp_path, "future_key")
    data = orjson.loads((folder / "job.json").read_bytes())
    data["config"]["future_opt"] = 1
    (folder / "job.json").write_bytes(orjson.dumps(data))
    with pytest.raises(JobError) as info:
        Job.open(str(folder))
    assert str(info.value) == _refusal(folder, "future_key", "config.future_opt")


def test_every_key_this_version_writes_is_known(tmp_path):
    """The lists are history: a key this version writes (every optional one set) is among them, so
    the package never refuses its own job.json."""
    config = JobConfig(job_name="j", input="in.manifest", output_root=str(tmp_path), label_attribute="cls",
                       task_type="image-classification", method="file")
    state = JobState(config=config, copied_sha256="a" * 64, given_sha256=["b" * 64],
                     metrics={"total": 1, "success": 1, "failed": 0, "routed": 0, "stand_by": 0, "dropped": 1})
    assert unknown_keys(state.to_dict()) == []
    assert set(_REGISTRY) == set(BUILT_IN_OPTIONS)
    for method in _REGISTRY:
        options = {f.name: None for f, _ in get_annotator_class(method).Options.leaves()}
        options.update(dict.fromkeys(("concurrency", "timeout", "retries", "batch_size", "device", "relative_to",
                                      "relative_to_appended", "allow_root", "allow_hosts")))
        data = {**state.to_dict(), "method": method, "config": {**config.to_dict(), "method": method,
                                                                "options": options}}
        assert unknown_keys(data) == [], method


def test_a_plugin_jobs_options_are_its_own(made):
    """A method not built in (a plugin) declares its options; the older ones it no longer declares
    are ``refuse_undeclared_options``'s (resume) to refuse, in the plugin's words."""
    data = orjson.loads((made / "job.json").read_bytes())
    data["method"] = data["config"]["method"] = TOY
    data["config"]["options"]["old_plugin_option"] = 1
    assert unknown_keys(data) == []
    data["config"]["method"] = "file"
    assert unknown_keys(data) == ["config.options.old_plugin_option"]


@pytest.mark.slow
@pytest.mark.parametrize("path", [KEYS[0], KEYS[2]], ids=".".join)
@pytest.mark.parametrize("command", ["resume", "chain", "clone", "annotate", "apply"])
def test_every_command_that_acts_on_the_job_refuses_it_and_writes_nothing(job, tmp_path, path, command):
    folder = _edited(job, tmp_path, *path, status=COMPLETED if command == "apply" else "STOPPED")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    args = {"resume": ["resume", str(folder)], "chain": ["chain", str(folder), "--job-name", "k"],
            "clone": ["clone", str(folder), "--job-name", "k"], "annotate": sample_job_args("j", folder.parent),
            "apply": ["apply", str(folder), "--dry-run"]}[command]
    r = run_cli(*args)
    assert (r.returncode, r.stdout) == (1, ""), (r.stdout, r.stderr)
    assert r.stderr == f"totask-manifest {command}: error: {_refusal(folder, '.'.join(path))}\n"
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["j"]  # no new job, no lease left


@pytest.mark.slow
def test_status_shows_the_job_and_names_the_keys(job, tmp_path):
    folder = _edited(job, tmp_path, "config", "future_opt")
    data = orjson.loads((folder / "job.json").read_bytes())
    data["future_key"] = 1
    (folder / "job.json").write_bytes(orjson.dumps(data))
    before = (folder / "job.json").read_bytes()
    r = run_cli("status", str(folder))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "status: STOPPED" in r.stdout.splitlines()
    assert r.stdout.splitlines()[-1] == (
        "note: job.json holds keys 'future_key', 'config.future_opt' that this version of totask-manifest does not "
        "know (a newer version wrote them): resume, chain, clone, annotate again and apply refuse the job; upgrade "
        "totask-manifest to work on it")
    shown = run_cli("status", str(folder), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["unknown-keys"] == ["future_key", "config.future_opt"]
    assert (folder / "job.json").read_bytes() == before


@pytest.mark.slow
def test_keys_this_version_knows_still_resume(job, tmp_path):
    """A job.json holding only known keys (``metrics.dropped``, an older version's without
    ``label-job-name``) resumes as before."""
    folder = _edited(job, tmp_path, "metrics", "dropped")
    data = orjson.loads((folder / "job.json").read_bytes())
    del data["label-job-name"]
    (folder / "job.json").write_bytes(orjson.dumps(data))
    r = run_cli("resume", str(folder))
    assert r.returncode == 0, r.stderr
    assert orjson.loads((folder / "job.json").read_bytes())["status"] == COMPLETED


NOTE = ("job.json holds keys 'future_key', 'config.future_opt' that this version of totask-manifest does not "
        "know (a newer version wrote them): resume, chain, clone, annotate again and apply refuse the job; upgrade "
        "totask-manifest to work on it")


def _report_of_newer_job(made: Path, tmp_path: Path) -> tuple[Path, bytes]:
    """``report`` of a job.json with two keys this version does not know: the page said nothing of
    them (``status`` notes them), so a reader took the job for one this version can resume."""
    from totask_manifest._cli import main

    folder = _edited(made, tmp_path, "config", "future_opt")
    data = orjson.loads((folder / "job.json").read_bytes())
    data["future_key"] = 1
    (folder / "job.json").write_bytes(orjson.dumps(data))
    before = (folder / "job.json").read_bytes()
    page = tmp_path / "r.html"
    assert main(["report", str(folder), "-o", str(page), "--samples", "0"]) == 0
    return page, before


def test_report_notes_the_keys_this_version_does_not_know(made, tmp_path):
    import html
    import re

    page, before = _report_of_newer_job(made, tmp_path)
    shown = html.unescape(page.read_text())
    assert re.search(r"<dt>note</dt><dd>([^<]*)</dd>", shown).group(1) == NOTE
    assert (tmp_path / "out" / "j" / "job.json").read_bytes() == before


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="chromium not installed (apt-get install -y chromium)")
def test_report_note_is_on_the_page_a_browser_draws(made, tmp_path):
    from tests.support.browser import chromium

    page, _ = _report_of_newer_job(made, tmp_path)
    dom = chromium(["--dump-dom", page.resolve().as_uri()], tmp_path / "profile")
    assert NOTE in dom.stdout, dom.stderr[-2000:]
