"""A file an annotator wrote for one line's label (a segmentation mask) goes when the line ends
failed after all: the recorder refuses the label (schema, JSON, Ground Truth's line limits), and
nothing names the file any more."""

from __future__ import annotations

from pathlib import Path

from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.recorder import Recorder
from totask_manifest._manifest.line import Line
from totask_manifest._outcomes import Item, Labeled

META = {"internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.5}}}


class _Writer:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def add(self, record: dict, body: bytes, input_bytes: int | None = None) -> None:
        self.records.append(record)


def recorder(tmp_path: Path) -> tuple[Recorder, _Writer]:
    config = JobConfig(job_name="j", input="in", output_root=str(tmp_path), label_attribute="mask-ref",
                       task_type="semantic-segmentation", method="inference")
    writer = _Writer()
    return Recorder(config, writer, {"labeled": 0, "failed": 0, "routed": 0}), writer


def mask(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "j" / "annotations" / "masks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG mask")
    return path


def test_a_refused_label_removes_the_file_written_for_it(tmp_path: Path) -> None:
    rec, writer = recorder(tmp_path)
    line = Line(1, b'{"source-ref":"a.png"}')
    png = mask(tmp_path, "1.png")
    bad = {**META, "internal-color-map": {"0": {"class-name": 7}}}  # not a string: schema-invalid
    assert rec.accept(line, Item(0, 1, line.record()), Labeled(str(png), bad, files=(str(png),))) == "failed"
    assert writer.records[0]["rule"] == "schema-invalid"
    assert not png.exists()


def test_a_label_written_keeps_its_file_and_a_missing_file_is_no_error(tmp_path: Path) -> None:
    rec, _ = recorder(tmp_path)
    line = Line(1, b'{"source-ref":"a.png"}')
    png = mask(tmp_path, "1.png")
    assert rec.accept(line, Item(0, 1, line.record()), Labeled(str(png), META, files=(str(png),))) == "labeled"
    assert png.exists()
    gone = str(tmp_path / "j" / "annotations" / "masks" / "2.png")
    line2 = Line(2, b'{"source-ref":"b.png"}')
    assert rec.accept(line2, Item(1, 2, line2.record()), Labeled(gone, {"x": 1}, files=(gone,))) == "failed"
