"""Synapse parity on the data path: documents in the backend's format travel untouched, nothing is
dropped silently, file URLs are fetched again when they lapse, ToTask plugin classes convert, and
empty results are never submitted. Real contract server and file server on 127.0.0.1."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import orjson
import pytest

from tests.support import totask_plugins
from totask_manifest import ToTaskAction
from totask_manifest import _api as api
from totask_manifest._formats.detect import to_label
from totask_manifest._formats.model import FormatError
from totask_manifest._formats.native import EMPTY_RESULT, losses, native_format
from totask_manifest._jobs.config import JobConfig
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.fresh_urls import is_expired
from totask_manifest.testing.builders import seed_tasks, token_headers

pytest_plugins = ["totask_manifest.testing.fixtures"]

SPEC = "annotation_data"


def rich_dm_doc(i: int) -> dict:
    """DM schema v1 with two media, a rotated box, a polygon, a keypoint, classification
    attributes, ``extra``, a relation and a group: everything a Ground Truth label cannot hold."""
    return {
        "extra": {"image_1": {"brightness": 0.4}, "note": f"tâche {i}"},
        "annotations": {
            "image_1": [
                {"id": f"Bx{i:08d}", "tool": "bounding_box", "isLocked": True, "isVisible": True,
                 "classification": {"class": "car", "color": "red", "occluded": True}},
                {"id": f"Pg{i:08d}", "tool": "polygon", "isLocked": False, "isVisible": True,
                 "classification": {"class": "road"}},
                {"id": f"Kp{i:08d}", "tool": "keypoint", "classification": {"class": "nose", "visible": 2}},
            ],
            "image_2": [
                {"id": f"Cm{i:08d}", "tool": "bounding_box", "classification": {"class": "person",
                                                                                  "pose": ["standing", "left"]}},
            ],
        },
        "annotationsData": {
            "image_1": [
                {"id": f"Bx{i:08d}", "coordinate": {"x": 1.5 + i, "y": 2, "width": 30.25, "height": 20,
                                                    "rotation": 0.35}},
                {"id": f"Pg{i:08d}", "coordinate": [{"x": 1, "y": 1, "id": "p1"}, {"x": 10, "y": 1, "id": "p2"},
                                                    {"x": 5, "y": 9.5, "id": "p3"}]},
                {"id": f"Kp{i:08d}", "coordinate": {"x": 7, "y": 8}},
            ],
            "image_2": [{"id": f"Cm{i:08d}", "coordinate": {"x": 3, "y": 4, "width": 5, "height": 6}}],
        },
        "relations": {"image_1": [{"id": f"Rl{i:08d}", "tool": "relation", "annotationId": f"Bx{i:08d}",
                                   "targetAnnotationId": f"Kp{i:08d}", "classification": {"class": "has"}}]},
        "annotationGroups": {"image_1": [{"id": f"Gr{i:08d}", "tool": "annotationGroup",
                                          "classification": {"class": "vehicle"},
                                          "annotationList": [{"annotationId": f"Bx{i:08d}", "children": []}]}]},
    }


def annotate(tmp_path: Path, manifest: Path, name: str = "native", **options) -> api.JobResult:
    config = JobConfig(job_name=name, input=str(manifest), output_root=str(tmp_path / "jobs"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"target_specification_name": SPEC, **options})
    return api.annotate(config)


def output_records(result) -> list[dict]:
    return [orjson.loads(line) for line in Path(result.output_manifest).read_bytes().splitlines()]


def exported(synapse, files, client, tmp_path, n: int = 3, label=rich_dm_doc) -> tuple[int, Path]:
    pid = seed_tasks(synapse, files, n, label=label)
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    return pid, manifest


# --- 1. native data travels untouched ------------------------------------------------------------


def test_multi_media_dm_documents_travel_export_annotate_apply_json_equal(synapse, files, client, tmp_path) -> None:
    pid, manifest = exported(synapse, files, client, tmp_path)
    result = annotate(tmp_path, manifest)
    assert result.status == "COMPLETED" and result.metrics["success"] == 3, result.metrics
    records = output_records(result)
    for i, rec in enumerate(records):
        assert rec["boxes"] == rich_dm_doc(i)  # the document itself, inline
        meta = rec["boxes-metadata"]
        assert meta["type"] == "groundtruth/custom" and meta["format"] == "dm-schema-v1"
        assert native_format(meta) == "dm-schema-v1" and meta["job-name"] == "labeling-job/native"
    from totask_manifest._manifest.validate import validate_manifest

    checked = validate_manifest(result.output_manifest, workers=1)
    assert checked.ok, checked.problems
    report = apply_job(result.job_url, client=client)
    assert report.ok and report.totals["applied"] == 3, report.summary()
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    for i, task in enumerate(tasks):
        assert task["data"] == rich_dm_doc(i)  # JSON-equal to the file, both media, every field
    # the backend validated it as DM v1 (no ?schema=any for a DM document)
    assert all(r.query.get("schema") is None for r in synapse.requests_to("PUT"))


def test_objects_documents_travel_untouched_and_are_sent_with_schema_any(synapse, files, client, tmp_path) -> None:
    from totask_manifest.testing.builders import objects_doc

    pid, manifest = exported(synapse, files, client, tmp_path, n=2, label=objects_doc)
    result = annotate(tmp_path, manifest)
    assert [r["boxes-metadata"]["format"] for r in output_records(result)] == ["synapse-objects"] * 2
    assert apply_job(result.job_url, client=client).totals["applied"] == 2
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    assert [t["data"] for t in tasks] == [objects_doc(0), objects_doc(1)]
    assert {r.query.get("schema") for r in synapse.requests_to("PUT")} == {"any"}


def test_a_native_document_is_kept_whatever_the_task_type(synapse, files, client, tmp_path) -> None:
    _, manifest = exported(synapse, files, client, tmp_path, n=1)
    config = JobConfig(job_name="cls", input=str(manifest), output_root=str(tmp_path / "jobs"),
                       label_attribute="kind", task_type="image-classification", method="file",
                       options={"target_specification_name": SPEC, "input_format": "dm-schema-v1"})
    result = api.annotate(config)
    (rec,) = output_records(result)
    assert rec["kind"] == rich_dm_doc(0) and rec["kind-metadata"]["type"] == "groundtruth/custom"


# --- 2. no silent loss ---------------------------------------------------------------------------


def test_converting_names_what_would_be_lost_and_allow_drop_records_it(synapse, files, client, tmp_path) -> None:
    doc = rich_dm_doc(0)
    assert losses(doc, "dm-schema-v1", "object-detection") == {
        "polygon": 1, "keypoint": 1, "rotation": 1, "attribute": 2, "isLocked": 1, "extra": 2, "relation": 1,
        "group": 1, "media": 1, "annotation": 1}
    with pytest.raises(FormatError) as err:
        to_label(doc, "dm-schema-v1", "object-detection", image_size=(100, 80, 3))
    for named in ("1 polygon", "1 keypoint", "1 rotation", "2 attribute", "1 media", "1 relation", "1 group"):
        assert named in str(err.value)
    assert "--allow-drop" in str(err.value)
    labeled = to_label(doc, "dm-schema-v1", "object-detection", image_size=(100, 80, 3), allow_drop=True)
    assert labeled.value["annotations"] == [{"class_id": 0, "left": 1.5, "top": 2, "width": 30.25, "height": 20}]
    assert labeled.metadata["dropped"]["polygon"] == 1

    # the job: refused by default, recorded and counted with allow_drop
    _, manifest = exported(synapse, files, client, tmp_path, n=2)
    refused = annotate(tmp_path, manifest, name="refused", native="convert")
    assert refused.metrics["failed"] == 2 and "dropped" not in refused.metrics
    reason = output_records(refused)[0]["boxes-metadata"]["failure-reason"]
    assert "would drop" in reason and "polygon" in reason
    dropped = annotate(tmp_path, manifest, name="dropped", native="convert", allow_drop=True)
    assert dropped.metrics["success"] == 2 and dropped.metrics["dropped"] == 2
    for rec in output_records(dropped):
        assert rec["boxes-metadata"]["type"] == "groundtruth/object-detection"
        assert rec["boxes-metadata"]["dropped"] == {"polygon": 1, "keypoint": 1, "rotation": 1, "attribute": 2,
                                                    "isLocked": 1, "extra": 2, "relation": 1, "group": 1,
                                                    "media": 1, "annotation": 1}
    assert api.status(dropped.job_url)["metrics"]["dropped"] == 2


def test_lossless_conversion_needs_no_permission() -> None:
    doc = {"annotations": {"image_1": [{"id": "a1", "tool": "bounding_box", "isLocked": False, "isVisible": True,
                                        "classification": {"class": "cat", "confidence": 0.5}}]},
           "annotationsData": {"image_1": [{"id": "a1", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4,
                                                                      "rotation": 0}}]},
           "extra": {}, "relations": {}, "annotationGroups": {}}
    labeled = to_label(doc, "dm-schema-v1", "object-detection", image_size=(10, 10, 3))
    assert "dropped" not in labeled.metadata and labeled.metadata["objects"] == [{"confidence": 0.5}]


def test_keys_a_conversion_does_not_read_are_named_not_dropped() -> None:
    """A key the Ground Truth label has no place for (an annotation's own note, a box's ``z``, an
    object's track id) is a loss like a polygon: refused naming it, recorded with allow_drop."""
    doc = {"annotations": {"image_1": [{"id": "a1", "tool": "bounding_box", "isLocked": False, "isVisible": True,
                                        "memo": "check", "classification": {"class": "cat"}}]},
           "annotationsData": {"image_1": [{"id": "a1", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4,
                                                                      "z": 9}, "score_map": [1, 2]}]},
           "extra": {}}
    with pytest.raises(FormatError, match="1 annotation key memo, 1 annotationsData key score_map, "
                                          "1 coordinate key z"):
        to_label(doc, "dm-schema-v1", "object-detection", image_size=(10, 10, 3))
    labeled = to_label(doc, "dm-schema-v1", "object-detection", image_size=(10, 10, 3), allow_drop=True)
    assert labeled.metadata["dropped"] == {"annotation key memo": 1, "annotationsData key score_map": 1,
                                           "coordinate key z": 1}
    objects = {"objects": [{"id": 1, "type": "bbox", "track": 7, "properties": {"label": "a"},
                            "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4, "z": 1}}]}
    assert losses(objects, "synapse-objects", "object-detection") == {"object key track": 1, "coordinates key z": 1}


# --- 3. fresh file URLs --------------------------------------------------------------------------


@pytest.mark.parametrize("files_as_list", [False, True])
def test_expired_urls_are_fetched_again_from_synapse(files_as_list, synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 4, label=rich_dm_doc)
    synapse.url_ttl = -10.0  # the export's URLs lapse before anyone uses them
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    synapse.files_as_list = files_as_list  # the backend may name each file's specification in a list
    lines = [orjson.loads(raw) for raw in manifest.read_bytes().splitlines()]
    assert all(is_expired(rec["synapse"]["files"][SPEC]["url"]) for rec in lines)
    assert lines[0]["synapse"]["task_id"] and SPEC in lines[0]["synapse"]["files"]  # what a refresh needs
    synapse.url_ttl = 600.0
    before = len(synapse.requests_to("GET", r"^/tasks/\d+/$"))
    result = annotate(tmp_path, manifest)
    assert result.status == "COMPLETED" and result.metrics["success"] == 4, result.metrics
    refreshed = synapse.requests_to("GET", r"^/tasks/\d+/$")[before:]
    assert len(refreshed) == 4
    assert all(r.query == {"fields": "id,data,data_unit", "expand": "data_unit"} for r in refreshed)
    # no expired URL was even tried, and the file host never saw a Synapse token
    assert all(float(r.query["expires"]) > time.time() for r in files.requests if "expires" in r.query)
    assert token_headers(files.requests) == []


@pytest.mark.slow
def test_urls_refused_by_the_storage_host_are_fetched_again_and_a_resumed_job_works(
        synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3, label=rich_dm_doc)
    synapse.url_ttl = 3600.0
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    # days later: the storage host's clock has passed every URL issued at export
    later = time.time() + 3 * 86400
    files.clock = lambda: later
    synapse.clock = lambda: later
    result = annotate(tmp_path, manifest)
    assert result.metrics["success"] == 3, result.metrics
    assert len([r for r in files.requests if r.status == 403]) == 3  # each refused once, then fetched fresh
    assert apply_job(result.job_url, client=client).totals["applied"] == 3
    assert [t["data"] for t in sorted(synapse.project_tasks(pid), key=lambda t: t["id"])] == \
        [rich_dm_doc(i) for i in range(3)]
    # a chained job days later still works (the failed line of an earlier try is retried)
    files.clock = synapse.clock = lambda: later + 86400
    chained = api.chain(result.job_url, "second", label_attribute="again")
    assert chained.status == "COMPLETED" and chained.metrics["success"] == 3


def test_a_line_whose_url_is_missing_gets_one_from_synapse(synapse, files, client, tmp_path) -> None:
    """An exported line that lost its file URL (a manifest edited by hand, or an export of a data unit
    whose URL was not issued then) is labeled from a URL the backend gives now."""
    pid = seed_tasks(synapse, files, 3, label=rich_dm_doc)
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    lines = [orjson.loads(raw) for raw in manifest.read_bytes().splitlines()]
    del lines[0]["synapse"]["files"][SPEC]["url"]
    lines[1]["synapse"]["files"][SPEC]["url"] = ""
    manifest.write_bytes(b"".join(orjson.dumps(rec) + b"\n" for rec in lines))
    before = len(synapse.requests_to("GET", r"^/tasks/\d+/$"))
    result = annotate(tmp_path, manifest)
    assert result.status == "COMPLETED" and result.metrics["success"] == 3, result.metrics
    assert [rec["boxes"] for rec in output_records(result)] == [rich_dm_doc(i) for i in range(3)]
    asked = {int(r.path.split("/")[2]) for r in synapse.requests_to("GET", r"^/tasks/\d+/$")[before:]}
    assert asked == {lines[0]["synapse"]["task_id"], lines[1]["synapse"]["task_id"]}  # only those two
    assert token_headers(files.requests) == []


@pytest.mark.parametrize("status", [400, 401])
def test_a_url_answered_400_or_401_is_fetched_again(status, synapse, files, client, tmp_path) -> None:
    """Storage hosts answer a lapsed or broken signature with 400 or 401 too (GCS, Azure), not only 403."""
    pid = seed_tasks(synapse, files, 2, label=rich_dm_doc)
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    files.add_fault(status=status, method="GET", path="/labels/", times=2)  # each label's first request
    before = len(synapse.requests_to("GET", r"^/tasks/\d+/$"))
    result = annotate(tmp_path, manifest)
    assert result.status == "COMPLETED" and result.metrics["success"] == 2, result.metrics
    assert len([r for r in files.requests if r.status == status]) == 2
    assert len(synapse.requests_to("GET", r"^/tasks/\d+/$")) - before == 2  # a fresh URL for each
    assert [rec["boxes"] for rec in output_records(result)] == [rich_dm_doc(0), rich_dm_doc(1)]


def test_without_credentials_an_expired_url_fails_its_line_with_the_reason(synapse, files, client, tmp_path,
                                                                          monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 1, label=rich_dm_doc)
    synapse.url_ttl = -10.0
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    monkeypatch.delenv("SYNAPSE_ACCESS_TOKEN")
    result = annotate(tmp_path, manifest)
    reason = output_records(result)[0]["boxes-metadata"]["failure-reason"]
    assert reason.startswith("no URL: the URL has expired, and a fresh one could not be had")
    assert "SYNAPSE_ACCESS_TOKEN" in reason or "credential" in reason.lower()


# --- 4. existing ToTask plugins ------------------------------------------------------------------


@pytest.mark.parametrize("plugin", ["PassThrough", pytest.param("NeedsContext", marks=pytest.mark.slow)])
def test_an_sdk_style_plugin_class_converts_for_annotate(plugin, synapse, files, client, tmp_path) -> None:
    totask_plugins.calls.clear()
    pid, manifest = exported(synapse, files, client, tmp_path, n=2)
    result = annotate(tmp_path, manifest, converter=f"tests.support.totask_plugins:{plugin}")
    assert result.metrics["success"] == 2, result.metrics
    for i, rec in enumerate(output_records(result)):
        want = rich_dm_doc(i)
        want["extra"]["converted_by"] = "PassThrough"
        assert rec["boxes"] == want and rec["boxes-metadata"]["format"] == "dm-schema-v1"
    calls = sorted((c for c in totask_plugins.calls if c[0] == "convert_data_from_file"), key=lambda c: c[1][1])
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    for i, (_, args, kwargs) in enumerate(calls):
        unit = synapse.data_units[tasks[i]["data_unit"]]["files"]
        assert args == (unit["image_1"]["url"], f"{i}.jpg", unit[SPEC]["url"], f"{i}.json")
        assert kwargs["task_data"]["id"] == tasks[i]["id"] and "data_unit" in kwargs["task_data"]
    if plugin == "NeedsContext":  # the job's parameters, as run gives the action's: name and specification
        assert {c[1] for c in totask_plugins.calls if c[0] == "context"} == {("native", "native", SPEC)}


@pytest.mark.slow
def test_an_sdk_style_plugin_class_converts_for_run_and_inference(synapse, files, tmp_path) -> None:
    totask_plugins.calls.clear()
    pid = seed_tasks(synapse, files, 2, label=rich_dm_doc)
    params = {"name": "Plugin_Run", "project": pid, "agent": 1, "method": "file",
              "target_specification_name": SPEC, "converter": "tests.support.totask_plugins:NeedsContext"}
    result = ToTaskAction(params=params, output_root=str(tmp_path)).start()
    assert result["status"] == "SUCCEEDED" and "success=2" in result["message"], result
    assert [c[1] for c in totask_plugins.calls if c[0] == "context"] == [("Plugin_Run", "Plugin_Run", SPEC)] * 2
    for i, task in enumerate(sorted(synapse.project_tasks(pid), key=lambda t: t["id"])):
        want = rich_dm_doc(i)
        want["extra"]["converted_by"] = "PassThrough"
        assert task["data"] == want

    rel = synapse.add_release("det", version="2.0.0")
    pid2 = seed_tasks(synapse, files, 2)
    synapse.inference = lambda body: {"label": "dog", "box": {"x": 1, "y": 2, "width": 3, "height": 4}}
    params = {"name": "Plugin_Inference", "project": pid2, "agent": 1, "method": "inference", "pre_processor": rel,
              "model": 7, "pre_processor_params": {"threshold": 0.5},
              "converter": "tests.support.totask_plugins:PassThrough"}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing={"poll_interval": 0.01}).start()
    assert result["status"] == "SUCCEEDED" and "success=2" in result["message"], result
    calls = [r.body for r in synapse.requests_to("POST", "^/plugins/det/run/$") if r.body["action"] == "inference"]
    assert len(calls) == 2 and all(c["params"]["json"]["from_plugin"] is True and c["params"]["model"] == 7
                                   and c["params"]["json"]["threshold"] == 0.5 for c in calls)
    for task in synapse.project_tasks(pid2):
        assert task["data"]["annotations"]["image_1"][0]["classification"] == {"class": "dog"}
        assert task["data"]["extra"] == {"converted_by": "PassThrough"}


def test_a_converter_that_cannot_be_loaded_is_a_usage_error(tmp_path) -> None:
    from totask_manifest._errors import UsageError
    from totask_manifest._to_task.params import validate_params

    with pytest.raises(UsageError, match="no 'Missing'"):
        validate_params({"name": "x", "project": 1, "agent": 1, "target_specification_name": "a",
                         "converter": "tests.support.totask_plugins:Missing"})
    with pytest.raises(UsageError, match="is not a class"):
        validate_params({"name": "x", "project": 1, "agent": 1, "target_specification_name": "a",
                         "converter": "tests.support.totask_plugins:calls"})
    with pytest.raises(UsageError, match="has no convert_data_from_inference"):
        validate_params({"name": "x", "project": 1, "agent": 1, "method": "inference", "pre_processor": 3,
                         "converter": "tests.support.totask_plugins:Empty"})


# --- 5. empty results are never submitted --------------------------------------------------------


@pytest.mark.slow
def test_empty_results_are_not_submitted_and_fail_their_task(synapse, files, client, tmp_path) -> None:
    empty = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}}
    pid, manifest = exported(synapse, files, client, tmp_path, n=3,
                             label=lambda i: rich_dm_doc(i) if i != 1 else empty)
    result = annotate(tmp_path, manifest)
    assert result.metrics["success"] == 2 and result.metrics["failed"] == 1
    reason = output_records(result)[1]["boxes-metadata"]["failure-reason"]
    assert reason.startswith("empty document: ") and "/labels/1.json holds no annotation" in reason  # the file named

    # an output manifest written elsewhere that holds an empty document: apply refuses to send it
    # (its job.json without the output's record, as an older version wrote it: a changed output is
    # refused whole otherwise, test_output_changed)
    records = output_records(result)
    records[1]["boxes"] = copy.deepcopy(empty)
    records[1]["boxes-metadata"] = {**records[0]["boxes-metadata"]}
    Path(result.output_manifest).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    job_json = Path(result.job_url) / "job.json"
    state = orjson.loads(job_json.read_bytes())
    del state["runs"][-1]["output"]
    job_json.write_bytes(orjson.dumps(state))
    report = apply_job(result.job_url, client=client)
    tid = records[1]["synapse"]["task_id"]
    assert [r.status for r in report.results] == ["applied", "failed", "applied"]
    assert report.results[1].detail == EMPTY_RESULT
    assert synapse.requests_to("PUT", f"^/tasks/{tid}/") == []

    # the action counts it as the SDK does: a failed task, nothing sent
    synapse.requests.clear()
    action = ToTaskAction(params={"name": "Empty_Plugin", "project": pid, "agent": 1, "method": "file",
                                  "target_specification_name": SPEC,
                                  "converter": "tests.support.totask_plugins:Empty"},
                          output_root=str(tmp_path / "action")).start()
    # nothing was labeled: the run does not say success (issue 11), yet it counts each task as the SDK does
    assert action["status"] == "FAILED" and "no line was labeled" in action["message"], action
    assert (action["total_tasks"], action["success_count"], action["failed_count"]) == (3, 0, 3)
    # the file method's reason, naming each file (not the SDK's inference code: no inference was asked)
    assert len(action["failures"]) == 3 and all(
        f["error"].startswith("empty document: the converter's convert_data_from_file returned no annotation for ")
        for f in action["failures"]), action["failures"]
    assert synapse.requests_to("PUT") == []


