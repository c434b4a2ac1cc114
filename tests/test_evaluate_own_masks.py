"""``evaluate`` and ``report`` of a chained segmentation job read the masks the jobs wrote. The
default fetch policy was the job's own (``allow_root``: the images' folder), and the masks sit
under the output root, so every line was "unreadable: outside the allowed root" (exit 1, nothing
evaluated) unless ``--allow-root`` named the output root. The masks' folders of the job and of
the jobs it was chained from are now readable besides the job's ``allow_root``, for these
commands only (``FetchPolicy.own_roots``); nothing else of the output root is."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO
from totask_manifest._cli import main

torch = pytest.importorskip("torch")


class _Segmenter(torch.nn.Module):
    """Background below ``threshold``, else the image's strongest channel: two thresholds, two
    slightly different segmentations of the same images."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.class_names = ["BACKGROUND", "red", "green", "blue"]
        self.input_size = 64
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.full_like(x[:, :1], self.threshold), x], dim=1) * 10.0


def test_a_chained_segmentation_job_is_evaluated_from_its_own_masks(tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(REPO / "sample_data" / "images", data / "images")
    lines = (REPO / "sample_data" / "manifest.jsonl").read_bytes().splitlines(keepends=True)[:8]
    (data / "m.jsonl").write_bytes(b"".join(lines))
    for name, threshold in (("seg1", 0.5), ("seg2", 0.6)):
        torch.jit.script(_Segmenter(threshold)).save(str(tmp_path / f"{name}.pt"))
    out = tmp_path / "out"
    assert main(["annotate", str(data / "m.jsonl"), "--job-name", "seg1", "--task-type", "semantic-segmentation",
                 "--method", "inference", "--model", str(tmp_path / "seg1.pt"), "--allow-root", str(data),
                 "--output", str(out)]) == 0
    assert main(["chain", str(out / "seg1"), "--job-name", "seg2", "--model", str(tmp_path / "seg2.pt")]) == 0
    capsys.readouterr()
    # two models alike: which is right is the user's to say (evaluate refuses to guess, exit 2)
    pair = ["--predicted", "seg2-ref", "--reference", "seg1-ref"]
    for flags in (pair, [*pair, "--allow-host", "example.com"]):  # a flag is laid over the job's policy
        assert main(["evaluate", str(out / "seg2"), *flags]) == 0
        said = capsys.readouterr()
        assert "unreadable" not in said.out + said.err and "outside the allowed root" not in said.out + said.err, said
    page = tmp_path / "page.html"
    assert main(["report", str(out / "seg2"), "-o", str(page)]) == 0
    # report has no flags to name the sides: its section says why it has no figures
    text = html.unescape(page.read_text())
    assert "not evaluated: job " in text and "cannot tell the prediction from the reference: 'seg1-ref' (job " \
        "'seg1') and 'seg2-ref' (job 'seg2') were made both by method inference" in text
