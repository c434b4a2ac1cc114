"""The file annotator on the happy path: every input format, both ways of naming the file,
class names, image sizes read from images, options; real files, a real HTTP server on
127.0.0.1, and the quick-start sample data through the real CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from PIL import Image

from tests.support.http_server import LocalHTTPServer
from totask_manifest._annotators.base import Failed, Item, Labeled, get_annotator_class
from totask_manifest._annotators.file import FileAnnotator, lookup
from totask_manifest._cli._options import add_options, read_options
from totask_manifest._errors import UsageError
from totask_manifest._jobs.checkpoint import CheckpointWriter
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._jobs.recorder import Recorder
from totask_manifest.testing.runs import job_run

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["circle", "square", "triangle"]
BOXES = [(0, 10, 20, 30, 40), (2, 50, 5, 20, 10)]  # class_id, left, top, width, height
EXPECTED_VALUE = {
    "image_size": [{"width": 200, "height": 100, "depth": 3}],
    "annotations": [
        {"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40},
        {"class_id": 2, "left": 50, "top": 5, "width": 20, "height": 10},
    ],
}


def objects_doc() -> dict:
    return {"objects": [
        {"id": f"o{i}", "class_id": c, "type": "bbox", "coordinates": {"x": x, "y": y, "width": w, "height": h},
         "properties": {"confidence": 0.5 + i / 10, "label": CLASSES[c]}}
        for i, (c, x, y, w, h) in enumerate(BOXES)
    ]}


def gt_doc() -> dict:
    return {"label": EXPECTED_VALUE, "metadata": {"objects": [{"confidence": 0.5}, {"confidence": 0.6}],
                                                  "class-map": {"0": "circle", "2": "triangle"}}}


def coco_doc() -> dict:
    return {
        "images": [{"id": 7, "width": 200, "height": 100, "file_name": "a.jpg"}],
        "annotations": [{"id": i, "image_id": 7, "category_id": c + 1, "bbox": [x, y, w, h], "score": 0.5 + i / 10}
                        for i, (c, x, y, w, h) in enumerate(BOXES)],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)],
    }


def dm_doc() -> dict:
    return {
        "annotations": {"image_1": [{"id": f"b{i}", "tool": "bounding_box", "classification": {"class": CLASSES[c]}}
                                    for i, (c, *_r) in enumerate(BOXES)]},
        "annotationsData": {"image_1": [{"id": f"b{i}", "coordinate": {"x": x, "y": y, "width": w, "height": h}}
                                        for i, (_c, x, y, w, h) in enumerate(BOXES)]},
    }


def yolo_text() -> str:
    return "".join(f"{c} {(x + w / 2) / 200!r} {(y + h / 2) / 100!r} {w / 200!r} {h / 100!r}\n"
                   for c, x, y, w, h in BOXES)


DOCS = {
    "synapse-objects": lambda: json.dumps(objects_doc()),
    "groundtruth": lambda: json.dumps(gt_doc()),
    "coco": lambda: json.dumps(coco_doc()),
    "dm-schema-v1": lambda: json.dumps(dm_doc()),
    "yolo": yolo_text,
}


def run_annotator(options: dict, records: list[dict], task_type: str = "object-detection",
                  manifest_url: str = "") -> dict[int, object]:
    """Run ``annotate`` over the records; every index must come back exactly once.

    These tests are about conversion, so DM v1 and objects documents are converted
    (``native: convert``) unless a test asks otherwise; keeping them is tested in
    test_native_documents.py."""
    options = {"native": "convert", **options}
    context = job_run("Test-Job", "boxes", task_type, options, manifest_url=manifest_url)
    items = [Item(i, i + 1, r) for i, r in enumerate(records)]
    with FileAnnotator(context) as annotator:
        pairs = list(annotator.annotate(iter(items)))
    indices = [item.index for item, _ in pairs]
    assert sorted(indices) == list(range(len(records)))
    return {item.index: outcome for item, outcome in pairs}


@pytest.fixture
def doc_server():
    docs: dict[str, bytes] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        body = docs.get(request.path)
        return web.Response(body=body) if body is not None else web.Response(status=404)

    with LocalHTTPServer(handler) as server:
        server.docs = docs  # type: ignore[attr-defined]
        yield server


def boxes_of(outcome) -> list[tuple]:
    assert isinstance(outcome, Labeled), outcome
    return [(a["class_id"], a["left"], a["top"], a["width"], a["height"]) for a in outcome.value["annotations"]]


def test_every_input_format_auto_detected_over_http(doc_server, tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    records = []
    for fmt, make in DOCS.items():
        ext = "txt" if fmt == "yolo" else "json"
        doc_server.docs[f"/labels/{fmt}.{ext}"] = make().encode()
        records.append({"source-ref": "s3://bucket/a.jpg", "label-url": doc_server.url(f"labels/{fmt}.{ext}"),
                        "image_size": [{"width": 200, "height": 100, "depth": 3}]})
    out = run_annotator({"url_key": "label-url", "class_names": str(names)}, records)
    for i, fmt in enumerate(DOCS):
        outcome = out[i]
        assert isinstance(outcome, Labeled), (fmt, outcome)
        assert boxes_of(outcome) == list(BOXES), fmt
        assert outcome.value["image_size"] == EXPECTED_VALUE["image_size"], fmt
        assert outcome.metadata["class-map"] == {"0": "circle", "2": "triangle"}, fmt
        assert len(outcome.metadata["objects"]) == 2
    # confidences are carried where the format has them
    assert [o["confidence"] for o in out[0].metadata["objects"]] == [0.5, 0.6]
    assert [o["confidence"] for o in out[2].metadata["objects"]] == [0.5, 0.6]


@pytest.mark.parametrize("fmt", sorted(DOCS))
def test_explicit_input_format(doc_server, tmp_path, fmt):
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    doc_server.docs["/doc"] = DOCS[fmt]().encode()
    record = {"source-ref": "x.jpg", "u": doc_server.url("doc"), "image_size": {"width": 200, "height": 100}}
    out = run_annotator({"url_key": "u", "input_format": fmt, "class_names": str(names)}, [record])
    assert boxes_of(out[0]) == list(BOXES)


def test_wrong_explicit_format_fails_the_line(doc_server):
    doc_server.docs["/doc"] = json.dumps(coco_doc()).encode()
    record = {"source-ref": "x.jpg", "u": doc_server.url("doc"), "image_size": [200, 100, 3]}
    out = run_annotator({"url_key": "u", "input_format": "synapse-objects"}, [record])
    assert isinstance(out[0], Failed) and out[0].reason.startswith("format: ")
    assert "objects" in out[0].reason


def test_target_specification_name_and_dotted_url_key(doc_server):
    doc_server.docs["/a.json"] = json.dumps(gt_doc()).encode()
    doc_server.docs["/image.jpg"] = b"not used"

    def exported(files: dict) -> dict:
        return {"source-ref": doc_server.url("image.jpg"),
                "synapse": {"task_id": 11, "project": 3, "data_unit_id": 5, "data_hash": "ab", "files": files}}

    good = exported({
        "image_1": {"url": doc_server.url("image.jpg"), "is_primary": True, "file_name_original": "a.jpg"},
        "label_1": {"url": doc_server.url("a.json"), "is_primary": False, "file_name_original": "a.json"},
    })
    missing = exported({"image_1": {"url": doc_server.url("image.jpg"), "is_primary": True}})
    no_map = {"source-ref": "x.jpg"}
    out = run_annotator({"target_specification_name": "label_1"}, [good, missing, no_map])
    assert boxes_of(out[0]) == list(BOXES)
    assert isinstance(out[1], Failed) and "no specification 'label_1' (it has: image_1)" in out[1].reason
    assert isinstance(out[2], Failed) and "no synapse.files map" in out[2].reason

    nested = {"source-ref": "x.jpg", "labels": {"file": {"url": doc_server.url("a.json")}}}
    dotted_literal = {"source-ref": "x.jpg", "labels.file.url": doc_server.url("a.json")}
    absent = {"source-ref": "x.jpg", "labels": {}}
    out = run_annotator({"url_key": "labels.file.url"}, [nested, dotted_literal, absent])
    assert boxes_of(out[0]) == list(BOXES) and boxes_of(out[1]) == list(BOXES)
    assert isinstance(out[2], Failed) and out[2].reason == "no URL: the line has no key 'labels.file.url'"


def test_class_names_fix_ids(doc_server, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("background\ncircle\nsquare\ntriangle\n")
    by_name = {"objects": [{"type": "bbox", "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4},
                            "properties": {"label": "triangle"}}]}
    unknown = {"objects": [{"type": "bbox", "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4},
                            "properties": {"label": "hexagon"}}]}
    doc_server.docs["/known.json"] = json.dumps(by_name).encode()
    doc_server.docs["/unknown.json"] = json.dumps(unknown).encode()
    size = {"image_size": [{"width": 10, "height": 10, "depth": 3}]}
    records = [{"source-ref": "x", "u": doc_server.url("known.json"), **size},
               {"source-ref": "x", "u": doc_server.url("unknown.json"), **size}]
    out = run_annotator({"url_key": "u", "class_names": str(names)}, records)
    assert boxes_of(out[0]) == [(3, 1, 2, 3, 4)] and out[0].metadata["class-map"] == {"3": "triangle"}
    assert isinstance(out[1], Failed) and "'hexagon' is not among the class names" in out[1].reason
    # without class names, ids are handed out in first-seen order
    out = run_annotator({"url_key": "u"}, records[:1])
    assert boxes_of(out[0]) == [(0, 1, 2, 3, 4)] and out[0].metadata["class-map"] == {"0": "triangle"}


def test_image_size_read_from_the_source_image(tmp_path, doc_server):
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(root / "images" / "rgb.jpg")
    Image.new("L", (33, 21), 128).save(root / "images" / "gray.png")
    Image.new("RGBA", (5, 7)).save(root / "images" / "rgba.png")
    (root / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "labels" / "o.json").write_text(json.dumps(objects_doc()))
    buf = (root / "images" / "rgb.jpg").read_bytes()
    doc_server.docs["/remote.jpg"] = buf
    manifest = root / "manifest.jsonl"
    records = [
        {"source-ref": "images/rgb.jpg", "u": "labels/o.json"},
        {"source-ref": "images/gray.png", "u": "labels/o.json"},
        {"source-ref": f"file://{root}/images/rgba.png", "u": str(root / "labels" / "o.json")},
        {"source-ref": doc_server.url("remote.jpg"), "u": "labels/o.json"},
        {"source-ref": "images/corrupt.jpg", "u": "labels/o.json"},
        {"source-ref": "images/missing.jpg", "u": "labels/o.json"},
        {"u": "labels/o.json"},
    ]
    options = {"url_key": "u", "allow_root": str(root), "relative_to": str(root)}
    out = run_annotator(options, records, manifest_url=str(manifest))
    sizes = [o.value["image_size"][0] if isinstance(o, Labeled) else o for o in (out[i] for i in range(4))]
    assert sizes == [{"width": 64, "height": 48, "depth": 3}, {"width": 33, "height": 21, "depth": 1},
                     {"width": 5, "height": 7, "depth": 4}, {"width": 64, "height": 48, "depth": 3}]
    assert isinstance(out[4], Failed) and out[4].reason.startswith("image size: not a readable image")
    assert isinstance(out[5], Failed) and out[5].reason.startswith("image size: no such file")
    assert isinstance(out[6], Failed) and "neither 'image_size' nor 'source-ref'" in out[6].reason


def test_relative_references_follow_the_manifest_folder(tmp_path):
    root = tmp_path / "data"
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.json").write_text(json.dumps(gt_doc()))
    record = {"source-ref": "img.jpg", "u": "labels/a.json"}
    # the folder comes from the options (annotate records it), else from the manifest being read
    out = run_annotator({"url_key": "u", "allow_root": str(root), "relative_to": str(root)}, [record])
    assert boxes_of(out[0]) == list(BOXES)
    out = run_annotator({"url_key": "u", "allow_root": str(root)}, [record], manifest_url=str(root / "m.jsonl"))
    assert boxes_of(out[0]) == list(BOXES)
    # without --allow-root a local file is refused, with a reason saying why
    out = run_annotator({"url_key": "u", "relative_to": str(root)}, [record])
    assert isinstance(out[0], Failed) and "needs --allow-root" in out[0].reason


@pytest.mark.parametrize("input_format", ["auto", "coco"])
@pytest.mark.parametrize(("body", "said"), [
    (b"\xff\xfe" + "{}".encode("utf-16-le"), "is UTF-16 text (it starts with the byte order mark FF FE), not UTF-8"),
    (b"\xfe\xff" + "{}".encode("utf-16-be"), "is UTF-16 text (it starts with the byte order mark FE FF), not UTF-8"),
    (b"\xff\xfe\x00\x00" + "{}".encode("utf-32-le"), "is UTF-32 text (it starts with the byte order mark FF FE 00 00)"),
    (b'{"images": [], "x": "caf\xe9"}', "is not UTF-8 text (invalid continuation byte)"),
], ids=["utf-16", "utf-16-be", "utf-32", "latin-1"])
def test_an_annotation_file_that_is_not_utf8_fails_as_not_utf8(tmp_path, input_format, body, said):
    """A UTF-16 file (Notepad's "Unicode") failed as ``not-json`` with orjson's "str is not valid
    UTF-8: surrogates not allowed", where the README's rule for it is ``not-utf8``. A JSON body
    that is not UTF-8 fails as ``not-utf8`` now, naming the file and what it is. A UTF-32 file
    was said to be UTF-16 (UTF-32LE's mark begins as UTF-16LE's): its encoding is told by the
    manifests' table now (``file_kind.other_encoding``)."""
    from totask_manifest._failure_rules import rule_of

    root = tmp_path / "data"
    root.mkdir()
    (root / "a.json").write_bytes(body)
    out = run_annotator({"url_key": "u", "allow_root": str(root), "relative_to": str(root),
                         "input_format": input_format}, [{"source-ref": "img.jpg", "u": "a.json"}])
    assert isinstance(out[0], Failed) and said in out[0].reason and "a.json" in out[0].reason, out[0]
    assert out[0].rule == "not-utf8" and rule_of(out[0].reason) == "not-utf8", out[0]


def test_other_task_types_from_groundtruth_files(doc_server):
    doc_server.docs["/cls.json"] = json.dumps({"label": 2, "metadata": {"class-name": "bird", "confidence": 0.7}}).encode()
    doc_server.docs["/multi.json"] = json.dumps(
        {"objects": [{"type": "classification", "class_id": 1, "properties": {"label": "dog", "confidence": 0.9}},
                     {"type": "classification", "class_id": 4, "properties": {"label": "cat"}}]}).encode()
    out = run_annotator({"url_key": "u"}, [{"source-ref": "x", "u": doc_server.url("cls.json")}],
                        task_type="image-classification")
    assert isinstance(out[0], Labeled) and out[0].value == 2
    assert out[0].metadata == {"class-name": "bird", "confidence": 0.7}
    out = run_annotator({"url_key": "u"}, [{"source-ref": "x", "u": doc_server.url("multi.json")}],
                        task_type="image-classification-multilabel")
    assert out[0].value == [1, 4] and out[0].metadata["class-map"] == {"1": "dog", "4": "cat"}


@pytest.mark.parametrize("task_type", ["image-classification", "image-classification-multilabel"])
def test_a_bounding_box_label_file_in_a_classification_job_is_named_as_such(tmp_path, task_type):
    """A classification job over Ground Truth box files said "class id must be a non-negative
    integer, got {"image_size": ...}": neither the mix-up nor the file. It says both now, under
    the same rule (``format-invalid``)."""
    from totask_manifest._failure_rules import rule_of

    root = tmp_path / "data"
    root.mkdir()
    (root / "boxes.json").write_text(json.dumps(gt_doc()))
    out = run_annotator({"url_key": "u", "allow_root": str(root), "relative_to": str(root)},
                        [{"source-ref": "img.jpg", "u": "boxes.json"}], task_type=task_type)
    assert isinstance(out[0], Failed), out[0]
    assert out[0].reason == (f"format: {root / 'boxes.json'}: the label is a detection (bounding-box) label "
                             f"('image_size', 'annotations'), not an {task_type} one (a job of task type "
                             "object-detection takes it) [format-groundtruth]"), out[0].reason
    assert rule_of(out[0].reason) == "format-invalid"
    declared = gt_doc()
    declared["metadata"]["type"] = "groundtruth/object-detection"  # declared: named by its type, the file too
    (root / "declared.json").write_text(json.dumps(declared))
    out = run_annotator({"url_key": "u", "allow_root": str(root), "relative_to": str(root)},
                        [{"source-ref": "img.jpg", "u": "declared.json"}], task_type=task_type)
    assert out[0].reason == (f"format: {root / 'declared.json'}: key 'type': label is of type 'object-detection', "
                             f"not {task_type!r} [format-groundtruth]"), out[0].reason


def test_labels_are_schema_checked_once_by_the_job(doc_server, tmp_path):
    """The annotator hands the label on as it read it; the job's recorder, which every
    annotator's output passes, fails the line with the schema rule it breaks."""
    bad = gt_doc()
    bad["label"] = json.loads(json.dumps(EXPECTED_VALUE))
    bad["label"]["annotations"][1]["width"] = -20
    doc_server.docs["/bad.json"] = json.dumps(bad).encode()
    record = {"source-ref": "x", "u": doc_server.url("bad.json")}
    out = run_annotator({"url_key": "u"}, [record])
    assert isinstance(out[0], Labeled)
    config = JobConfig(job_name="Test-Job", input="in", output_root=str(tmp_path), label_attribute="boxes",
                       task_type="object-detection")
    writer = CheckpointWriter(JobLayout(config.job_url), next_seq=0, every=100, seconds=60)
    recorder = Recorder(config, writer, {"labeled": 0, "failed": 0, "routed": 0})
    status, updates, outcome = recorder.updates_for(Item(0, 1, record), out[0])
    assert status == "failed" and isinstance(outcome, Failed) and outcome.rule == "schema-invalid"
    assert outcome.reason.startswith("schema: ") and "width" in outcome.reason
    assert "failure-reason" in updates["boxes-metadata"]


def test_each_outcome_comes_with_its_own_item(doc_server):
    for i in range(20):
        doc_server.docs[f"/{i}.json"] = json.dumps({"label": i % 3, "metadata": {"class-name": f"c{i % 3}"}}).encode()
    context = job_run("j", "a", "image-classification", {"url_key": "u", "concurrency": 4})
    items = [Item(i, i + 1, {"source-ref": "x", "u": doc_server.url(f"{i}.json")}) for i in range(20)]
    with FileAnnotator(context) as annotator:
        pairs = list(annotator.annotate(iter(items)))
    assert sorted((item.index, o.value) for item, o in pairs) == [(i, i % 3) for i in range(20)]


# ---------------------------------------------------------------- options


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    add_options(parser.add_argument_group("file"), FileAnnotator.Options)
    return parser.parse_args(argv)


def test_options_from_flags_are_json_and_the_job_makes_them_absolute(tmp_path, monkeypatch):
    from totask_manifest._api_checks import check_config as _check_config
    from totask_manifest._jobs.config import JobConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "names.txt").write_text("a\nb\n")
    args = parse(["data/m.jsonl", "--url-key", "k", "--class-names", "names.txt", "--allow-root", "data",
                  "--allow-host", "a.example", "--allow-host", "*.b.example", "--concurrency", "8"])
    options = read_options(args, FileAnnotator.Options)
    assert options["allow_hosts"] == ["a.example", "*.b.example"]
    assert options["concurrency"] == 8 and options["retries"] == 3 and options["timeout"] == 30
    assert "native" not in options and "allow_drop" not in options  # job.json keeps its shape
    assert orjson.loads(orjson.dumps(options)) == options
    config = JobConfig(job_name="j", input=args.input, output_root="out", label_attribute="boxes",
                       task_type="object-detection", method="file", options=options)
    _check_config(config)
    assert config.options["relative_to"] == str(tmp_path / "data")
    assert config.options["allow_root"] == str(tmp_path / "data")
    assert config.options["class_names"] == str(tmp_path / "names.txt")
    assert get_annotator_class("file") is FileAnnotator