@pytest.mark.slow
def test_with_schema_any_an_empty_document_is_submitted_as_the_sdk_submits_it(synapse, files, tmp_path) -> None:
    """``schema: any`` sends ``?schema=any``, which skips the backend's DM check (the one refusing an
    empty submit): the SDK's file method then writes the file's empty document, and so does ``run``;
    a falsy inference reply (``{}``) is still never submitted, as in the SDK."""
    empty = {"extra": {}, "annotations": {"image_1": []}, "annotationsData": {"image_1": []}}
    pid = seed_tasks(synapse, files, 3, label=lambda i: rich_dm_doc(i) if i != 1 else empty)
    params = {"name": "Empty_Any", "project": pid, "agent": 1, "method": "file", "target_specification_name": SPEC,
              "schema": "any"}
    result = ToTaskAction(params=params, output_root=str(tmp_path)).start()
    assert "success=3, failed=0" in result["message"], result
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    assert tasks[1]["data"] == empty
    assert {r.query.get("schema") for r in synapse.requests_to("PUT")} == {"any"}

    rel = synapse.add_release("det", version="2.0.0")
    pid2 = seed_tasks(synapse, files, 2)
    synapse.inference = lambda body: {} if body["params"]["json"]["image_path"].endswith("/0.png") else empty
    params = {"name": "Empty_Any_Inference", "project": pid2, "agent": 1, "method": "inference",
              "pre_processor": rel, "schema": "any"}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing={"poll_interval": 0.01}).start()
    assert "success=1, failed=1" in result["message"], result
    assert [f["error"] for f in result["failures"]] == [EMPTY_RESULT]
    assert sorted(t["data"] == empty for t in synapse.project_tasks(pid2)) == [False, True]


