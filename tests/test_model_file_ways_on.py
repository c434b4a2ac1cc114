"""The tester's cases about a ``--model`` that is a file (``file.py:factory``, TorchScript):

* a model that fails every image (inverted boxes) stops the job by the fail-fast rule, which said
  a resume tries the lines again "once the model is fixed"; but a resume refuses the fixed file
  (the job recorded its sha256), so the job, ``apply`` and the docs now say to chain a job with the
  fixed file, which labels every line;
* a model file deleted: ``status`` and ``resume`` said ``clone JOB --job-name NEW``, which takes no
  ``--model`` and fails the same way; they now name ``chain ... --model FILE``, which works;
* a ``file.py:factory`` that imports a ``helper.py`` beside it failed ``No module named 'helper'``:
  the file's folder is on ``sys.path`` while it is imported, as for ``python file.py``, locally and
  on Ray's workers.

Real model files written here, real CLI subprocesses run from another folder than the model's.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

pytest.importorskip("torch")

from tests.jobs_helpers import run_cli
from tests.test_inference_support import SLOW_DETECTOR_MODULE, detection_set, write_manifest
from tests.test_option_files_changed import stop
from totask_manifest import JobConfig, annotate

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")]

INVERTED = SLOW_DETECTOR_MODULE + '''

class Inverted(SlowBoxes):
    def forward(self, images):
        return [{"boxes": torch.tensor([[50.0, 50.0, 10.0, 10.0]]), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([1])} for _ in images]


def inverted():
    return Inverted()
'''
CHAIN_ADVICE = "label them in a job chained from this one with the fixed file (totask-manifest chain JOB_DIR --job-name NEW --model FILE)"
#: the advice for a job whose --model named a factory of a .py file: followed with a bare FILE it was
#: refused as no TorchScript file
FACTORY_ADVICE = CHAIN_ADVICE.replace("--model FILE)", "--model FILE:inverted)")


def _inputs(base: Path, n: int) -> Path:
    detection_set(base / "img", n)
    return write_manifest(base / "in.manifest", [f"img/img{i:04d}.png" for i in range(n)])


def _annotate(base: Path, inp: Path, model: str, job: str = "j", *more: str):
    return run_cli("annotate", str(inp), "--job-name", job, "--task-type", "object-detection", "--label-attribute",
                   "boxes", "--method", "inference", "--model", model, "--allow-root", str(base), "--batch-size", "4",
                   "--output", str(base / "out"), *more, timeout=300, cwd=base / "elsewhere")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "elsewhere").mkdir()  # the commands run here: not the model's folder
    return tmp_path


def test_a_model_file_failing_every_image_says_to_chain_with_the_fixed_file_which_labels_every_line(base: Path) -> None:
    inp = _inputs(base, 40)
    net = base / "models" / "net.py"
    net.parent.mkdir()
    net.write_text(INVERTED)
    r = _annotate(base, inp, f"{net}:inverted")
    assert r.returncode == 1, r.stderr
    job = base / "out" / "j"
    error = orjson.loads((job / "job.json").read_bytes())["error"]
    assert "failed with 'model-error'" in error and FACTORY_ADVICE in error, error
    assert FACTORY_ADVICE in r.stderr
    # apply says the same way on
    r = run_cli("apply", str(job), cwd=base / "elsewhere")
    assert r.returncode == 1, r.stderr
    assert (f"a model fixed in its --model file needs a job chained from it (totask-manifest chain {job} --job-name NEW "
            "--model FILE:inverted), a wrong option a new job (annotate)") in r.stderr, r.stderr
    # the model fixed in its file: a resume refuses it (the rule the advice is about) ...
    net.write_text(SLOW_DETECTOR_MODULE)
    r = run_cli("resume", str(job), timeout=300, cwd=base / "elsewhere")
    assert r.returncode == 2 and "changed since job 'j' started" in r.stderr, r.stderr
    # ... and the chain the job advised labels every line with it
    r = run_cli("chain", str(job), "--job-name", "k", "--model", f"{net}:make", timeout=300, cwd=base / "elsewhere")
    assert r.returncode == 0, r.stderr
    done = orjson.loads((base / "out" / "k" / "job.json").read_bytes())
    assert done["status"] == "COMPLETED" and done["metrics"]["success"] == 40, done["metrics"]


def test_an_endpoint_or_module_model_error_still_says_resume() -> None:
    """A model not recorded as a file (an endpoint, ``package.module:factory``): a resume reaches it
    repaired, so the advice stays a resume."""
    from totask_manifest._failure_rules import way_on

    assert way_on("model-error") == "a resume tries those lines again"
    assert way_on("model-error", files=frozenset({"class_names"})) == "a resume tries those lines again"
    assert way_on("model-error", files=frozenset({"model"})).endswith(CHAIN_ADVICE)
    assert way_on("http-401", files=frozenset({"model"})) == "a resume tries those lines again"


def test_a_model_file_gone_names_a_chain_with_another_file_which_works(base: Path) -> None:
    inp = _inputs(base, 12)
    net = base / "net.py"
    net.write_text(SLOW_DETECTOR_MODULE)
    config = JobConfig(job_name="j", input=str(inp), output_root=str(base / "out"), label_attribute="boxes",
                       task_type="object-detection", method="inference", checkpoint_every=4,
                       options={"model": f"{net}:make", "allow_root": str(base), "batch_size": 4})
    with pytest.raises(KeyboardInterrupt):  # stopped as by Ctrl-C, once recorded
        annotate(config, on_progress=stop)
    job = base / "out" / "j"
    net.unlink()
    said = (f"--model {net} is gone since job 'j' started (job.json records its sha256): a job labels every line with "
            "the same files; restore it at that path and resume again, or start a new job with another file (annotate "
            f"with another --job-name, or totask-manifest chain {job} --job-name NEW --model FILE:make)")
    r = run_cli("resume", str(job), timeout=300, cwd=base / "elsewhere")
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [f"totask-manifest resume: error: {said}"]
    r = run_cli("status", str(job), cwd=base / "elsewhere")
    assert r.returncode == 0 and f"changed: {said}" in r.stdout, r.stdout
    # what it names works (clone, which it no longer names, takes no --model and fails the same way)
    other = base / "other.py"
    other.write_text(SLOW_DETECTOR_MODULE)
    r = run_cli("chain", str(job), "--job-name", "k", "--model", f"{other}:make", timeout=300, cwd=base / "elsewhere")
    assert r.returncode == 0, r.stderr
    assert orjson.loads((base / "out" / "k" / "job.json").read_bytes())["status"] == "COMPLETED"


def _helper_model(folder: Path) -> Path:
    """``det.py`` importing ``helper`` (the detector) from its own folder, as ``python det.py`` may."""
    folder.mkdir()
    (folder / "helper.py").write_text(SLOW_DETECTOR_MODULE)
    (folder / "det.py").write_text("import helper\n\n\ndef make():\n    return helper.SlowBoxes(0.0)\n")
    return folder / "det.py"


@pytest.mark.parametrize("engine", [[], ["--engine", "ray", "--ray-num-cpus", "2"]], ids=["local", "ray"])
def test_a_model_file_imports_a_module_beside_it(base: Path, engine: list[str]) -> None:
    if engine:
        pytest.importorskip("ray")
    inp = _inputs(base, 8)
    det = _helper_model(base / "models")
    r = _annotate(base, inp, f"{det}:make", "j", *engine)
    assert r.returncode == 0, r.stderr
    done = orjson.loads((base / "out" / "j" / "job.json").read_bytes())
    assert done["status"] == "COMPLETED" and done["metrics"]["success"] == 8, done


def test_a_module_still_not_found_says_where_python_looks(base: Path) -> None:
    inp = _inputs(base, 2)
    det = _helper_model(base / "models")
    (base / "models" / "helper.py").unlink()
    r = _annotate(base, inp, f"{det}:make")
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        f"totask-manifest annotate: error: --model {det}:make: cannot import {det}: ModuleNotFoundError: No module "
        "named 'helper' (is its folder on PYTHONPATH?)"]
    assert not (base / "out" / "j").exists()


def test_apply_of_a_job_stopped_on_its_own_option_names_the_chain_that_fixes_it(tmp_path: Path) -> None:
    """The quick start's job without --allow-root stops on ``allow-root-missing``; its error says a
    resume keeps the option and names the chain with it given. ``apply`` quoted that error cut
    before the advice and advised a resume (which stops the same way) or a new annotate."""
    import shutil

    sample = Path(__file__).resolve().parents[1] / "sample_data"
    data = tmp_path / "data"
    shutil.copytree(sample, data, ignore=shutil.ignore_patterns("models", "*.py"))
    r = run_cli("annotate", str(data / "manifest.jsonl"), "--job-name", "m1", "--task-type", "object-detection",
                "--method", "file", "--url-key", "annotation-ref", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 1 and "allow-root-missing" in r.stderr, r.stderr
    job = tmp_path / "out" / "m1"
    r = run_cli("apply", str(job), "--dry-run", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().endswith(
        "--allow-root is the job's own option, which a resume keeps (it would stop the same way): label them in a "
        f"job chained from this one with it given (totask-manifest chain {job} --job-name NEW --allow-root DIR)"), r.stderr
    assert "resume it" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
