"""A job whose class names name a class otherwise than the labels it passes over is refused.

A model retrained with its classes in another order, chained onto the attribute it labeled (to
label the lines still unlabeled), wrote class id 1 'b' beside lines naming it 'square': exit 0,
COMPLETED, an output ``validate --strict`` (``class-map-conflict``), ``stats`` and the COCO export
reject. The clash is known before the job exists (the model's class names, or ``--class-names``,
against the class maps the lines hold), so it is refused then, in one line, exit 2, with no job
folder written. A model agreeing on every id the lines use, naming more classes, still runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from totask_manifest._jobs.held_labels import JobClasses
from totask_manifest._jobs.scan_ranges import scan_input

from .jobs_helpers import REPO, output_of, run_cli, sample_job_args

SAMPLE = REPO / "sample_data"


def _detector(folder: Path, names: list[str]) -> str:
    """A module:factory detector named ``names``, one box of class 2 on each image."""
    (folder / "retrained.py").write_text(
        "import torch\n\n\n"
        "class Boxes(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        f"        self.class_names = {names!r}\n\n"
        "    def forward(self, images):\n"
        "        return [{'boxes': torch.tensor([[1.0, 1.0, 8.0, 8.0]]), 'scores': torch.tensor([0.9]),\n"
        "                 'labels': torch.tensor([2])} for _ in images]\n\n\n"
        "def make():\n"
        "    return Boxes()\n")
    return f"{folder / 'retrained.py'}:make"


def _sample_job(tmp_path: Path) -> Path:
    """The README's file job over sample_data, classes circle, square, triangle (line 14 fails)."""
    done = run_cli(*sample_job_args("boxes-job", tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    return tmp_path / "out" / "boxes-job"


def _first_naming(manifest: Path, class_id: str) -> tuple[int, str]:
    """The first line whose boxes' class map names ``class_id``, and the name it gives."""
    for number, raw in enumerate(manifest.read_text().splitlines(), 1):
        meta = json.loads(raw).get("boxes-metadata", {})
        if class_id in meta.get("class-map", {}):
            return number, meta["class-map"][class_id]
    raise AssertionError(f"no line names class id {class_id}")


def test_chain_of_a_model_naming_the_classes_in_another_order_is_refused(tmp_path: Path) -> None:
    job = _sample_job(tmp_path)
    before = output_of(tmp_path / "out", "boxes-job").read_bytes()
    model = _detector(tmp_path, ["circle", "triangle", "square"])
    done = run_cli("chain", str(job), "--job-name", "retrained", "--label-attribute", "boxes", "--method", "inference", "--model", model)
    assert done.returncode == 2, (done.stdout, done.stderr)
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in done.stderr, done.stderr
    line, held = _first_naming(output_of(tmp_path / "out", "boxes-job"), "2")  # line 1 names it first
    assert held == "triangle"
    assert f"line {line}, key 'boxes-metadata.class-map.2'" in err[0], err[0]
    assert "'triangle' there, but this job names class id 2 'square'" in err[0], err[0]
    assert "[class-map-conflict]" in err[0] and "--model" in err[0], err[0]
    assert "the job would label 1 line under 'boxes' with its own class names" in err[0], err[0]  # line 14, failed
    assert not (tmp_path / "out" / "retrained").exists()
    assert output_of(tmp_path / "out", "boxes-job").read_bytes() == before


def test_chain_of_a_model_agreeing_on_the_ids_used_runs_and_validates(tmp_path: Path) -> None:
    """More classes than the lines name (id 3 is new to them): nothing clashes, the output validates."""
    job = _sample_job(tmp_path)
    model = _detector(tmp_path, ["circle", "square", "triangle", "star"])
    done = run_cli("chain", str(job), "--job-name", "retrained", "--label-attribute", "boxes", "--method", "inference", "--model", model)
    assert done.returncode == 0, done.stderr
    assert "total=1 success=1 failed=0" in done.stdout, done.stdout
    checked = run_cli("validate", "--strict", str(output_of(tmp_path / "out", "retrained")))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_chain_with_class_names_given_is_held_to_them_not_the_model(tmp_path: Path) -> None:
    """``--class-names`` wins over the model's own names: the job writes those, so those are held."""
    job = _sample_job(tmp_path)
    model = _detector(tmp_path, ["a", "b", "c"])
    done = run_cli("chain", str(job), "--job-name", "retrained", "--label-attribute", "boxes", "--method", "inference", "--model", model,
                   "--class-names", str(SAMPLE / "class_names.txt"))
    assert done.returncode == 0, done.stderr
    checked = run_cli("validate", "--strict", str(output_of(tmp_path / "out", "retrained")))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _labeled_line(class_map: dict[str, str]) -> dict:
    """A sample image labeled with one box of each class ``class_map`` names."""
    boxes = [{"class_id": int(k), "top": 1, "left": 1, "height": 4, "width": 4} for k in class_map]
    return {"source-ref": "images/img_000.jpg", "boxes": {"image_size": [{"width": 64, "height": 64, "depth": 3}],
                                                           "annotations": boxes},
            "boxes-metadata": {"type": "groundtruth/object-detection", "human-annotated": "yes",
                               "class-map": class_map, "objects": [{"confidence": 1} for _ in class_map]}}


def test_file_method_class_names_giving_a_held_name_another_id_is_refused(tmp_path: Path) -> None:
    """The file method's ``--class-names`` alike, and a name given another id (one class name, one
    id), on a line after runs of a repeated clean map (the scan's typed path refuses it to be said)."""
    lines = [_labeled_line({"0": "circle"}) for _ in range(60)]
    lines.append(_labeled_line({"0": "circle", "5": "square"}))  # line 61: 'square' is id 1 in the names file
    lines += [_labeled_line({"0": "circle"}) for _ in range(20)]
    lines.append({"source-ref": str(SAMPLE / "images/img_001.jpg"),
                  "annotation-ref": str(SAMPLE / "annotations/img_001.json")})
    manifest = tmp_path / "in.manifest"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = run_cli("annotate", str(manifest), "--job-name", "fill", "--label-attribute", "boxes", "--task-type",
                   "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
                   str(SAMPLE / "class_names.txt"), "--native", "convert",
                   "--allow-root", str(SAMPLE), "--output", str(tmp_path / "out"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "line 61, key 'boxes-metadata.class-map.5'" in err[0], err[0]
    assert "class id 5 for 'square' there, but this job gives 'square' class id 1" in err[0], err[0]
    assert "--class-names" in err[0] and "[class-map-conflict]" in err[0], err[0]
    assert not (tmp_path / "out" / "fill").exists()


def test_the_model_is_loaded_once_before_the_job_for_its_check_and_its_class_names(tmp_path: Path) -> None:
    """``check`` loads a local model on the CPU, and the class names the scan holds the lines to
    are that model's: read from that load, not a second one (a big model costs seconds a load).
    The factory counts its calls: one before the job, one for the job's own run."""
    job = _sample_job(tmp_path)
    calls = tmp_path / "calls.txt"
    model = _detector(tmp_path, ["circle", "square", "triangle"])
    source = Path(model.rsplit(":", 1)[0])
    source.write_text(source.read_text().replace(
        "def make():\n", f"def make():\n    with open({str(calls)!r}, 'a') as f:\n        f.write('load\\n')\n"))
    done = run_cli("chain", str(job), "--job-name", "once", "--label-attribute", "boxes", "--method", "inference", "--model", model)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert calls.read_text().splitlines() == ["load", "load"], calls.read_text()


def test_after_a_ranges_first_clash_the_scan_reads_the_rest_without_the_class_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the first clash is refused, so once a range has it the names are no longer held: a clash
    was never noted in the table, and every later line repeating that map was parsed one by one to
    the end of the range (a scan three times as long). Counted as lines ``orjson`` parses, not timed."""
    line = {"det2": {"image_size": [{"width": 160, "height": 120, "depth": 3}],  # 'circle' is id 1 in the job's names
                     "annotations": [{"class_id": 0, "top": 35.29, "left": 19.1, "height": 34.41, "width": 35.14}]},
            "det2-metadata": {"objects": [{"confidence": 0.6213}], "class-map": {"0": "circle"},
                              "type": "groundtruth/object-detection", "human-annotated": "no",
                              "creation-date": "2026-12-05T23:01:52.333492", "job-name": "labeling-job/det2"}}
    manifest = tmp_path / "in.manifest"  # as a job writes it: compact JSON, one image a line
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", **line}) + b"\n" for i in range(2000)))
    parsed = []
    loads = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda raw: parsed.append(1) or loads(raw))
    classes = JobClasses.of("object-detection", ["square", "circle"], "--class-names c.txt")
    scan = scan_input(str(manifest), "det2", workers=1, task_type="object-detection", classes=classes)
    assert scan.lines == 2000 and scan.held.clash is not None
    assert scan.held.clash[:2] == (1, "det2-metadata.class-map.0"), scan.held.clash
    assert len(parsed) < 200, len(parsed)  # the first runs, till the typed path takes the map: not every line


def _labeled_manifest(path: Path, count: int, first: int = 0) -> Path:
    """``count`` sample images labeled with boxes of class ids 0 'circle' and 1 'triangle' (ids the
    sample's ``class_names.txt`` names 'circle' and 'square'), from image ``first`` on."""
    lines = []
    for i in range(first, first + count):
        line = _labeled_line({"0": "circle", "1": "triangle"})
        line["source-ref"] = str(SAMPLE / f"images/img_{i:03d}.jpg")
        lines.append(line)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _file_job_args(manifest: Path, name: str, out: Path, *extra: str) -> list[str]:
    """``annotate`` of ``manifest`` with the sample's file method and ``class_names.txt``."""
    return ["annotate", str(manifest), "--job-name", name, "--label-attribute", "boxes", "--task-type", "object-detection",
            "--method", "file", "--url-key", "annotation-ref", "--class-names", str(SAMPLE / "class_names.txt"),
            "--native", "convert", "--allow-root", str(SAMPLE), "--output", str(out), *extra]


def test_chain_with_nothing_to_label_is_not_refused_for_a_clash_it_would_never_write(tmp_path: Path) -> None:
    """Every line already labeled: the chained job writes no class name, so nothing of its own
    clashes. It was refused, exit 2, saying "the job would label the other lines" of none; it ends
    as a job with nothing to label does (README: COMPLETED, exit 0, said why)."""
    names = tmp_path / "names.txt"
    names.write_text("circle\ntriangle\n")
    first = _file_job_args(_labeled_manifest(tmp_path / "in.manifest", 3), "first", tmp_path / "out")
    first[first.index("--class-names") + 1] = str(names)  # as the lines name them: nothing to label, no clash
    assert run_cli(*first).returncode == 0
    done = run_cli("chain", str(tmp_path / "out" / "first"), "--job-name", "second", "--label-attribute", "boxes",
                   "--class-names", str(SAMPLE / "class_names.txt"))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "COMPLETED" in done.stdout and "total=0" in done.stdout, done.stdout
    assert "nothing to label" in done.stderr and "class-map-conflict" not in done.stderr, done.stderr
    assert output_of(tmp_path / "out", "second").read_bytes() == (tmp_path / "in.manifest").read_bytes()


def test_with_append_a_clash_in_any_manifest_refuses_the_job_where_the_combined_input_has_a_line_to_label(
        tmp_path: Path) -> None:
    """The job labels the combined input: a clash on the input manifest's labels is written beside
    the line an ``--append`` manifest brings to label, so it is refused though the input alone has
    none to label; with every appended line labeled too, nothing is, and the job runs."""
    labeled = _labeled_manifest(tmp_path / "in.manifest", 3)
    new = tmp_path / "new.manifest"
    new.write_text(json.dumps({"source-ref": "images/img_003.jpg", "annotation-ref": "annotations/img_003.json"}) + "\n")
    for manifest, appended, role in ((labeled, new, "input manifest"), (new, labeled, "--append manifest")):
        done = run_cli(*_file_job_args(manifest, "both", tmp_path / "out", "--append", str(appended)))
        assert done.returncode == 2, (done.stdout, done.stderr)
        err = done.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"{role} {labeled} line 1, key 'boxes-metadata.class-map.1'" in err[0], err[0]
        assert "the job would label 1 line under 'boxes'" in err[0] and "[class-map-conflict]" in err[0], err[0]
        assert not (tmp_path / "out" / "both").exists()
    more = _labeled_manifest(tmp_path / "more.manifest", 2, first=3)
    done = run_cli(*_file_job_args(labeled, "all", tmp_path / "out", "--append", str(more)))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "total=0" in done.stdout and "nothing to label" in done.stderr, done.stderr