# --- stats, report and convert read kept documents ------------------------------------------------


def test_stats_report_and_convert_read_kept_documents(synapse, files, client, tmp_path) -> None:
    import base64
    import io
    import re

    from PIL import Image

    from totask_manifest._analytics.convert import convert
    from totask_manifest._analytics.report import render_report
    from totask_manifest._analytics.stats import format_text, manifest_stats
    from totask_manifest._errors import ManifestError

    _, manifest = exported(synapse, files, client, tmp_path)
    result = annotate(tmp_path, manifest)
    out = result.output_manifest

    stats = manifest_stats(out, workers=1).attributes["boxes"]
    assert stats.types == {"custom": 3} and stats.labeled == 3
    assert stats.tools == {"bounding_box": 6, "keypoint": 3, "polygon": 3}
    assert {c.name: c.count for c in stats.classes} == {"car": 3, "road": 3, "nose": 3, "person": 3}
    assert stats.boxes_per_image == {2: 3} and stats.boxes == 6
    assert "annotations per tool: bounding_box (6)" in format_text(manifest_stats(out, workers=1))

    html, tiles, _ = render_report(result.job_url, samples=3)
    assert tiles == 3 and "1 bounding_box, 1 keypoint, 1 polygon (image_1; 2 media)" in html
    assert "annotations per tool" in html and "car" in html
    thumb = Image.open(io.BytesIO(base64.b64decode(re.findall(r'src="data:image/jpeg;base64,([^"]+)"', html)[0])))
    background = (30, 60, 90)
    pixels = thumb.convert("RGB").tobytes()
    assert any(max(abs(pixels[i + k] - background[k]) for k in range(3)) > 60 for i in range(0, len(pixels), 3))

    # to Synapse task data: the documents as they are
    dm = tmp_path / "t.dm.jsonl"
    convert(out, str(dm), to="dm-schema-v1")
    assert [orjson.loads(x)["data"] for x in dm.read_bytes().splitlines()] == [rich_dm_doc(i) for i in range(3)]
    back = tmp_path / "back.manifest"
    convert(str(dm), str(back), to="manifest")
    assert [orjson.loads(x)["label"] for x in back.read_bytes().splitlines()] == [rich_dm_doc(i) for i in range(3)]
    with pytest.raises(ManifestError, match="synapse-objects"):
        convert(out, str(tmp_path / "t.objects.jsonl"), to="synapse-objects")
    # to COCO: refused naming what would be lost, or dropped and counted when allowed
    with pytest.raises(ManifestError, match=r"would drop .*1 polygon"):
        convert(out, str(tmp_path / "c.json"), to="coco")
    with pytest.raises(FormatError, match="would drop"):
        convert(str(dm), str(tmp_path / "gt.manifest"), to="manifest", task_type="object-detection")
    done = convert(out, str(tmp_path / "c.json"), to="coco", allow_drop=True)
    assert done.counts["annotations"] == 3 and done.counts["dropped"] == 3 * 12
    coco = orjson.loads((tmp_path / "c.json").read_bytes())
    assert [a["bbox"] for a in coco["annotations"]] == [[1.5, 2, 30.25, 20], [2.5, 2, 30.25, 20], [3.5, 2, 30.25, 20]]
    assert coco["images"][0]["width"] == 64  # read from the image: DM v1 carries no size