def test_url_sources_are_exclusive_on_the_command_line():
    with pytest.raises(UsageError, match=r"^--target-specification-name and --url-key cannot be given together"):
        read_options(parse(["m.jsonl", "--url-key", "k", "--target-specification-name", "s"]), FileAnnotator.Options)


@pytest.mark.parametrize(("options", "task_type", "message"), [
    ({}, "object-detection", "needs --url-key K or --target-specification-name S"),
    ({"url_key": "k", "target_specification_name": "s"}, "object-detection", "not both"),
    ({"url_key": "k", "input_format": "pascal"}, "object-detection", "unknown --input-format"),
    ({"url_key": "k", "input_format": "coco"}, "image-classification", "cannot express task type"),
    ({"url_key": "k", "input_format": "yolo"}, "object-detection", "needs --class-names"),
    ({"url_key": "k", "class_names": "/no/such/names.txt"}, "object-detection", "--class-names"),
    ({"url_key": "k", "allow_root": "/no/such/folder"}, "object-detection", "no such folder"),
    # a manifest given for the folder said "no such folder", though it exists
    ({"url_key": "k", "allow_root": str(REPO / "sample_data" / "manifest.jsonl")}, "object-detection",
     "sample_data/manifest.jsonl: is a file, not a folder"),
    ({"url_key": "k", "allow_root": "s3://bucket/run"}, "object-detection",
     "--allow-root s3://bucket/run: a local folder is expected"),
    ({"url_key": "k", "allow_root": "s3://bucket/run"}, "object-detection", "s3:// URLs need no root: drop --allow-root"),
    ({"url_key": "k", "concurrency": 0}, "object-detection", "--concurrency"),
    ({"url_key": "k", "retries": -1}, "object-detection", "--retries"),
])
def test_check_refuses(options, task_type, message):
    with pytest.raises(UsageError, match=message.replace("-", r"\-").replace("(", r"\(")):
        FileAnnotator.check(FileAnnotator.Options.from_dict(options), task_type)


