"""Integers beyond 64 bits in a task's data (a 24-digit scanner serial in ``extra``, a coordinate
a broken exporter wrote as 10**30) are exact JSON numbers to Synapse (Django reads and writes them
with Python's ``json``, as the SDK's ``requests`` does). orjson reads such an integer as a float:
rollback restored ``1.2345678901234568e+23`` where the task held ``123456789012345678901234``,
saying "restored"; a kept DM v1 document's such integer reached the manifest and Synapse as a
float, and a converter plugin's return holding one was refused as "not JSON" (the SDK writes both
exactly: ``tests/test_sdk_parity.py`` seeds one). Task data now travels exactly, file to Synapse to
journal and back.
"""

from __future__ import annotations

import json
from pathlib import Path

from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest._synapse.taskdata import data_hash, dumps_exact, loads_exact
from totask_manifest.testing.builders import applied_job

pytest_plugins = ["totask_manifest.testing.fixtures"]

SERIAL = 123456789012345678901234
BELOW = -9223372036854775809  # one below the signed 64-bit range
ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []},
            "extra": {"image_1": {"serial": SERIAL, "below": BELOW, "max_u64": 2**64 - 1, "ratio": 0.1}}}


def test_rollback_restores_integers_beyond_64_bits_exactly(synapse, files, client, tmp_path) -> None:
    job, tasks = applied_job(synapse, files, client, tmp_path, 2, data=ORIGINAL)
    assert synapse.tasks[tasks[0]]["data"]["extra"] == {}  # the job's write replaced it
    # the journal on disk keeps what each task held, digit for digit
    journal = (job / "synapse-journal.jsonl").read_text()
    assert str(SERIAL) in journal and str(BELOW) in journal
    summary = rollback_job(str(job), client=client).summary()
    assert summary == "rollback: 2 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed"
    for task in tasks:
        restored = synapse.tasks[task]["data"]["extra"]["image_1"]
        assert restored == ORIGINAL["extra"]["image_1"]
        assert type(restored["serial"]) is int and type(restored["below"]) is int
    # what the rollback sent: the exact digits, as the backend's JSON reader gets them
    puts = synapse.requests_to("PUT")[-2:]
    assert all(r.body["data"]["extra"]["image_1"]["serial"] == SERIAL for r in puts)
    # rollback again: the tasks already hold what they held before (not a change by someone else)
    again = rollback_job(str(job), client=client).summary()
    assert again == ("rollback: nothing to restore: the job's journal holds no write left to undo (never applied, "
                     "or every write undone already)")


def test_exact_json_round_trips_what_orjson_cannot_and_keeps_orjson_for_the_rest() -> None:
    doc = {"b": [SERIAL, BELOW, 1.5, "x" * 3], "a": {"é": None, "n": 2**63}}
    raw = json.dumps(doc).encode()
    assert loads_exact(raw) == doc and type(loads_exact(raw)["b"][0]) is int
    assert loads_exact(dumps_exact(doc)) == doc
    assert dumps_exact(doc, sort_keys=True).startswith(b'{"a":{"n":9223372036854775808,"\xc3\xa9":null}')
    # data without such integers: orjson's bytes, so the fingerprints recorded by earlier versions still match
    small = {"b": 1, "a": [1.25, "é"]}
    assert dumps_exact(small) == b'{"b":1,"a":[1.25,"\xc3\xa9"]}'
    assert data_hash(small) == data_hash({"a": [1.25, "é"], "b": 1})
    assert data_hash(doc) != data_hash({**doc, "b": [float(SERIAL), BELOW, 1.5, "xxx"]})


def big_dm_doc(i: int) -> str:
    """A DM v1 label file as a scanner's exporter writes it: an exact 23-digit id in ``extra`` and
    a coordinate past 2**64 (text: the file server sends it as it is)."""
    return json.dumps({
        "extra": {"image_1": {"scan_id": 98765432109876543210987}},
        "annotations": {"image_1": [{"id": f"a{i}", "tool": "bounding_box", "isLocked": False, "isVisible": True,
                                     "classification": {"class": "cat"}}]},
        "annotationsData": {"image_1": [{"id": f"a{i}", "coordinate": {"x": 1, "y": 2, "width": 2**65, "height": 4.5}}]}})


def labeled_from_big_files(synapse, files, client, tmp_path, n: int, **options):
    """``n`` tasks whose label file is ``big_dm_doc``, exported and labeled by a file job
    (``options``: the job's, a converter say): the project id and the job's result."""
    from totask_manifest import _api as api
    from totask_manifest._jobs.config import JobConfig
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest.testing.builders import seed_tasks

    pid = seed_tasks(synapse, files, n, label=big_dm_doc)
    manifest = tmp_path / "export.manifest"
    export_tasks(pid, str(manifest), client=client)
    result = api.annotate(JobConfig(job_name="big", input=str(manifest), output_root=str(tmp_path / "jobs"),
                                    label_attribute="boxes", task_type="object-detection", method="file",
                                    options={"target_specification_name": "annotation_data", **options}))
    assert result.status == "COMPLETED" and result.metrics["success"] == n, Path(result.job_url, "failures.jsonl")
    return pid, result


def test_a_kept_document_with_integers_beyond_64_bits_reaches_synapse_digit_for_digit(
        synapse, files, client, tmp_path) -> None:
    """The SDK's pass-through plugin reads the file with ``requests``' ``.json()`` and sends it with
    ``json=``: Synapse gets the file's integers exactly. The job's manifest line and apply's PUT do too."""
    pid, result = labeled_from_big_files(synapse, files, client, tmp_path, 2)
    written = Path(result.output_manifest).read_text()
    assert written.count("98765432109876543210987") == 2 and written.count(str(2**65)) == 2
    report = apply_job(result.job_url, client=client)
    assert report.totals["applied"] == 2, report.summary()
    for i, task in enumerate(sorted(synapse.project_tasks(pid), key=lambda t: t["id"])):
        assert task["data"] == json.loads(big_dm_doc(i))
        coordinate = task["data"]["annotationsData"]["image_1"][0]["coordinate"]
        assert type(coordinate["width"]) is int and type(task["data"]["extra"]["image_1"]["scan_id"]) is int
    assert apply_job(result.job_url, client=client).totals["unchanged"] == 2  # read back exactly: no change seen


def test_a_converter_plugin_returning_integers_beyond_64_bits_writes_them(synapse, files, client, tmp_path) -> None:
    """A ToTask plugin reads the file with ``.json()`` (Python's ``json``: exact integers) and the
    SDK sends what it returns with ``json=``: such a return is JSON, not "data that is not JSON"."""
    pid, result = labeled_from_big_files(synapse, files, client, tmp_path, 1,
                                         converter="tests.support.totask_plugins:PassThrough")
    assert apply_job(result.job_url, client=client).totals["applied"] == 1
    [task] = synapse.project_tasks(pid)
    assert task["data"] == {**json.loads(big_dm_doc(0)), "extra": {"image_1": {"scan_id": 98765432109876543210987},
                                                                    "converted_by": "PassThrough"}}
