"""A multi-label whose ``confidence-map`` scores classes it does not choose (a model's scores below
its threshold; real Ground Truth output holds them, ``shared/reference/ground-truth.md``): Synapse
task data holds the chosen classes only. ``convert`` refuses such a line unless ``--allow-drop``,
and ``apply`` fails its task naming the score instead of sending the label without it."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.test_user_mistakes import cli
from totask_manifest._formats.synapse import gt_to_dm_v1
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.state import JobState
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

TYPE = "image-classification-multilabel"


def _meta(scores: dict[str, float]) -> dict:
    return {"job-name": "labeling-job/j", "class-map": {"0": "cat", "1": "bird"}, "human-annotated": "no",
            "creation-date": "2026-01-01T00:00:00.000000", "confidence-map": scores,
            "type": f"groundtruth/{TYPE}"}


def test_convert_with_allow_drop_leaves_the_unchosen_score_out_and_counts_it(tmp_path: Path) -> None:
    line = {"source-ref": "s3://b/a.jpg", "m": [0], "m-metadata": _meta({"0": 0.9, "1": 0.1})}
    (tmp_path / "m.manifest").write_bytes(orjson.dumps(line) + b"\n")
    refused = cli("convert", "m.manifest", "t.dm.jsonl", "--to", "dm-schema-v1", cwd=tmp_path)
    assert refused.returncode == 1 and "--allow-drop" in refused.stderr, refused.stderr
    r = cli("convert", "m.manifest", "t.dm.jsonl", "--to", "dm-schema-v1", "--allow-drop", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "dropped" in r.stdout + r.stderr, r.stdout + r.stderr
    [doc] = [orjson.loads(x) for x in (tmp_path / "t.dm.jsonl").read_bytes().splitlines()]
    [ann] = doc["data"]["annotations"]["image_1"]
    assert ann["classification"] == {"class": "cat", "confidence": 0.9}


def test_apply_fails_the_task_whose_label_scores_a_class_it_does_not_choose(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    state = JobState(JobConfig("ml", str(export), str(tmp_path), "m", TYPE), status="COMPLETED")
    out = Path(state.layout.output_manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    scores = [{"0": 0.9, "1": 0.1}, {"0": 0.8}]  # line 1 scores 'bird', which it does not choose
    lines = [orjson.loads(raw) | {"m": [0], "m-metadata": _meta(s)}
             for raw, s in zip(export.read_bytes().splitlines(), scores, strict=True)]
    out.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    state.save()
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    report = apply_job(state.layout.job_url, client=client)
    by_task = {r.task_id: r for r in report.results}
    first, second = by_task[tasks[0]["id"]], by_task[tasks[1]["id"]]
    assert first.status == "failed" and "confidence-map" in first.detail and "'bird'" in first.detail, first.detail
    assert synapse.requests_to("PUT", f"^/tasks/{tasks[0]['id']}/") == []  # nothing sent without its score
    assert "--allow-drop leaves it out" in first.detail, first.detail  # the way forward, named
    assert second.status == "applied"
    assert tasks[1]["data"] == gt_to_dm_v1(TYPE, [0], _meta({"0": 0.8}), confidence_attribute="confidence")
    allowed = apply_job(state.layout.job_url, client=client, allow_drop=True)  # the chosen class, its score
    assert allowed.totals["applied"] == 1 and allowed.totals["unchanged"] == 1, allowed.totals
    [put] = synapse.requests_to("PUT", f"^/tasks/{tasks[0]['id']}/")
    [ann] = put.body["data"]["annotations"]["image_1"]
    assert ann["classification"] == {"class": "cat", "confidence": 0.9}


def test_an_unchosen_class_with_no_name_is_said_in_words(tmp_path: Path) -> None:
    """Ground Truth's own multi-label output (``shared/reference/ground-truth.md`` §2.5) names the
    chosen classes only in ``class-map`` while ``confidence-map`` scores others: the refusal said
    ``class 0 (None)``, a class named None. It says the class has no name, and that such scores
    are Ground Truth's ordinary output, which ``--allow-drop`` leaves out counted."""
    meta = _meta({"1": 0.86, "0": 0.37, "2": 0.4}) | {"class-map": {"1": "optimism"}}
    line = {"source-ref": "s3://b/a.jpg", "m": [1], "m-metadata": meta}
    (tmp_path / "m.manifest").write_bytes(orjson.dumps(line) + b"\n")
    refused = cli("convert", "m.manifest", "t.dm.jsonl", "--to", "dm-schema-v1", cwd=tmp_path)
    assert refused.returncode == 1
    assert "key 'm-metadata.confidence-map.0': confidence-map scores class 0 (no name in class-map)" in refused.stderr
    assert "None" not in refused.stderr and "Ground Truth's own multi-label output" in refused.stderr
    assert not (tmp_path / "t.dm.jsonl").exists()
    kept = cli("convert", "m.manifest", "t.dm.jsonl", "--to", "dm-schema-v1", "--allow-drop", cwd=tmp_path)
    assert kept.returncode == 0 and "dropped 2" in kept.stdout + kept.stderr, kept.stdout + kept.stderr
