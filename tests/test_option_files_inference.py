"""The tester's case: an inference job stopped, its ``--model`` replaced, then resumed. Before, the
job finished COMPLETED, exit 0, its lines labeled by two models (1.46 boxes a line before the
stop, 5.0 after); now ``resume`` refuses the model in one line, exit 2, before any line is labeled
(``tests/test_option_files_changed.py`` holds the rule's other cases)."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

pytest.importorskip("torch")

from tests.jobs_helpers import killed_midway, run_cli
from tests.test_inference_support import (
    SLOW_DETECTOR_MODULE,
    ColorBoxes,
    detection_set,
    save_scripted,
    write_manifest,
)
from tests.test_option_files_changed import stop
from totask_manifest import JobConfig, annotate
from totask_manifest._jobs.layout import JobLayout

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")]

RULE = "a job labels every line with the same files"


def _inputs(base: Path, n: int) -> Path:
    detection_set(base / "img", n)
    return write_manifest(base / "in.manifest", [f"img/img{i:04d}.png" for i in range(n)])


def _refusal(command: str, model: str, job: Path) -> list[str]:
    return [f"totask-manifest {command}: error: --model {model} changed since job 'j' started (sha256 differs from "
            f"the one in job.json): {RULE}; restore it, or start a new job for it (totask-manifest clone {job} "
            "--job-name NEW, or annotate with another --job-name)"]


def test_a_factory_file_changed_after_a_sigint_is_refused_by_resume(tmp_path: Path) -> None:
    """``--model net.py:make``, stopped by a real SIGINT midway: the ``.py`` is what is checked.
    60 lines: the first SIGINT lets the lines in flight finish, and with the fetch window (three
    batches of 4), the batch the model runs on and the one being labeled, 30 lines were all in
    flight once two parts were recorded, so the job completed instead of stopping."""
    inp = _inputs(tmp_path, 60)
    net = tmp_path / "net.py"
    net.write_text(SLOW_DETECTOR_MODULE + "\n\ndef make():\n    return SlowBoxes(0.05)\n")
    job = tmp_path / "out" / "j"
    args = ["annotate", str(inp), "--job-name", "j", "--task-type", "object-detection", "--label-attribute", "boxes",
            "--method", "inference", "--model", f"{net}:make", "--allow-root", str(tmp_path), "--batch-size", "4",
            "--checkpoint-every", "4", "--output", str(tmp_path / "out")]
    assert killed_midway(args, job, sig=signal.SIGINT) == 128 + signal.SIGINT
    parts = len(JobLayout(str(job)).parts())
    net.write_text(net.read_text().replace("SlowBoxes(0.05)", "SlowBoxes(0.0)"))
    r = run_cli("resume", str(job), timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == _refusal("resume", str(net), job)
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
    assert len(JobLayout(str(job)).parts()) == parts  # nothing labeled with the other model


def test_a_torchscript_model_replaced_is_refused_and_the_old_one_resumes(tmp_path: Path) -> None:
    """``--model X.pt``: stopped in this process (``on_progress`` raising KeyboardInterrupt stops
    the job as Ctrl-C does), the file replaced by another model, resumed by the CLI."""
    inp = _inputs(tmp_path, 12)
    model = save_scripted(ColorBoxes(), tmp_path / "x.pt")
    kept = model.read_bytes()
    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="boxes",
                       task_type="object-detection", method="inference", checkpoint_every=4,
                       options={"model": str(model), "allow_root": str(tmp_path), "batch_size": 4})

    with pytest.raises(KeyboardInterrupt):
        annotate(config, on_progress=stop)
    job = tmp_path / "out" / "j"
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
    save_scripted(ColorBoxes(), model, note="another model")  # other bytes at the same path
    assert model.read_bytes() != kept
    r = run_cli("resume", str(job), timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == _refusal("resume", str(model), job)
    model.write_bytes(kept)  # restored: the job goes on with the model it started with
    r = run_cli("resume", str(job), timeout=300)
    assert r.returncode == 0, r.stderr
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "COMPLETED"


def test_report_will_not_write_its_page_over_the_model_file_the_job_reads(tmp_path: Path, capsys) -> None:
    """``report JOB -o net.py`` for a job run with ``--model net.py:make``: the page would replace
    the ``.py`` the job's resume reads (and checks), the model with it. Refused in one line, exit 2,
    the file untouched; the same page elsewhere is written."""
    from totask_manifest._cli import main

    inp = _inputs(tmp_path, 4)
    net = tmp_path / "net.py"
    net.write_text(SLOW_DETECTOR_MODULE + "\n\ndef make():\n    return SlowBoxes(0.0)\n")
    kept = net.read_bytes()
    job = tmp_path / "out" / "j"
    assert main(["annotate", str(inp), "--job-name", "j", "--task-type", "object-detection", "--label-attribute",
                 "boxes", "--method", "inference", "--model", f"{net}:make", "--allow-root", str(tmp_path),
                 "--output", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert main(["report", str(job), "-o", str(net)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("totask-manifest report: error: ") and str(net) in err and len(err.splitlines()) == 1, err
    assert net.read_bytes() == kept
    assert main(["report", str(job), "-o", str(tmp_path / "page.html")]) == 0
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
