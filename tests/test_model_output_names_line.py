"""A model whose output for one image breaks the protocol (NaN logits, a class id with no name,
a score outside 0..1) stops the job; the error names the line and the image that did it, so a
user with a million images can find the one, never a presigned URL's signature."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

torch = pytest.importorskip("torch")

from tests.jobs_helpers import run_cli  # noqa: E402
from tests.test_inference_support import one_bright_image, save_scripted  # noqa: E402
from totask_manifest._errors import JobError  # noqa: E402
from totask_manifest._models.heads import head_for  # noqa: E402
from totask_manifest._models.labeler import Labeler  # noqa: E402
from totask_manifest._models.params import resolve_params  # noqa: E402
from totask_manifest._outcomes import Item  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


class NanOnBright(torch.nn.Module):
    """Logits for three classes; NaN for an image brighter than 0.9 on average (an overflow that
    only some inputs reach)."""

    def __init__(self) -> None:
        super().__init__()
        self.class_names = ["a", "b", "c"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3) + torch.arange(3.0)
        out[x.mean(dim=(1, 2, 3)) > 0.9] = float("nan")
        return out


@pytest.mark.slow
def test_nan_logits_for_one_image_stop_the_job_naming_its_line_and_image(tmp_path: Path) -> None:
    manifest = one_bright_image(tmp_path, 6, bright=3)
    model = save_scripted(NanOnBright(), tmp_path / "nan.pt")
    r = run_cli("annotate", str(manifest), "--job-name", "nan", "--task-type", "image-classification",
                "--method", "inference", "--model", str(model), "--allow-root", str(tmp_path),
                "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    error = orjson.loads((tmp_path / "out/nan/job.json").read_bytes())["error"]
    assert "classifier logits are empty or not finite" in error
    assert "line 4" in error and "img/3.png" in error, error
    assert f"error: {error}" in r.stdout + r.stderr


def _labeler(task_type: str, tmp_path: Path) -> Labeler:
    return Labeler(head_for(task_type), resolve_params({}, task_type), task_type=task_type,
                   class_names=["cat", "dog"], job_url=str(tmp_path / "job"))


@pytest.mark.parametrize(("task_type", "pred", "said"), [
    ("image-classification", torch.tensor([float("nan"), 0.0]), "classifier logits are empty or not finite"),
    ("image-classification", torch.tensor([0.0, 1.0, 2.0]), "3 logits but 2 class names"),
    ("object-detection", {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]]), "scores": torch.tensor([0.9]),
                          "labels": torch.tensor([7])}, "class id 7"),
])
def test_a_refused_prediction_names_the_line_and_its_image_without_the_query(tmp_path, task_type, pred, said):
    item = Item(11, 12, {"source-ref": "https://h.example/b/x.png?X-Amz-Signature=SECRET", "synapse": {"task_id": 77}})
    with pytest.raises(JobError) as caught:
        _labeler(task_type, tmp_path).outcome(item, pred, 10, 10, 3)
    text = str(caught.value)
    assert said in text and "line 12" in text and "task 77" in text, text
    assert "https://h.example/b/x.png" in text and "SECRET" not in text