def test_inference_reads_each_task_first_so_an_old_export_still_works(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    rel = synapse.add_release("det", version="1.0.0")
    synapse.add_serve_app("det", 1, "RUNNING")
    synapse.url_ttl = -10.0  # the export's URLs have lapsed by the time the job runs
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    synapse.url_ttl = 600.0
    reply = {"annotations": {"image_1": [{"id": "r1", "tool": "bounding_box", "classification": {"class": "cat"}}]},
             "annotationsData": {"image_1": [{"id": "r1", "coordinate": {"x": 1, "y": 1, "width": 2, "height": 2}}]}}
    synapse.inference = lambda body: reply
    config = JobConfig(job_name="inf", input=str(manifest), output_root=str(tmp_path / "jobs"),
                       label_attribute="boxes", task_type="object-detection", method="synapse-preprocessor",
                       options={"pre_processor": rel, "agent": 1})
    result = api.annotate(config)
    assert result.metrics["success"] == 3, result.metrics
    sent = [r.body["params"]["json"]["image_path"] for r in synapse.requests_to("POST", "^/plugins/det/run/$")]
    assert len(sent) == 3 and all(not is_expired(u) for u in sent)  # fresh URLs from each task's GET
    assert all(rec["boxes"] == reply and rec["boxes-metadata"]["format"] == "dm-schema-v1"
               for rec in output_records(result))


@pytest.mark.slow
def test_cli_options_reach_the_job(synapse, files, client, tmp_path, capsys) -> None:
    from totask_manifest._cli import main

    _, manifest = exported(synapse, files, client, tmp_path, n=2)
    base = ["annotate", str(manifest), "--label-attribute", "boxes", "--task-type", "object-detection",
            "--method", "file", "--target-specification-name", SPEC, "--output", str(tmp_path / "cli")]
    assert main([*base, "--job-name", "drop", "--native", "convert", "--allow-drop"]) == 0, capsys.readouterr()
    job = orjson.loads((tmp_path / "cli" / "drop" / "job.json").read_bytes())
    assert job["config"]["options"]["native"] == "convert" and job["config"]["options"]["allow_drop"] is True
    assert job["metrics"]["dropped"] == 2
    assert main([*base, "--job-name", "plug", "--converter", "tests.support.totask_plugins:PassThrough"]) == 0
    out = tmp_path / "cli" / "plug" / "manifests" / "output" / "output.manifest"
    assert all(orjson.loads(x)["boxes"]["extra"]["converted_by"] == "PassThrough" for x in out.read_bytes().splitlines())
    code = main([*base, "--job-name", "bad", "--converter", "tests.support.totask_plugins:Nope"])
    assert code == 2 and "has no 'Nope'" in capsys.readouterr().err


def test_coco_segmentations_are_not_dropped_silently(tmp_path) -> None:
    from totask_manifest._analytics.convert import convert

    doc = {"images": [{"id": 1, "width": 40, "height": 30, "file_name": "a.png"}],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4],
                            "segmentation": [[1, 2, 4, 2, 4, 6]], "attributes": {"occluded": True}}]}
    with pytest.raises(FormatError, match="would drop 1 attribute, 1 segmentation"):
        to_label(doc, "coco", "object-detection")
    assert to_label(doc, "coco", "object-detection", allow_drop=True).metadata["dropped"] == {
        "segmentation": 1, "attribute": 1}
    src = tmp_path / "in.json"
    src.write_bytes(orjson.dumps(doc))
    with pytest.raises(FormatError, match="would drop"):
        convert(str(src), str(tmp_path / "a.manifest"), to="manifest", task_type="object-detection")
    done = convert(str(src), str(tmp_path / "a.manifest"), to="manifest", task_type="object-detection",
                   allow_drop=True)
    assert done.counts["dropped"] == 1
    (line,) = (tmp_path / "a.manifest").read_bytes().splitlines()
    assert orjson.loads(line)["label-metadata"]["dropped"] == {"segmentation": 1, "attribute": 1}


