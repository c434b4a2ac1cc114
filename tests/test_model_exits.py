"""A model's Python code that calls ``sys.exit`` (research code does, on a bad input or a missing
GPU): it ended the command with the model's exit code and nothing said, the job left RUNNING with
its lease and no output manifest. It is now the model's error, as any exception is: of that image
when it runs, of the ``--model`` option when it is imported or built (one line, exit 2).

Real torch models (``file.py:factory`` written here), the CLI in real subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

torch = pytest.importorskip("torch")

from tests.jobs_helpers import run_cli  # noqa: E402
from tests.test_inference_support import one_bright_image  # noqa: E402

MODEL = '''
import sys
import torch

if {exit_at_import}:
    sys.exit(4)


class Classes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.class_names = ["a", "b", "c"]

    def forward(self, x):
        if bool((x.mean(dim=(1, 2, 3)) > 0.9).any()):
            sys.exit(3)
        return torch.zeros(x.shape[0], 3) + torch.arange(3.0)


def build():
    return Classes()


def build_exits():
    sys.exit("no GPU here")
'''


def _job(tmp_path: Path, factory: str, exit_at_import: bool = False) -> tuple:
    manifest = one_bright_image(tmp_path, 5, bright=2)
    (tmp_path / "model.py").write_text(MODEL.format(exit_at_import=exit_at_import))
    r = run_cli("annotate", str(manifest), "--job-name", "j", "--task-type", "image-classification",
                "--method", "inference", "--model", f"{tmp_path / 'model.py'}:{factory}", "--input-size", "8",
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    return r, tmp_path / "out" / "j"


@pytest.mark.slow
def test_a_model_calling_sys_exit_on_one_image_fails_that_line_only(tmp_path: Path) -> None:
    r, job = _job(tmp_path, "build")
    assert r.returncode == 0, r.stdout + r.stderr
    state = orjson.loads((job / "job.json").read_bytes())
    assert state["status"] == "COMPLETED" and state["metrics"]["success"] == 4 and state["metrics"]["failed"] == 1
    failures = [orjson.loads(x) for x in (job / "failures.jsonl").read_bytes().splitlines()]
    assert [f["line"] for f in failures] == [3]
    assert failures[0]["rule"] == "model-error" and "SystemExit" in failures[0]["reason"], failures[0]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "at_import", "said"), [
    ("build_exits", False, "the factory failed: SystemExit: no GPU here"),
    ("build", True, "cannot import"),
])
def test_a_model_calling_sys_exit_while_built_is_one_line_before_the_job(tmp_path, factory, at_import, said):
    r, job = _job(tmp_path, factory, exit_at_import=at_import)
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and "SystemExit" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not job.exists()
