"""A misspelt parameter or filter name (``task_filter``, ``statuss``, ``Status``) is refused before
anything is sent: the SDK ignores an unknown parameter and the backend an unknown filter, so
either would have left the filters out and written, or exported, every task of the project. A
key no known one resembles is still passed on (a caller's own parameter, a filter the guide
does not document), and said: a parameter as ignored, a filter no listed task could be checked
against as unchecked."""

from __future__ import annotations

import json
import logging

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction
from totask_manifest._cli import main
from totask_manifest._errors import UsageError
from totask_manifest._synapse.export import export_tasks, parse_filters
from totask_manifest._to_task.params import validate_params
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def file_params(pid: int, **extra) -> dict:
    return {"name": "Pre_Label", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data", **extra}


@pytest.mark.parametrize(("key", "meant"), [("task_filter", "task_filters"), ("batchsize", "batch_size"),
                                            ("Task_Filters", "task_filters"), ("descripton", "description"),
                                            ("filters", "task_filters"), ("status", "task_filters"),
                                            ("limit", "task_filters")])
def test_a_misspelt_parameter_is_refused_naming_the_one_meant(key: str, meant: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_params(file_params(7, **{key: {"status": "pending"}}))
    assert f"{key}: not a ToTask parameter; did you mean {meant!r}?" in str(caught.value)


def test_run_refuses_the_misspelt_task_filters_before_any_request(synapse, files, tmp_path) -> None:
    """The tester's case: ``task_filter:`` wrote every task, ``done`` ones with people's work included."""
    pid = seed_tasks(synapse, files, 3)
    params = tmp_path / "params.yaml"
    params.write_text(f"name: Pre_Label\nproject: {pid}\nagent: 1\ntask_filter:\n  status: pending\n"
                      "method: file\ntarget_specification_name: annotation_data\n")
    done = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "task_filter: not a ToTask parameter; did you mean 'task_filters'?" in done.stderr
    assert synapse.requests == [] and not (tmp_path / "runs").exists()
    assert all(task["data"] in ({}, None) for task in synapse.project_tasks(pid))


def test_a_key_like_no_parameter_is_ignored_and_said(synapse, files, tmp_path, caplog) -> None:
    pid = seed_tasks(synapse, files, 2)
    with caplog.at_level(logging.WARNING):
        result = ToTaskAction(params=file_params(pid, notes="from the data team"), output_root=str(tmp_path)).start()
    assert result["status"] == "SUCCEEDED", result
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "parameter 'notes' is not a ToTask parameter: ignored, as the SDK ignores it" in said, said


@pytest.mark.parametrize(("given", "meant"), [("statuss=pending", "status"), ("Status=pending", "status"),
                                              ("statuss__in=pending,done", "status__in"), ("assigne=3", "assignee"),
                                              ("status_in=pending,done", "status__in"),
                                              ("created_at_gte=2026-01-01", "created_at__gte"),
                                              ("limt=2", "limit"), ("Limit=2", "limit"), ("limits=2", "limit")])
def test_a_misspelt_filter_is_refused_naming_the_one_meant(given: str, meant: str) -> None:
    with pytest.raises(UsageError, match=f"did you mean {meant!r}"):
        parse_filters([given])


@pytest.mark.parametrize(("given", "meant"), [("statuss=pending", "status"), ("limt=2", "limit")])
def test_export_refuses_a_misspelt_filter_in_one_line_before_listing(synapse, files, tmp_path, capsys, given: str,
                                                                     meant: str) -> None:
    """``limt=2`` exported every task: the backend ignored it, and the limit was left out."""
    pid = seed_tasks(synapse, files, 3)
    out = tmp_path / "f.manifest"
    assert main(["export", "--project", str(pid), "--filter", given, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    key = given.partition("=")[0]
    assert err.count("\n") == 1 and f"filter {key!r} is not a filter the ToTask guide documents; did you mean " \
                                   f"{meant!r}?" in err, err
    assert synapse.requests == [] and not out.exists()


def test_a_filter_on_a_field_no_task_carries_is_said_to_be_unchecked(synapse, files, client, tmp_path,
                                                                      caplog) -> None:
    """``stauts`` resembles no field closely enough to be refused: the backend ignores it and lists
    every task, and the warning says the filter could not be checked, naming the field."""
    pid = seed_tasks(synapse, files, 3)
    with caplog.at_level(logging.WARNING):
        result = export_tasks(pid, str(tmp_path / "f.manifest"), filters=parse_filters(["stauts=pending"]),
                              client=client)
    assert result.exported == 3 and result.unchecked == ["stauts"]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == ["warning: filter stauts=pending could not be checked: no listed task holds 'stauts', and "
                    "Synapse ignores a filter it does not know (listing every task): check its name"], said


def test_a_filter_on_a_field_the_tasks_carry_is_checked_not_said_unchecked(synapse, files, client, tmp_path,
                                                                            caplog) -> None:
    """The warning is not for every undocumented filter: one on a field the tasks carry is checked
    against each listed task (this backend ignores an ``id`` filter: the check finds it out)."""
    pid = seed_tasks(synapse, files, 3)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    with caplog.at_level(logging.WARNING):
        result = export_tasks(pid, str(tmp_path / "f.manifest"), filters={"id": tasks[1]["id"]}, client=client)
    assert result.unchecked == [] and result.exported == 1
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [f"warning: the backend did not apply filter id={tasks[1]['id']}: 2 listed tasks do not match it and "
                    "were not exported"], said
    assert json.loads((tmp_path / "f.manifest").read_text())["synapse"]["task_id"] == tasks[1]["id"]


@pytest.mark.parametrize("key", ["limt", "Limit", "limits"])
def test_run_refuses_a_misspelt_limit_in_task_filters_before_any_request(synapse, files, tmp_path, key: str) -> None:
    """The tester's case: ``task_filters: {"limt": 2}`` wrote all 6 tasks, not 2: the backend ignores
    the key it does not know, so the guide's export limit was silently left out."""
    pid = seed_tasks(synapse, files, 6)
    params = tmp_path / "lim.json"
    params.write_text(json.dumps(file_params(pid, task_filters={key: 2})))
    done = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"filter {key!r} is not a filter the ToTask guide documents; did you mean 'limit'?" in done.stderr
    assert synapse.requests == [] and not (tmp_path / "runs").exists()
    assert all(task["data"] in ({}, None) for task in synapse.project_tasks(pid))


UNCHECKED = ("warning: filter stauts=pending could not be checked: no listed task holds 'stauts', and Synapse "
             "ignores a filter it does not know (listing every task): check its name")


def test_export_says_an_unchecked_filter_once_in_the_documented_form(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    done = run_cli("export", "--project", str(pid), "--filter", "stauts=pending", "-o", str(tmp_path / "e.manifest"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("could not be checked") == 1 and UNCHECKED in done.stderr.splitlines(), done.stderr


def test_run_says_an_unchecked_filter_once_in_the_documented_form(synapse, files, tmp_path) -> None:
    """It was said twice, without ``warning:``: by the export and again by the action for the job's log;
    the job's log still gets it, once, as a ``warning`` message."""
    pid = seed_tasks(synapse, files, 2)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(file_params(pid, task_filters={"stauts": "pending"})))
    done = run_cli("run", str(params), "--output", str(tmp_path / "runs"), env={"SYNAPSE_JOB_ID": str(synapse.add_job())})
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("could not be checked") == 1 and UNCHECKED in done.stderr.splitlines(), done.stderr
    [said] = [e for e in synapse.logs if e["data"].get("key") == "TOTASK_FILTER_NOT_APPLIED"]
    assert said["level"] == "warning" and said["data"]["content"] == UNCHECKED.removeprefix("warning: ")


@pytest.mark.parametrize("key", ["notes", "methd", "target_specificaton_name"])
def test_run_refuses_a_key_its_parameter_file_does_not_know_naming_the_keys_it_takes(synapse, files, tmp_path,
                                                                                       key: str) -> None:
    """``notes`` was ignored with a warning and the run went on: in a file the user wrote, a key the
    action does not read is a mistake (a misspelt one left the default in force)."""
    pid = seed_tasks(synapse, files, 2)
    params = tmp_path / "params.json"
    params.write_text(json.dumps(file_params(pid, **{key: "x"})))
    done = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"error: parameter file {params}: invalid parameters: {key}: not a ToTask parameter" in done.stderr
    assert "a parameter file takes only name, project, agent, description, task_filters, method, " \
           "target_specification_name, pre_processor, pre_processor_params, model, batch_size, schema, task_type, " \
           "converter" in done.stderr, done.stderr
    assert synapse.requests == [] and not (tmp_path / "runs").exists()


#: every key of synapse-sdk's ``ToTaskParams`` (2026.2.17: ``plugins/actions/to_task/action.py``)
SDK_KEYS = {"name": "Pre_Label", "description": "d", "project": 7, "agent": 1, "task_filters": {}, "method": "file",
            "target_specification_name": "annotation_data", "model": 3, "pre_processor": None,
            "pre_processor_params": {}, "batch_size": 1, "schema": "dm_schema_v1"}


def test_a_parameter_file_takes_every_key_the_sdk_takes() -> None:
    validate_params(SDK_KEYS, refuse_unknown=True)
