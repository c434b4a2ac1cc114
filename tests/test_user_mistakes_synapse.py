"""User mistakes on the Synapse side and in parameter files, as a new user makes them: each ends
in one line on stderr naming the file, the line or key and the rule, the README's exit code, no
traceback, and nothing written.

The CLI runs as a real subprocess; Synapse is the contract server on 127.0.0.1.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, annotate_sample_with_class_names, run_cli

pytest_plugins = ["totask_manifest.testing.fixtures"]


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


# -- a YAML file with a syntax error names the line of the problem -------------------------------

@pytest.mark.parametrize(("text", "where", "problem"), [
    ("name: [\n", "line 2, column 1", "expected the node content"),
    ("name: x\n project: 3\n", "line 2, column 9", "mapping values are not allowed here"),
])
def test_run_params_yaml_syntax_error_names_line_and_problem(tmp_path: Path, text: str, where: str,
                                                              problem: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(text)
    r = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    # PyYAML's first line ('while parsing a flow node') named neither the line nor the problem
    assert f"{params} is not valid YAML: {where}: {problem}" in line, line
    assert r.stdout == "" and not (tmp_path / "runs").exists()


def test_run_params_upper_case_yaml_suffix_is_called_yaml(tmp_path: Path) -> None:
    params = tmp_path / "params.YAML"
    params.write_text("name: x\n project: 3\n")
    r = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert r.returncode == 2
    # it is read as YAML (the suffix is compared case-insensitively); the message said JSON
    assert "is not valid YAML: line 2" in one_line_error(r.stderr)


def test_class_names_yaml_syntax_error_names_the_problem_line(tmp_path: Path) -> None:
    names = tmp_path / "data.yaml"
    names.write_text("names:\n  0: cat\n 1: dog\n")
    r = annotate_sample_with_class_names(names, tmp_path / "out")
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    # the context's mark (line 1, where the mapping starts) came first and the real one was cut
    assert "not YAML: line 3, column 2: expected <block end>" in line, line
    assert not (tmp_path / "out").exists()


# -- a password in SYNAPSE_HOST is refused, never recorded, never sent ---------------------------

SECRET = "pw-Secr3t-in-url"


@pytest.mark.parametrize("command", ["export", "run"])
@pytest.mark.parametrize("token_var", ["SYNAPSE_ACCESS_TOKEN", "SYNAPSE_PLUGIN_RUN_USER_TOKEN"])
def test_synapse_host_with_user_and_password_is_refused(synapse, tmp_path: Path, command: str,
                                                       token_var: str) -> None:
    host = synapse.url.replace("http://", f"http://user:{SECRET}@")
    params = tmp_path / "params.yaml"
    params.write_text("name: Boxes\nproject: 1\nagent: 1\nmethod: file\ntarget_specification_name: a\n")
    args = {"export": ["export", "--project", "1", "-o", str(tmp_path / "out" / "x.manifest")],
            "run": ["run", str(params), "--output", str(tmp_path / "out")]}[command]
    (tmp_path / "out").mkdir()
    env = {"SYNAPSE_HOST": host, token_var: os.environ["SYNAPSE_ACCESS_TOKEN"]}
    if token_var != "SYNAPSE_ACCESS_TOKEN":
        env["SYNAPSE_ACCESS_TOKEN"] = ""
    r = run_cli("-v", *args, env=env)
    assert r.returncode == 2, r.stderr
    # before: run recorded the password in totask-run.json and went on; with the plugin-run
    # token, aiohttp's 'Cannot combine AUTHORIZATION header ...' ended export in a traceback
    assert "SYNAPSE_HOST must not carry a user name or password" in one_line_error(r.stderr)
    assert SECRET not in r.stdout + r.stderr
    assert list((tmp_path / "out").iterdir()) == []
    assert synapse.requests == []


@pytest.mark.parametrize("tail", [f"/?token={SECRET}", f"/#{SECRET}"])
def test_synapse_host_with_a_query_or_fragment_is_refused(synapse, tmp_path: Path, tail: str) -> None:
    """A query or fragment in SYNAPSE_HOST swallowed every request's path: 'projects/1/' was joined
    after it, the backend was asked for '/' and export said 'Project not found' (exit 1), and
    ``run`` recorded the value, a secret perhaps, in totask-run.json."""
    out = tmp_path / "out"
    out.mkdir()
    r = run_cli("export", "--project", "1", "-o", str(out / "x.manifest"),
                env={"SYNAPSE_HOST": synapse.url + tail})
    assert r.returncode == 2, r.stderr
    assert "SYNAPSE_HOST must not carry a query or fragment" in one_line_error(r.stderr)
    assert SECRET not in r.stdout + r.stderr
    assert list(out.iterdir()) == []
    assert synapse.requests == []


def test_a_host_whose_path_the_backend_does_not_serve_names_synapse_host_with_project_not_found(
        synapse, tmp_path: Path) -> None:
    """``SYNAPSE_HOST=https://host/api`` where the backend serves ``https://host/``: every request is
    a 404, and export said ``Project not found: project 1 does not exist or is not visible`` (exit 1)
    of a project that exists, with no word of the host (apply's project-gone stop names it)."""
    pid = synapse.add_project()
    out = tmp_path / "out"
    out.mkdir()
    r = run_cli("export", "--project", str(pid), "-o", str(out / "x.manifest"), env={"SYNAPSE_HOST": synapse.url + "/api"})
    assert r.returncode == 1, r.stderr
    line = one_line_error(r.stderr)
    assert line.startswith(f"totask-manifest export: error: Project not found: project {pid} does not exist"), line
    assert f"check SYNAPSE_HOST (now {synapse.url}/api)" in line, line
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("host", [f"http://[{SECRET}", "https://[::1/"])
def test_synapse_host_that_is_no_url_is_refused_without_a_traceback(synapse, tmp_path: Path, host: str) -> None:
    """An unbalanced ``[`` (an IPv6 host half typed) made ``urlsplit`` raise ValueError: a
    traceback and exit 1, where every other malformed SYNAPSE_HOST is a usage error (exit 2)."""
    out = tmp_path / "out"
    out.mkdir()
    r = run_cli("export", "--project", "1", "-o", str(out / "x.manifest"), env={"SYNAPSE_HOST": host})
    assert r.returncode == 2, r.stderr
    assert "SYNAPSE_HOST must be an http:// or https:// URL" in one_line_error(r.stderr)
    assert SECRET not in r.stdout + r.stderr
    assert list(out.iterdir()) == [] and synapse.requests == []


# -- a token Synapse refuses is a configuration mistake, as a missing one: exit 2 --------------------

def test_export_with_a_refused_token_exits_2_as_without_one(synapse, tmp_path: Path) -> None:
    out = tmp_path / "out" / "x.manifest"
    args = ["export", "--project", "1", "-o", str(out)]
    refused = run_cli(*args, env={"SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": "revoked-token"})
    missing = run_cli(*args, env={"SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": ""})
    # before: the 401 exited 1 (invalid data, a failed job) where no token at all exits 2
    assert (refused.returncode, missing.returncode) == (2, 2), refused.stderr + missing.stderr
    assert "401 Unauthorized" in one_line_error(refused.stderr)
    assert "no Synapse credentials" in one_line_error(missing.stderr)
    assert not out.exists()
    assert [r.status for r in synapse.requests] == [401]  # one request, refused, and nothing after it


# -- an output that is the input is refused: the input is not replaced -----------------------------

def _labeled_manifest(path: Path) -> bytes:
    meta = ('{"class-name":"cat","confidence":0.9,"type":"groundtruth/image-classification",'
            '"human-annotated":"no","creation-date":"2026-01-01T00:00:00.000000","job-name":"labeling-job/j"}')
    failed = '{"failure-reason":"boom","failure-rule":"failed"}'
    data = (f'{{"source-ref":"s3://b/0.jpg","cls":0,"cls-metadata":{meta}}}\n'
            f'{{"source-ref":"s3://b/1.jpg","cls-metadata":{failed}}}\n').encode()
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("same", ["{m}", "./{name}", "file://{m}", "{link}"])
@pytest.mark.parametrize("command", ["labeled", "convert"])
def test_output_that_is_the_input_is_refused(tmp_path: Path, monkeypatch, same: str, command: str) -> None:
    manifest = tmp_path / "m.manifest"
    data = _labeled_manifest(manifest)
    link = tmp_path / "link.manifest"
    link.symlink_to(manifest)
    dst = same.format(m=manifest, name=manifest.name, link=link)
    args = (["labeled", str(manifest), "--label-attribute", "cls", "-o", dst] if command == "labeled"
            else ["convert", str(manifest), dst, "--to", "dm-schema-v1", "--label-attribute", "cls"])
    full_env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                       timeout=120, env=full_env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "is the input" in one_line_error(r.stderr) and "replace the input" in r.stderr
    # before: labeled kept 1 of 2 lines and replaced the manifest with them; convert wrote the
    # DM v1 records over it; either way the input was gone
    assert manifest.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.manifest", "m.manifest"]


def test_output_beside_the_input_is_written(tmp_path: Path) -> None:
    manifest = tmp_path / "m.manifest"
    _labeled_manifest(manifest)
    r = run_cli("labeled", str(manifest), "--label-attribute", "cls", "-o", str(tmp_path / "m.labeled"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.labeled").read_bytes().count(b"\n") == 1


@pytest.mark.parametrize("target", ["manifests/output/output.manifest", "job.json", "labeled.manifest",
                                    "manifests/intermediate/part-000000.ckpt", "deeper/new/x.manifest", "."])
@pytest.mark.parametrize("command", ["labeled", "convert", "report", "export"])
def test_output_inside_a_job_folder_is_refused(tmp_path: Path, command: str, target: str) -> None:
    """``convert c3.json JOB/manifests/output/output.manifest --to manifest`` replaced a finished
    job's output manifest, and ``labeled ... -o OTHER/job.json`` its job.json (the job could no
    longer be read), exit 0: only the command's own input was refused as its output. A path
    inside a job folder, at any depth, is refused by every writer, one line, exit 2, nothing
    written; ``report`` still puts its page at the top of its own job (the README's JOB/report.html)."""
    from totask_manifest.testing.builders import make_job

    if command == "report" and target == "labeled.manifest":
        pytest.skip("the top of its own job's folder is where report puts its page (the next test)")
    manifest = tmp_path / "m.manifest"
    _labeled_manifest(manifest)
    job = make_job(tmp_path / "out", manifest, name="victim")
    before = {p: p.read_bytes() for p in job.rglob("*") if p.is_file()}
    dst = str(job / target) if target != "." else str(job)
    args = {"labeled": ["labeled", str(manifest), "--label-attribute", "cls", "-o", dst],
            "convert": ["convert", str(manifest), dst, "--to", "dm-schema-v1", "--label-attribute", "cls"],
            "report": ["report", str(tmp_path / "out" / "victim"), "-o", dst],
            "export": ["export", "--project", "1", "-o", dst]}[command]
    r = run_cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    line = one_line_error(r.stderr)
    if command != "report" or target == "deeper/new/x.manifest":  # report's own words for the job's files
        assert f"is inside job folder {job} (a folder holding job.json)" in line, line
    assert {p: p.read_bytes() for p in job.rglob("*") if p.is_file()} == before
    assert not (job / "deeper").exists()


def test_another_tools_job_json_above_an_output_does_not_refuse_it(tmp_path: Path) -> None:
    """Only a job's job.json (an object with 'config', or one too damaged to read) marks a job
    folder: another tool's job.json in a folder above would refuse every output below it."""
    manifest = tmp_path / "m.manifest"
    _labeled_manifest(manifest)
    (tmp_path / "job.json").write_text('{"name": "a CI job"}')
    r = run_cli("labeled", str(manifest), "--label-attribute", "cls", "-o", str(tmp_path / "sub" / "l.manifest"))
    assert r.returncode == 0, r.stderr
    (tmp_path / "job.json").write_text('{"config": {"job_n')  # a job's, cut short: still a job folder
    r = run_cli("labeled", str(manifest), "--label-attribute", "cls", "-o", str(tmp_path / "sub" / "k.manifest"))
    assert r.returncode == 2 and "is inside job folder" in one_line_error(r.stderr)


def test_report_page_at_the_top_of_its_own_job_only(tmp_path: Path) -> None:
    from totask_manifest.testing.builders import make_job

    manifest = tmp_path / "m.manifest"
    _labeled_manifest(manifest)
    job = make_job(tmp_path / "out", manifest, name="mine")
    other = make_job(tmp_path / "out", manifest, name="other")
    assert run_cli("report", str(job), "-o", str(job / "report.html")).returncode == 0
    r = run_cli("report", str(job), "-o", str(other / "report.html"))
    assert r.returncode == 2 and f"is inside job folder {other}" in one_line_error(r.stderr)
    assert not (other / "report.html").exists()


# -- --concurrency 0 is refused by every Synapse command before anything happens ------------------

@pytest.mark.parametrize("command", ["run", "rollback", "apply"])
def test_concurrency_below_one_is_refused_before_anything(synapse, tmp_path: Path, command: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("name: Boxes\nproject: 1\nagent: 1\nmethod: file\ntarget_specification_name: a\n")
    job = tmp_path / "runs" / "job"
    job.mkdir(parents=True)
    (job / "job.json").write_text("{}")
    args = {"run": ["run", str(params), "--output", str(tmp_path / "runs")],
            "rollback": ["rollback", str(job)], "apply": ["apply", str(job)]}[command]
    r = run_cli(*args, "--concurrency", "0")
    assert r.returncode == 2, r.stderr
    # before: run exported the project, created its job and only then ended FAILED (exit 1);
    # rollback went ahead
    assert one_line_error(r.stderr).endswith("--concurrency must be at least 1, got 0")
    assert r.stdout == ""
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["job"]
    assert sorted(p.name for p in job.iterdir()) == ["job.json"]
    assert synapse.requests == []


# -- evaluate: boxes drawn on images of other sizes are not compared -------------------------------

def _box_side(size: int, scale: int, human: str) -> tuple[dict, dict]:
    value = {"image_size": [{"width": size, "height": size, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 10 * scale, "top": 10 * scale, "width": 30 * scale,
                              "height": 30 * scale}]}
    meta = {"objects": [{"confidence": 0.9}], "class-map": {"0": "cat"}, "type": "groundtruth/object-detection",
            "human-annotated": human, "creation-date": "2026-01-01T00:00:00.000000", "job-name": "labeling-job/x"}
    return value, meta


@pytest.mark.parametrize("lines", [4, 3000])  # 3000: the fast lane's batches, not only the line-by-line path
def test_evaluate_does_not_compare_boxes_on_images_of_other_sizes(tmp_path: Path, lines: int) -> None:
    import orjson

    out = bytearray()
    for i in range(lines):
        gt, gt_meta = _box_side(200, 2, "yes")
        same = i % 2 == 0  # every other line: the same image as the reference, the same box
        pred, pred_meta = _box_side(200, 2, "no") if same else _box_side(100, 1, "no")
        out += orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "gt": gt, "gt-metadata": gt_meta,
                             "pred": pred, "pred-metadata": pred_meta}) + b"\n"
    manifest = tmp_path / "m.manifest"
    manifest.write_bytes(bytes(out))
    r = run_cli("evaluate", str(manifest), "--predicted", "pred", "--reference", "gt", "--format", "json")
    assert r.returncode == 0, r.stderr
    got = orjson.loads(r.stdout)
    counts = got["lines"]
    # before: the 100x100 lines were compared with the 200x200 ones in pixels, so half the
    # references counted as missed and AP@.5 read 0.5 where the labels that can be compared agree
    assert counts["evaluated"] == (lines + 1) // 2 and counts["not_evaluated"] == lines // 2
    assert counts["skipped"]["both"] == {"not comparable": lines // 2}
    assert counts["examples"][0] == {"line": 2, "side": "both", "kind": "not comparable",
                                  "reason": "image sizes differ: predicted 100x100, reference 200x200"}
    assert got["detection"]["ap50"] == pytest.approx(1.0)


# -- rollback's per-task lines say what happened ---------------------------------------------------

def test_rollback_line_of_a_task_already_as_before_says_so(synapse, files, client, tmp_path: Path) -> None:
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest.testing.builders import make_job, seed_tasks

    original = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}}
    pid = seed_tasks(synapse, files, 2, data=original)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    assert run_cli("apply", str(job)).returncode == 0
    for task in synapse.project_tasks(pid):  # someone put each task back by hand
        task["data"] = copy.deepcopy(original)
    r = run_cli("rollback", str(job))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # before: 'task 1003: already', which reads as a line cut short
    assert [line.split(": ", 1)[1] for line in lines[:-1]] == ["already as before (nothing sent)"] * 2
    assert lines[-1].startswith("rollback: 0 restored, 2 already as before")


# -- apply | head: the reader leaving does not undo the apply -------------------------------------

def test_apply_piped_into_a_reader_that_leaves_finishes_and_keeps_its_writes(synapse, files, client,
                                                                            tmp_path: Path) -> None:
    from tests.jobs_helpers import popen_cli
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest.testing.builders import make_job, seed_tasks

    pid = seed_tasks(synapse, files, 40, data={"annotations": {"image_1": []}, "annotationsData": {"image_1": []}})
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    synapse.latency = 0.02  # the tasks finish one by one, long after the reader has left
    proc = popen_cli("apply", str(job), "--concurrency", "1", env={"PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"task ")
    proc.stdout.close()  # `apply ... | head -1`
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=120) == 141, err
    # before: the print's BrokenPipeError reached apply as a fatal error: 'stopping: [Errno 32]
    # Broken pipe; rolling back this run's writes', every write undone, exit 1
    assert "Broken pipe" not in err and "rolling back" not in err, err
    assert err.splitlines() == ["40 applied, 0 unchanged, 0 conflicts (skipped), 0 failed, 0 not labeled"]
    puts = synapse.requests_to("PUT", r"^/tasks/\d+/annotate_task_data/")
    assert len(puts) == 40 and all(r.query.get("schema") != "any" for r in puts)  # no restore was sent


def test_annotate_with_the_preprocessor_method_says_where_it_is_configured(tmp_path: Path) -> None:
    manifest = tmp_path / "in.manifest"
    manifest.write_text('{"source-ref":"s3://b/0.jpg"}\n')
    r = run_cli("annotate", str(manifest), "--job-name", "pp", "--label-attribute", "boxes", "--task-type",
                "object-detection", "--method", "synapse-preprocessor", "--output", str(tmp_path / "out"))
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    # before: 'needs pre_processor, agent', with no flag on the command line to give them
    assert "needs pre_processor, agent: " in line and "totask-manifest run PARAMS.yaml" in line, line
    assert not (tmp_path / "out").exists()


# -- a second run of the action with other parameters while the first runs --------------------------

@pytest.mark.slow
def test_run_with_other_parameters_does_not_archive_a_live_run(tmp_path: Path) -> None:
    """Two terminals: ``run`` is annotating; the same name is run again with another
    ``task_filters``. The second moved the live job folder into ``.totask-archive`` and started
    afresh; the first lost its lease and failed. The second is now refused, naming the holder."""
    import time

    import orjson

    from tests.jobs_helpers import popen_cli
    from totask_manifest.testing.builders import TOKEN, seed_tasks
    from totask_manifest.testing.file_server import FileServer
    from totask_manifest.testing.synapse_server import SynapseServer

    server = SynapseServer(tokens=(TOKEN,)).start()
    files = FileServer().start()
    env = {"SYNAPSE_ACCESS_TOKEN": TOKEN}
    try:
        pid = seed_tasks(server, files, 4)
        env["SYNAPSE_HOST"] = server.url
        files.held = True  # the first run annotates until the second has been answered
        params = {"name": "Two_Terminals", "project": pid, "agent": 1, "method": "file",
                  "target_specification_name": "annotation_data"}
        first_params, second_params = tmp_path / "first.json", tmp_path / "second.json"
        first_params.write_bytes(orjson.dumps(params))
        second_params.write_bytes(orjson.dumps({**params, "task_filters": {"limit": 4}}))
        out = tmp_path / "out"
        first = popen_cli("run", str(first_params), "--output", str(out), env=env)
        lease = out / "two-terminals" / ".lease"
        deadline = time.monotonic() + 120
        while not (lease.is_dir() and any(r.path.startswith("/labels/") for r in list(files.requests))):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.01)
        second = run_cli("run", str(second_params), "--output", str(out), env=env)
        files.held = False
        first_out, first_err = first.communicate(timeout=120)
    finally:
        files.stop()
        server.stop()
    assert second.returncode == 2  # a job folder in use: 2 in every command
    assert "is in use by pid" in orjson.loads(second.stdout)["message"], second.stdout
    assert not (out / ".totask-archive").exists()
    assert first.returncode == 0, first_err.decode()
    assert orjson.loads(first_out)["status"] == "SUCCEEDED"


@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_a_synapse_host_with_a_wrong_path_says_to_check_it(synapse, files, client, tmp_path, command) -> None:
    """``SYNAPSE_HOST`` with a path the backend does not serve (``/api``): every request is a
    404, the project's too, and apply and rollback said only ``project 1001 is gone``, as if it
    had been deleted."""
    from totask_manifest._synapse.apply import apply_job
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest.testing.builders import make_job, seed_tasks

    pid = seed_tasks(synapse, files, 4)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    if command == "rollback":
        assert apply_job(str(job), client=client).totals["applied"] == 4
    done = run_cli(command, str(job), env={"SYNAPSE_HOST": synapse.url + "/api"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert (f"project {pid} is gone (404); if it still exists in Synapse, check SYNAPSE_HOST "
            f"(now {synapse.url}/api)") in done.stderr, done.stderr


# -- invalid parameters are a bad parameter file: one line, exit 2, as the README's rule ---------

def test_run_with_invalid_parameters_exits_2_in_one_line(synapse, tmp_path: Path) -> None:
    """Before: exit 1 and a FAILED result on stdout, where the README gives exit 2 for a bad
    parameter file (as for one that is not JSON); nothing was sent either way."""
    params = tmp_path / "params.yaml"
    params.write_text("name: Boxes\nproject: 1\nagent: 1\nmethod: inference\n")
    r = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    assert one_line_error(r.stderr) == (
        f"totask-manifest run: error: parameter file {params}: invalid parameters: "
        "pre_processor: required for the inference method (a plugin release id)")
    assert r.stdout == "" and not (tmp_path / "runs").exists()
    assert synapse.requests == []