@pytest.mark.slow
def test_a_job_stopped_then_resumed_after_its_urls_lapsed_works(synapse, files, client, tmp_path) -> None:
    import os
    import signal

    pid = seed_tasks(synapse, files, 8, label=rich_dm_doc)
    synapse.url_ttl = 3600.0
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    config = JobConfig(job_name="stopped", input=str(manifest), output_root=str(tmp_path / "jobs"),
                       label_attribute="boxes", task_type="object-detection", method="file", checkpoint_every=1,
                       options={"target_specification_name": SPEC, "concurrency": 1})
    sent = []

    def stop_after_two(server, recorded) -> None:  # the user presses Ctrl-C while the job runs
        if recorded.path.startswith("/labels/") and len(files.requests) >= 2 and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    files.hooks.append(stop_after_two)
    first = api.annotate(config)
    files.hooks.clear()
    assert first.status == "STOPPED" and first.metrics["success"] < 8, first.metrics
    later = time.time() + 7 * 86400  # a week later every URL of the export has lapsed
    files.clock = synapse.clock = lambda: later
    resumed = api.resume(first.job_url)
    assert resumed.status == "COMPLETED" and resumed.metrics["success"] == 8, resumed.metrics
    assert [rec["boxes"] for rec in output_records(resumed)] == [rich_dm_doc(i) for i in range(8)]
    assert any(r.status == 403 for r in files.requests)  # the old URLs were refused, the fresh ones served


