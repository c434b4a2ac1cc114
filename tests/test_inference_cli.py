"""``totask-manifest annotate --method inference`` in real subprocesses: output checked against
the schema and the thresholds, a corrupt image, bad parameters, kill -9 then resume, chaining."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytest.importorskip("torch")

from tests.jobs_helpers import REPO, assert_same_output, output_of, popen_cli, run_cli
from tests.test_inference_support import (
    SLOW_DETECTOR_MODULE,
    ColorBoxes,
    detection_set,
    save_scripted,
    write_manifest,
)
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._manifest.validate import check_label

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("inf")
    expected = detection_set(base / "img", 30)
    (base / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    refs = [f"img/img{i:04d}.png" for i in range(30)]
    refs.insert(12, "img/corrupt.png")
    write_manifest(base / "in.manifest", refs)
    model = save_scripted(ColorBoxes(), base / "colorboxes.pt")
    (base / "slowboxes.py").write_text(SLOW_DETECTOR_MODULE + "\n\ndef fast():\n    return SlowBoxes(0.0)\n")
    return {"base": base, "expected": expected, "model": model, "refs": refs}


def annotate_args(d: dict, out: Path, job: str, *extra: str) -> list[str]:
    return ["annotate", str(d["base"] / "in.manifest"), "--job-name", job, "--task-type", "object-detection",
            "--method", "inference", "--model", str(d["model"]), "--allow-root", str(d["base"]),
            "--output", str(out), *extra]


def lines_of(out: Path, job: str) -> list[dict]:
    return [orjson.loads(x) for x in output_of(out, job).read_bytes().splitlines()]


@pytest.mark.slow
def test_annotate_with_params_file_validates_and_fails_the_corrupt_line(tmp_path, data):
    params = tmp_path / "params.yaml"
    params.write_text("confidence_threshold: 0.3\nmodel_config:\n  batch_size: 8\n  device: cuda\n")
    r = run_cli(*annotate_args(data, tmp_path / "out", "det", "--params", str(params)), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "success=30 failed=1" in r.stdout
    assert "falling back to the CPU" in r.stderr  # cuda asked for, none here
    recs = lines_of(tmp_path / "out", "det")
    assert len(recs) == 31
    expected = iter(data["expected"])
    for ref, rec in zip(data["refs"], recs, strict=True):
        assert rec["source-ref"] == ref
        meta = rec["det-metadata"]
        if ref.endswith("corrupt.png"):
            assert "det" not in rec and "not a readable image" in meta["failure-reason"]
            continue
        exp = next(expected)
        assert rec["det"]["annotations"] == [exp["red"], exp["green"]]  # both above 0.3
        assert all(o["confidence"] >= 0.3 for o in meta["objects"])
        assert meta["type"] == "groundtruth/object-detection" and meta["human-annotated"] == "no"
        assert check_label("object-detection", rec["det"], meta, attribute="det") == []
    job = (tmp_path / "out" / "det" / "job.json").read_text()
    assert '"confidence_threshold": 0.3' in job  # the params file's content travels with the job
    failures = [orjson.loads(x) for x in (tmp_path / "out" / "det" / "failures.jsonl").read_bytes().splitlines()]
    assert [(f["line"], f["source"]) for f in failures] == [(13, "img/corrupt.png")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # one CLI process is the fast lane's case; the others run in the slow lane
        pytest.param(["--confidence-threshold", "1.5"], "confidence_threshold must be between 0 and 1",
                     marks=pytest.mark.slow),
        (["--device", "tpu"], "model_config.device must be one of"),
        pytest.param(["--params", "{missing}"], "--params: no such file", marks=pytest.mark.slow),
        pytest.param(["--review-below", "7"], "--review-below must be a number between 0 and 1",
                     marks=pytest.mark.slow),
    ],
)
def test_bad_options_exit_2_with_one_line_and_no_job(tmp_path, data, extra, message):
    extra = [str(tmp_path / "absent.yaml") if e == "{missing}" else e for e in extra]
    r = run_cli(*annotate_args(data, tmp_path / "out", "bad", *extra), timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "bad").exists()


@pytest.mark.slow
def test_cli_builds_without_importing_torch():
    code = (
        "import sys\n"
        "from totask_manifest._cli import build_parser\n"
        "for command in build_parser()._subparsers._group_actions[0].choices.values():\n"
        "    command.format_help()  # the job commands' method and engine flags are built on use\n"
        "import totask_manifest._annotators.inference, totask_manifest._models.params, totask_manifest._models.loading\n"
        "import totask_manifest._models.postprocess, totask_manifest._models.device\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr


def wait_for_parts(job_dir: Path, minimum: int, timeout: float = 120.0) -> None:
    layout = JobLayout(str(job_dir))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(layout.parts()) >= minimum:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint in time")


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_output(tmp_path, data):
    base = data["base"]
    common = ["--batch-size", "4", "--checkpoint-every", "4", "--label-attribute", "boxes"]
    ref_args = annotate_args(data, tmp_path / "ref", "ref", *common)
    ref_args[ref_args.index("--model") + 1] = f"{base / 'slowboxes.py'}:fast"
    r = run_cli(*ref_args, timeout=300)
    assert r.returncode == 0, r.stderr

    args = annotate_args(data, tmp_path / "out", "killed", *common)
    args[args.index("--model") + 1] = f"{base / 'slowboxes.py'}:make"  # 50 ms per image
    proc = popen_cli(*args)
    try:
        wait_for_parts(tmp_path / "out" / "killed", minimum=2)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    job = orjson.loads((tmp_path / "out" / "killed" / "job.json").read_bytes())
    assert job["status"] == "RUNNING"  # killed: nobody wrote an end state
    r = run_cli("resume", str(tmp_path / "out" / "killed"), timeout=300)
    assert r.returncode == 0, r.stderr
    job = orjson.loads((tmp_path / "out" / "killed" / "job.json").read_bytes())
    assert job["status"] == "COMPLETED" and job["metrics"]["success"] == 30 and job["metrics"]["failed"] == 1
    renamed = tmp_path / "renamed.manifest"
    renamed.write_bytes(output_of(tmp_path / "out", "killed").read_bytes().replace(b"labeling-job/killed",
                                                                                  b"labeling-job/ref"))
    assert_same_output(output_of(tmp_path / "ref", "ref"), renamed)


@pytest.mark.slow
def test_routed_lines_are_picked_up_by_a_chained_job(tmp_path, data):
    out = tmp_path / "out"
    # every red box scores 0.902 < 0.95: all lines go to review, none is labeled
    r = run_cli(*annotate_args(data, out, "strict", "--label-attribute", "boxes", "--review-below", "0.95"),
                timeout=300)
    assert r.returncode == 0, r.stderr
    assert "success=0 failed=1 routed=30" in r.stdout
    routed = [x for x in lines_of(out, "strict") if "failure-reason" not in x["boxes-metadata"]]
    assert len(routed) == 30
    for rec in routed:
        assert "boxes" not in rec
        meta = rec["boxes-metadata"]
        assert meta["review-status"] == "routed" and meta["confidence"] == round(230 / 255, 4)
    # stats accounts for every line: routed ones were in no count but "lines with metadata"
    r = run_cli("stats", str(output_of(out, "strict")), "--format", "json")
    assert r.returncode == 0, r.stderr
    boxes = json.loads(r.stdout)["attributes"]["boxes"]
    assert (boxes["lines"], boxes["labeled"], boxes["failed"], boxes["routed"]) == (31, 0, 1, 30)
    r = run_cli("stats", str(output_of(out, "strict")))
    assert "labeled: 0   failed: 1   routed to review: 30" in r.stdout, r.stdout
    r = run_cli("chain", str(out / "strict"), "--job-name", "relaxed", "--label-attribute", "boxes",
                "--review-below", "0.5", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "success=30 failed=1" in r.stdout
    recs = lines_of(out, "relaxed")
    assert sum(1 for x in recs if "boxes" in x) == 30