def test_lookup():
    record = {"a.b": 1, "a": {"b": 2, "c": [{"d": 3}]}}
    assert lookup(record, "a.b") == 1
    assert lookup(record, "a.c.0.d") == 3
    with pytest.raises(KeyError):
        lookup(record, "a.x")


# ---------------------------------------------------------------- the quick start, through the CLI


def test_quick_start_sample_data(tmp_path, monkeypatch, capsys):
    from totask_manifest._cli import main

    monkeypatch.chdir(REPO)
    out_root = tmp_path / "out"
    code = main(["annotate", "sample_data/manifest.jsonl", "--job-name", "sample-boxes", "--label-attribute",
                 "boxes", "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                 "--class-names", "sample_data/class_names.txt", "--native", "convert", "--allow-root", "sample_data",
                 "--output", str(out_root)])
    assert code == 0, capsys.readouterr()
    lines = (out_root / "sample-boxes" / "manifests" / "output" / "output.manifest").read_bytes().splitlines()
    source = (REPO / "sample_data" / "manifest.jsonl").read_bytes().splitlines()
    assert len(lines) == len(source) == 50
    labeled = failed = 0
    for raw, src in zip(lines, source, strict=True):
        record = orjson.loads(raw)
        assert raw.startswith(src[:-1])  # the input keys are kept byte for byte
        meta = record["boxes-metadata"]
        if "failure-reason" in meta:
            failed += 1
            assert record["annotation-ref"] == "annotations/img_013.json"
            assert meta["failure-reason"].startswith("parse: ") and "not valid JSON" in meta["failure-reason"]
            continue
        labeled += 1
        assert record["boxes"]["image_size"] == [{"width": 160, "height": 120, "depth": 3}]
        assert 1 <= len(record["boxes"]["annotations"]) <= 3
        assert set(meta["class-map"].values()) <= set(CLASSES)
        for a in record["boxes"]["annotations"]:
            assert meta["class-map"][str(a["class_id"])] == CLASSES[a["class_id"]]
            assert a["left"] >= 0 and a["left"] + a["width"] <= 160.001
    assert (labeled, failed) == (49, 1)