@pytest.mark.slow
def test_a_plugin_that_misbehaves_fails_only_its_task_with_the_token_masked(synapse, files, client, tmp_path,
                                                                             capsys) -> None:
    """A plugin raising (with the token in its message), returning what JSON cannot hold, or NaN
    (which orjson would quietly write as null) fails that task with a reason, as in the SDK; the
    others are written; the token appears nowhere: not in the manifest, failures.jsonl, the result."""
    from totask_manifest.testing.builders import TOKEN

    _, manifest = exported(synapse, files, client, tmp_path, n=4)
    result = annotate(tmp_path, manifest, converter="tests.support.totask_plugins:Misbehaving")
    assert result.metrics["success"] == 1 and result.metrics["failed"] == 3, result.metrics
    reasons = [r["boxes-metadata"].get("failure-reason") for r in output_records(result)]
    assert reasons[0] == "convert: RuntimeError: backend refused token ***"
    assert reasons[1].startswith("convert: the converter returned data that is not JSON")
    assert reasons[2] == ("convert: the converter returned a number JSON cannot hold (NaN or infinity) at "
                          "annotationsData.image_1[0].coordinate.x")
    assert reasons[3] is None
    job_dir = Path(result.job_url)
    for path in job_dir.rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(errors="replace"), path

    # the inference method: the same plugin behind convert_data_from_inference, through run
    rel = synapse.add_release("det", version="2.0.0")
    pid2 = seed_tasks(synapse, files, 4)
    synapse.inference = lambda body: {"index": body["params"]["json"]["image_path"].rsplit("/", 1)[-1].split(".")[0],
                                      "label": "dog", "box": {"x": 1, "y": 2, "width": 3, "height": 4}}
    params = {"name": "Misbehaving_Inference", "project": pid2, "agent": 1, "method": "inference",
              "pre_processor": rel, "converter": "tests.support.totask_plugins:Misbehaving"}
    action = ToTaskAction(params=params, output_root=str(tmp_path / "action"), timing={"poll_interval": 0.01}).start()
    assert action["status"] == "SUCCEEDED" and "success=1, failed=3" in action["message"], action
    errors = sorted(f["error"] for f in action["failures"])
    assert errors == sorted([
        "convert_data_from_inference: RuntimeError: backend refused token ***",
        "convert_data_from_inference: the converter returned data that is not JSON "
        "(Type is not JSON serializable: set)",
        "convert_data_from_inference: the converter returned a number JSON cannot hold (NaN or "
        "infinity) at annotationsData.image_1[0].coordinate.x"]), errors
    assert TOKEN not in orjson.dumps(action).decode() and TOKEN not in capsys.readouterr().err
    written = [t for t in synapse.project_tasks(pid2) if t.get("writes")]
    assert len(written) == 1 and written[0]["data"]["extra"] == {"converted_by": "PassThrough"}