@pytest.mark.parametrize("fmt", ["coco", "yolo"])
def test_a_box_format_file_in_a_classification_job_is_named(doc_server, tmp_path, fmt):
    """A COCO or YOLO file in a classification job said "format 'coco' does not carry task type
    'image-classification'..." naming no file; it names it now, its signature left out, as a
    Ground Truth box file does."""
    from totask_manifest._failure_rules import rule_of

    names = tmp_path / "classes.txt"
    names.write_text("\n".join(CLASSES) + "\n")
    doc_server.docs["/a.txt"] = DOCS[fmt]().encode()
    url = doc_server.url("a.txt") + "?X-Amz-Signature=s3cr3t"
    out = run_annotator({"url_key": "u", "class_names": str(names)},
                        [{"source-ref": "img.jpg", "u": url}], task_type="image-classification")
    assert isinstance(out[0], Failed), out[0]
    assert out[0].reason == (f"format: {doc_server.url('a.txt')}?…: format {fmt!r} does not carry task type "
                             f"'image-classification'; it carries object-detection [format-{fmt}]"), out[0].reason
    assert rule_of(out[0].reason) == "format-invalid"


def test_a_file_of_no_format_known_is_named(doc_server):
    """``{}`` said "cannot tell the format of this document ... [format-detect]" with no URL."""
    doc_server.docs["/empty-object.json"] = b"{}"
    url = doc_server.url("empty-object.json") + "?token=s3cr3t"
    out = run_annotator({"url_key": "u"}, [{"source-ref": "img.jpg", "u": url}])
    assert isinstance(out[0], Failed), out[0]
    assert out[0].reason.startswith(f"format: {doc_server.url('empty-object.json')}?…: cannot tell the format "
                                    "of this document; known formats: "), out[0].reason
    assert out[0].reason.endswith(" [format-detect]") and "s3cr3t" not in out[0].reason


def test_a_file_of_no_format_known_is_named_by_the_cli(tmp_path):
    """As the user meets it: a real ``annotate`` process, the failure in failures.jsonl and on stderr."""
    from tests.jobs_helpers import run_cli

    (tmp_path / "good.json").write_text(json.dumps(gt_doc()))
    (tmp_path / "none.json").write_text("{}")
    inp = tmp_path / "in.manifest"
    inp.write_text("".join(json.dumps({"source-ref": "s3://b/a.jpg", "u": name, "image_size": EXPECTED_VALUE["image_size"]})
                           + "\n" for name in ("good.json", "none.json")))
    r = run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                "object-detection", "--method", "file", "--url-key", "u", "--allow-root", str(tmp_path),
                "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    (failure,) = [json.loads(line) for line in (tmp_path / "out" / "j" / "failures.jsonl").read_text().splitlines()]
    assert failure["reason"].startswith(f"format: {tmp_path / 'none.json'}: cannot tell the format of this document"), failure
    assert f"failed: format: {tmp_path / 'none.json'}: cannot tell the format" in r.stderr, r.stderr
