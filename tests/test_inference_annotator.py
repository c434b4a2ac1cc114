"""The inference annotator through its library interface, with models made and scripted here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import orjson
import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from tests.support.http_server import LocalHTTPServer  # noqa: E402
from tests.test_inference_support import (  # noqa: E402
    ColorBoxes,
    ColorSegmenter,
    MeanColor,
    boxes_image,
    detection_set,
    png,
    save_scripted,
)
from totask_manifest._annotators.base import Failed, Item, Labeled, Routed  # noqa: E402
from totask_manifest._annotators.inference import InferenceAnnotator  # noqa: E402
from totask_manifest._errors import UsageError  # noqa: E402
from totask_manifest._manifest.validate import check_label  # noqa: E402
from totask_manifest.testing.runs import job_run  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

COMMON_META = {
    "job-name": "labeling-job/t",
    "human-annotated": "no",
    "creation-date": "2026-01-01T00:00:00.000000",
}


def full_metadata(task_type: str, meta: dict) -> dict:
    return {**meta, **COMMON_META, "type": f"groundtruth/{task_type}"}


def run(tmp_path: Path, task_type: str, options: dict, records: list[dict]) -> list:
    ctx = job_run("t", "lab", task_type, {"allow_root": str(tmp_path), "relative_to": str(tmp_path), **options},
                  method="inference", output_root=str(tmp_path), manifest_url=str(tmp_path / "in.manifest"))
    items = [Item(i, i + 1, r) for i, r in enumerate(records)]
    with InferenceAnnotator(ctx) as annotator:
        got = dict((item.index, out) for item, out in annotator.annotate(items))
    assert sorted(got) == list(range(len(items)))
    return [got[i] for i in range(len(items))]


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    return save_scripted(ColorBoxes(), tmp_path_factory.mktemp("m") / "colorboxes.pt")


def test_detector_labels_match_image_content_and_schema(tmp_path, detector):
    expected = detection_set(tmp_path / "img", 37)  # 37: batches of 16 leave a short last batch
    records = [{"source-ref": f"img/img{i:04d}.png"} for i in range(37)]
    outs = run(tmp_path, "object-detection", {"model": str(detector), "confidence_threshold": 0.3}, records)
    for exp, out in zip(expected, outs, strict=True):
        assert isinstance(out, Labeled), out
        w, h = exp["size"]
        assert out.value["image_size"] == [{"width": w, "height": h, "depth": 3}]
        # highest score first: red (0.902) then green (0.392)
        assert out.value["annotations"] == [exp["red"], exp["green"]]
        assert out.metadata["objects"] == [{"confidence": round(230 / 255, 4)}, {"confidence": round(100 / 255, 4)}]
        assert out.metadata["class-map"] == {"0": "red", "1": "green"}
        assert check_label("object-detection", out.value, full_metadata("object-detection", out.metadata)) == []


def test_confidence_threshold_drops_weak_boxes(tmp_path, detector):
    expected = detection_set(tmp_path / "img", 3)
    records = [{"source-ref": f"img/img{i:04d}.png"} for i in range(3)]
    outs = run(tmp_path, "object-detection", {"model": str(detector)}, records)  # default threshold 0.5
    for exp, out in zip(expected, outs, strict=True):
        assert out.value["annotations"] == [exp["red"]]
        assert out.metadata["class-map"] == {"0": "red"}
        assert all(o["confidence"] >= 0.5 for o in out.metadata["objects"])
    outs = run(tmp_path, "object-detection", {"model": str(detector), "confidence_threshold": 0.95}, records)
    assert all(o.value["annotations"] == [] and o.metadata == {"objects": [], "class-map": {}} for o in outs)


def test_class_filter_min_size_and_max_objects(tmp_path, detector):
    detection_set(tmp_path / "img", 2)
    records = [{"source-ref": f"img/img{i:04d}.png"} for i in range(2)]
    base = {"model": str(detector), "confidence_threshold": 0.3}
    by_name = run(tmp_path, "object-detection", {**base, "params": {"class_filter": ["green"]}}, records)
    assert [a["class_id"] for a in by_name[0].value["annotations"]] == [1]
    small = run(tmp_path, "object-detection", {**base, "params": {"min_object_size": 20}}, records)
    assert [a["class_id"] for a in small[0].value["annotations"]] == [1]  # red is 16 px wide
    top1 = run(tmp_path, "object-detection", {**base, "params": {"max_objects": 1}}, records)
    assert [a["class_id"] for a in top1[0].value["annotations"]] == [0]


def test_corrupt_missing_and_refused_images_fail_only_their_lines(tmp_path, detector):
    expected = detection_set(tmp_path / "img", 5)
    good = (tmp_path / "img" / "img0000.png").read_bytes()
    (tmp_path / "img" / "garbage.png").write_bytes(b"this is not an image")
    (tmp_path / "img" / "truncated.png").write_bytes(good[: len(good) // 2])
    refs = ["img/img0000.png", "img/garbage.png", "img/img0001.png", "img/truncated.png", "img/nope.png",
            "/etc/hostname", "img/img0002.png"]
    records = [{"source-ref": r} for r in refs] + [{"other": 1}]
    outs = run(tmp_path, "object-detection", {"model": str(detector)}, records)
    assert [type(o).__name__ for o in outs] == ["Labeled", "Failed", "Labeled", "Failed", "Failed", "Failed",
                                                "Labeled", "Failed"]
    assert outs[0].value["annotations"] == [expected[0]["red"]]
    assert outs[6].value["annotations"] == [expected[2]["red"]]
    assert "not a readable image" in outs[1].reason
    assert "not a readable image" in outs[3].reason
    assert "no such file" in outs[4].reason
    assert "outside the allowed root" in outs[5].reason
    assert "no 'source-ref'" in outs[7].reason


def test_image_key_and_images_over_http(tmp_path, detector):
    from aiohttp import web

    image = png(boxes_image(50, 40, [((3, 4, 12, 20), (0, 0, 200))]))

    async def handler(request):
        if request.path == "/a.png":
            return web.Response(body=image, content_type="image/png")
        return web.Response(status=404)

    with LocalHTTPServer(handler) as server:
        records = [{"source-ref": "ignored.png", "img": server.url("a.png")}, {"img": server.url("b.png")}]
        outs = run(tmp_path, "object-detection", {"model": str(detector), "image_key": "img",
                                                  "allow_hosts": ["127.0.0.1"]}, records)
    assert outs[0].value == {
        "image_size": [{"width": 50, "height": 40, "depth": 3}],
        "annotations": [{"class_id": 2, "left": 3, "top": 4, "width": 10, "height": 17}],
    }
    assert isinstance(outs[1], Failed) and "HTTP 404" in outs[1].reason


def test_review_below_routes_uncertain_detections(tmp_path, detector):
    images = {
        "sure.png": boxes_image(40, 40, [((2, 2, 10, 10), (240, 0, 0))]),      # one box, 0.94
        "unsure.png": boxes_image(40, 40, [((2, 2, 10, 10), (240, 0, 0)), ((20, 20, 30, 30), (0, 140, 0))]),  # min 0.55
        "empty.png": boxes_image(40, 40, []),                                  # nothing seen: confidence 1
        "almost.png": boxes_image(40, 40, [((2, 2, 10, 10), (0, 0, 110))]),    # dropped 0.43: confidence 0.57
    }
    for name, im in images.items():
        im.save(tmp_path / name)
    records = [{"source-ref": n} for n in images]
    outs = run(tmp_path, "object-detection", {"model": str(detector), "review_below": 0.8}, records)
    assert isinstance(outs[0], Labeled)
    assert isinstance(outs[1], Routed)
    assert outs[1].metadata == {"review-status": "routed", "confidence": round(140 / 255, 4), "review-threshold": 0.8}
    assert isinstance(outs[2], Labeled) and outs[2].value["annotations"] == []
    assert isinstance(outs[3], Routed) and outs[3].metadata["confidence"] == round(1 - 110 / 255, 4)


def test_a_box_min_object_size_removes_counts_in_no_line_confidence(tmp_path, detector):
    """A box under ``min_object_size`` is never written, so it says nothing of the line: one under
    the threshold too still counted as "the best score the threshold dropped", and a line whose
    only box was a small unsure one read 0.57 sure to be empty and was routed for review, where a
    line with no box at all is labeled (confidence 1). Each of these now reads as the empty image."""
    images = {
        "empty.png": boxes_image(40, 40, []),
        "small-unsure.png": boxes_image(40, 40, [((2, 2, 5, 5), (0, 0, 110))]),    # 4 px, 0.43: dropped twice
        "small-sure.png": boxes_image(40, 40, [((2, 2, 5, 5), (240, 0, 0))]),      # 4 px, 0.94: removed by size
        "big-and-small.png": boxes_image(40, 40, [((2, 2, 25, 25), (240, 0, 0)), ((30, 30, 33, 33), (0, 0, 110))]),
    }
    for name, im in images.items():
        im.save(tmp_path / name)
    records = [{"source-ref": n} for n in images]
    options = {"model": str(detector), "review_below": 0.8, "params": {"min_object_size": 10}}
    empty, small_unsure, small_sure, big_and_small = run(tmp_path, "object-detection", options, records)
    assert isinstance(empty, Labeled) and empty.value["annotations"] == []
    for out in (small_unsure, small_sure):
        assert isinstance(out, Labeled), out
        assert (out.value, out.metadata) == (empty.value, empty.metadata)
    assert isinstance(big_and_small, Labeled), big_and_small
    assert big_and_small.metadata["objects"] == [{"confidence": round(240 / 255, 4)}]
    # the same small unsure box without min_object_size is what the threshold dropped: routed
    plain = run(tmp_path, "object-detection", {"model": str(detector), "review_below": 0.8}, records[1:2])
    assert isinstance(plain[0], Routed) and plain[0].metadata["confidence"] == round(1 - 110 / 255, 4)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return save_scripted(MeanColor(), tmp_path_factory.mktemp("m") / "meancolor.pt")


def color_images(tmp_path: Path) -> list[dict]:
    specs = {
        "red.png": (200, 10, 10),     # softmax over (7.8, .4, .4): red, confident
        "mixed.png": (120, 110, 0),   # red and green close: single label unsure
        "dark.png": (5, 5, 5),
    }
    for name, rgb in specs.items():
        Image.new("RGB", (20, 30), rgb).save(tmp_path / name)
    return [{"source-ref": n} for n in specs]


def test_single_label_classification(tmp_path, classifier):
    records = color_images(tmp_path)
    outs = run(tmp_path, "image-classification", {"model": str(classifier)}, records)
    assert [o.value for o in outs] == [0, 0, 0]
    conf = torch.softmax(torch.tensor([200, 10, 10]) / 255 * 10, 0)[0].item()
    assert outs[0].metadata == {"class-name": "red", "confidence": round(conf, 4)}
    for o in outs:
        assert check_label("image-classification", o.value, full_metadata("image-classification", o.metadata)) == []
    # below confidence_threshold: routed for review instead of labeled
    outs = run(tmp_path, "image-classification", {"model": str(classifier), "confidence_threshold": 0.6}, records)
    assert isinstance(outs[0], Labeled)
    assert isinstance(outs[1], Routed) and "confidence_threshold 0.6" in outs[1].reason
    assert isinstance(outs[2], Routed)


def test_multilabel_classification(tmp_path, classifier):
    records = color_images(tmp_path)
    outs = run(tmp_path, "image-classification-multilabel",
               {"model": str(classifier), "confidence_threshold": 0.9}, records)
    # sigmoid(10 * mean): red.png -> red only; mixed.png -> red and green; dark.png -> none
    assert [o.value for o in outs] == [[0], [0, 1], []]
    assert outs[1].metadata["class-map"] == {"0": "red", "1": "green"}
    assert set(outs[1].metadata["confidence-map"]) == {"0", "1"}
    for o in outs:
        meta = full_metadata("image-classification-multilabel", o.metadata)
        assert check_label("image-classification-multilabel", o.value, meta) == []


def test_a_sixteen_bit_grey_png_reaches_the_model_at_its_own_brightness(tmp_path, classifier):
    """16-bit grey PNGs: an eighth bright gives sigmoid(10 x 0.125) = 0.78 for each channel, under
    0.9, so no class; half bright gives 0.9934 and every class. Clipped at 255 by Pillow's
    conversion, both reached the model white (sigmoid(10) = 1.0): every class on both lines."""
    dark = np.full((20, 30), 0x2000, dtype=np.uint16)
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    Image.fromarray(np.full((20, 30), 0x8000, dtype=np.uint16)).save(tmp_path / "half16.png")
    assert Image.open(tmp_path / "dark16.png").mode == "I;16"
    records = [{"source-ref": "dark16.png"}, {"source-ref": "half16.png"}]
    outs = run(tmp_path, "image-classification-multilabel",
               {"model": str(classifier), "confidence_threshold": 0.9}, records)
    assert [o.value for o in outs] == [[], [0, 1, 2]]
    half = round(torch.sigmoid(torch.tensor(10 * 128 / 255)).item(), 4)
    assert outs[1].metadata["confidence-map"] == {"0": half, "1": half, "2": half}


def test_semantic_segmentation_writes_palette_masks(tmp_path):
    model = save_scripted(ColorSegmenter(), tmp_path / "seg.pt", class_names="BACKGROUND\nred\ngreen\nblue\n")
    im = boxes_image(64, 64, [((4, 4, 19, 19), (250, 0, 0)), ((30, 30, 49, 59), (0, 0, 250))])
    im.save(tmp_path / "a.png")
    outs = run(tmp_path, "semantic-segmentation", {"model": str(model), "input_size": "64"},
               [{"source-ref": "a.png"}, {"source-ref": "missing.png"}])
    out = outs[0]
    assert isinstance(out, Labeled)
    assert out.value == str(tmp_path / "t" / "annotations" / "masks" / "1.png")
    mask_img = Image.open(out.value)
    assert mask_img.mode == "P" and mask_img.size == (64, 64)
    mask = np.asarray(mask_img)
    expected = np.zeros((64, 64), np.uint8)
    expected[4:20, 4:20] = 1
    expected[30:60, 30:50] = 3
    assert (mask == expected).all()
    cmap = out.metadata["internal-color-map"]
    assert cmap["0"]["class-name"] == "BACKGROUND" and cmap["0"]["hex-color"] == "#ffffff"
    assert [cmap[k]["class-name"] for k in ("1", "2", "3")] == ["red", "green", "blue"]
    palette = mask_img.getpalette()[:12]
    assert palette[:3] == [255, 255, 255]
    assert "#{:02x}{:02x}{:02x}".format(*palette[3:6]) == cmap["1"]["hex-color"]
    meta = full_metadata("semantic-segmentation", out.metadata)
    assert check_label("semantic-segmentation", out.value, meta) == []
    assert isinstance(outs[1], Failed)
    assert sorted(p.name for p in (tmp_path / "t" / "annotations" / "masks").iterdir()) == ["1.png"]


def test_class_names_file_wins_and_missing_names_is_a_usage_error(tmp_path):
    class Anonymous(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    model = save_scripted(Anonymous(), tmp_path / "anon.pt")
    Image.new("RGB", (8, 8), (0, 200, 0)).save(tmp_path / "g.png")
    with pytest.raises(UsageError, match="no class names"):
        run(tmp_path, "image-classification", {"model": str(model)}, [{"source-ref": "g.png"}])
    names = tmp_path / "names.txt"
    names.write_text("rouge\nvert\nbleu\n")
    outs = run(tmp_path, "image-classification", {"model": str(model), "class_names": str(names)},
               [{"source-ref": "g.png"}])
    assert outs[0].metadata["class-name"] == "vert"


def test_a_model_error_on_one_image_fails_that_line_only(tmp_path):
    # an eager model from a file.py:factory entry point that refuses any batch holding an
    # all-white image, as a model may choke on one input
    path = tmp_path / "picky.py"
    path.write_text(
        "import torch\n"
        "class Picky(torch.nn.Module):\n"
        "    class_names = ['r', 'g', 'b']\n"
        "    def forward(self, x):\n"
        "        if bool((x.flatten(1).min(dim=1).values > 0.99).any()):\n"
        "            raise RuntimeError('cannot handle a blank image')\n"
        "        return x.mean(dim=(2, 3))\n"
        "def make():\n"
        "    return Picky()\n"
    )
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "white.png")
    Image.new("RGB", (8, 8), (0, 0, 200)).save(tmp_path / "blue.png")
    records = [{"source-ref": "blue.png"}, {"source-ref": "white.png"}, {"source-ref": "blue.png"}]
    outs = run(tmp_path, "image-classification", {"model": f"{path}:make", "input_size": 8}, records)
    assert [type(o).__name__ for o in outs] == ["Labeled", "Failed", "Labeled"]
    assert "cannot handle a blank image" in outs[1].reason
    assert outs[0].value == 2


def picky_model(tmp_path: Path, *, always: bool = False) -> str:
    """An eager ``file.py:factory`` model that raises on any batch holding an all-white image
    (or on every batch with ``always``), counting its calls in ``calls.txt``."""
    path = tmp_path / ("broken.py" if always else "picky.py")
    refuse = "True" if always else "bool((x.flatten(1).min(dim=1).values > 0.99).any())"
    path.write_text(
        "import pathlib\n"
        "import torch\n"
        "class Picky(torch.nn.Module):\n"
        "    class_names = ['r', 'g', 'b']\n"
        "    def forward(self, x):\n"
        f"        calls = pathlib.Path({str(tmp_path / 'calls.txt')!r})\n"
        "        calls.write_text(str(int(calls.read_text() if calls.exists() else 0) + 1))\n"
        f"        if {refuse}:\n"
        "            raise RuntimeError('cannot handle a blank image')\n"
        "        return x.mean(dim=(2, 3))\n"
        "def make():\n"
        "    return Picky()\n"
    )
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "white.png")
    Image.new("RGB", (8, 8), (0, 0, 200)).save(tmp_path / "blue.png")
    return f"{path}:make"


def test_a_model_error_on_a_one_image_batch_fails_that_line_only(tmp_path):
    """A rejected image alone in its batch (the last of an odd count, or any with batch size 1)
    fails its line; it used to stop the job, and a resumed job met the same image again."""
    model = picky_model(tmp_path)
    blue, white = {"source-ref": "blue.png"}, {"source-ref": "white.png"}
    outs = run(tmp_path, "image-classification", {"model": model, "input_size": 8, "batch_size": 2},
               [blue, blue, white])
    assert [type(o).__name__ for o in outs] == ["Labeled", "Labeled", "Failed"]
    assert outs[2].reason == "model: RuntimeError: cannot handle a blank image"
    outs = run(tmp_path, "image-classification", {"model": model, "input_size": 8, "batch_size": 1},
               [white, blue, white, white, blue])
    assert [type(o).__name__ for o in outs] == ["Failed", "Labeled", "Failed", "Failed", "Labeled"]
    assert all("cannot handle a blank image" in o.reason for o in outs if isinstance(o, Failed))
    assert all(o.rule == "model-error" for o in outs if isinstance(o, Failed))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_model_that_fails_on_every_image_stops_the_job_with_one_error(tmp_path, batch_size):
    """A broken model must not write one identical failure per line: when the first lines of a
    run all fail in the model, the job stops FAILED with one error that says so (the same
    mechanism as a wrong --url-key for the file method: ``failure_rules.SystematicFailure``)."""
    from totask_manifest import _api as api
    from totask_manifest._annotators.failure_rules import FAIL_FAST_LINES
    from totask_manifest._jobs.config import JobConfig

    model = picky_model(tmp_path, always=True)
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"blue.png"}\n' * 200)
    result = api.annotate(JobConfig(
        job_name="broken", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="lab",
        task_type="image-classification", method="inference",
        options={"model": model, "input_size": 8, "batch_size": batch_size, "allow_root": str(tmp_path)}))
    assert result.status == "FAILED"
    job = orjson.loads((tmp_path / "out" / "broken" / "job.json").read_bytes())
    assert f"each of the first {FAIL_FAST_LINES} lines failed with 'model-error'" in job["error"]
    assert "cannot handle a blank image" in job["error"]
    # it stopped early: nowhere near one model call per line (a batch call plus one per image)
    assert int((tmp_path / "calls.txt").read_text()) < 120


#: the ToTask guide's ``pre_processor_params`` examples, word for word (parameter reference and
#: the pre-processor parameters section)
GUIDE_PARAMS_REFERENCE = {
    'confidence_threshold': 0.8,
    'model_config': {
        'batch_size': 16,
        'device': 'cuda',
        'use_fp16': True
    },
    'post_processing': {
        'nms_threshold': 0.5,
        'min_size': 10
    }
}
GUIDE_PRE_PROCESSOR_PARAMS = {
    # 모델 구성
    'model_config': {
        'batch_size': 16,
        'device': 'cuda',
        'use_fp16': True
    },
    # 추론 임계값
    'confidence_threshold': 0.8,
    'nms_threshold': 0.5,
    # 후처리
    'min_object_size': 10,
    'max_objects': 100,
    # 출력 형식
    'include_masks': True,
    'output_format': 'coco'
}


def test_the_guides_pre_processor_params_examples_are_accepted(tmp_path, detector, caplog):
    """The guide's examples work unchanged: what a task type has no use for is ignored with a note."""
    import logging

    import yaml

    from totask_manifest._models.params import load_params_file, resolve_params

    caplog.set_level(logging.INFO, logger="totask_manifest")
    for task_type in ("object-detection", "image-classification", "semantic-segmentation"):
        for guide in (GUIDE_PARAMS_REFERENCE, GUIDE_PRE_PROCESSOR_PARAMS):
            p = resolve_params(guide, task_type, source="guide")
            assert p["confidence_threshold"] == 0.8
            assert p["nms_threshold"] == 0.5 and p["min_object_size"] == 10 and p["max_objects"] == 100
            assert p["model_config"] == {"batch_size": 16, "device": "cuda", "use_fp16": True}
            assert p["output_format"] == "groundtruth"
    notes = []
    p = resolve_params(GUIDE_PRE_PROCESSOR_PARAMS, "object-detection", source="guide", notes=notes)
    assert p["include_masks"] is None
    assert notes == [
        "guide: output_format 'coco' ignored: jobs write Ground Truth manifests (convert them to COCO or YOLO "
        "afterwards with the formats converters)",
        "guide: include_masks ignored: Ground Truth object-detection labels hold no masks "
        "(use --task-type semantic-segmentation for per-pixel labels)",
    ]
    notes = []
    assert resolve_params(GUIDE_PRE_PROCESSOR_PARAMS, "semantic-segmentation", notes=notes)["include_masks"] is True
    assert [n.split(" ignored")[0] for n in notes] == [
        "params: output_format 'coco'", "params: nms_threshold", "params: min_object_size", "params: max_objects"]
    notes = []
    resolve_params(GUIDE_PARAMS_REFERENCE, "object-detection", notes=notes)
    assert notes == []
    # as a --params file in a ToTask action's shape: checked up front silently, noted once by the job
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"pre_processor_params": GUIDE_PRE_PROCESSOR_PARAMS}))
    params_file = str(tmp_path / "params.yaml")
    options = {"model": str(detector), "params_file": params_file, "params": load_params_file(params_file),
               "device": "cpu"}
    caplog.clear()
    InferenceAnnotator.check(InferenceAnnotator.Options.from_dict(options), "object-detection")
    assert not [r for r in caplog.records if r.name == "totask_manifest._models.params"]
    Image.new("RGB", (40, 30), (0, 0, 0)).save(tmp_path / "black.png")
    outs = run(tmp_path, "object-detection", options, [{"source-ref": "black.png"}])
    assert isinstance(outs[0], Labeled)
    noted = [r.getMessage() for r in caplog.records if r.name == "totask_manifest._models.params"]
    assert noted == [f"--params {params_file}: output_format 'coco' ignored: jobs write Ground Truth manifests "
                     "(convert them to COCO or YOLO afterwards with the formats converters)",
                     f"--params {params_file}: include_masks ignored: Ground Truth object-detection labels hold "
                     "no masks (use --task-type semantic-segmentation for per-pixel labels)"]


def test_remote_endpoint_protocol(tmp_path):
    """A model endpoint on 127.0.0.1: batched POSTs of image URLs, one prediction per image."""
    from aiohttp import web

    requests: list[dict] = []

    async def handler(request):
        body = await request.json()
        requests.append(body)
        preds = []
        for url in body["images"]:
            if url.endswith("bad.jpg"):
                preds.append({"error": "cannot open image"})
            else:
                preds.append({"boxes": [[1, 2, 11, 22], [0, 0, 5, 5]], "scores": [0.9, 0.2], "labels": [1, 0],
                              "image_size": {"width": 100, "height": 50}})
        return web.json_response({"predictions": preds, "class_names": ["cat", "dog"]})

    with LocalHTTPServer(handler) as server:
        records = [{"source-ref": f"s3://bucket/{i}.jpg"} for i in range(5)] + [{"source-ref": "s3://bucket/bad.jpg"}]
        outs = run(tmp_path, "object-detection", {"model": server.url("predict"), "batch_size": 4}, records)
    # two batches, sent concurrently (so in either order)
    assert sorted((r["images"] for r in requests), key=len) == [
        ["s3://bucket/4.jpg", "s3://bucket/bad.jpg"], [f"s3://bucket/{i}.jpg" for i in range(4)]]
    assert requests[0]["params"]["confidence_threshold"] is None
    assert requests[0]["params"]["task_type"] == "object-detection"
    for out in outs[:5]:
        assert out.value == {"image_size": [{"width": 100, "height": 50, "depth": 3}],
                             "annotations": [{"class_id": 1, "left": 1, "top": 2, "width": 10, "height": 20}]}
        assert out.metadata["class-map"] == {"1": "dog"}
    assert isinstance(outs[5], Failed) and "cannot open image" in outs[5].reason


def test_a_reversed_box_fails_its_line_only(tmp_path):
    """An endpoint answering one image with x2 < x1: that line fails (model-error, the box named);
    the box used to be turned around and written as a box the model never drew."""
    from aiohttp import web

    async def handler(request):
        body = await request.json()
        preds = [{"boxes": [[1, 2, 11, 22]] if not url.endswith("1.jpg") else [[1, 2, 11, 22], [40, 2, 30, 22]],
                  "scores": [0.9] * (1 + url.endswith("1.jpg")), "labels": [0] * (1 + url.endswith("1.jpg")),
                  "image_size": {"width": 100, "height": 50}} for url in body["images"]]
        return web.json_response({"predictions": preds, "class_names": ["cat"]})

    with LocalHTTPServer(handler) as server:
        records = [{"source-ref": f"s3://bucket/{i}.jpg"} for i in range(3)]
        outs = run(tmp_path, "object-detection", {"model": server.url("predict"), "batch_size": 4}, records)
    assert [type(o).__name__ for o in outs] == ["Labeled", "Failed", "Labeled"]
    assert outs[1].reason.startswith("model: boxes[1] is [40, 2, 30, 22] (x1 y1 x2 y2), so x2 < x1: ")
    assert outs[1].rule == "model-error"
    assert outs[0].value["annotations"] == [{"class_id": 0, "top": 2, "left": 1, "height": 20, "width": 10}]


def test_remote_endpoint_errors_fail_lines_with_reason(tmp_path):
    from aiohttp import web

    async def handler(request):
        return web.json_response({"predictions": []})

    with LocalHTTPServer(handler) as server:
        names = tmp_path / "n.txt"
        names.write_text("a\nb\n")
        outs = run(tmp_path, "image-classification",
                   {"model": server.url("p"), "class_names": str(names)}, [{"source-ref": "s3://b/x.jpg"}])
    assert isinstance(outs[0], Failed) and "0 predictions for 1 image" in outs[0].reason


def test_decode_resizes_jpeg_with_draft(tmp_path):
    from totask_manifest._annotators.inference_images import decode_image

    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(buf, format="JPEG")
    img = decode_image(buf.getvalue(), (60, 80))
    assert img.pixels.shape == (60, 80, 3)
    assert (img.width, img.height, img.depth) == (640, 480, 3)
    assert abs(int(img.pixels[30, 40, 1]) - 200) < 6


def test_options_are_checked_before_the_job(tmp_path, detector):
    from totask_manifest._annotators.inference import InferenceAnnotator as A

    ok = {"model": str(detector)}
    A.check(A.Options.from_dict(ok), "object-detection")
    cases = [
        ({"model": None}, "needs --model"),
        ({"model": str(tmp_path / "none.pt")}, "no such file"),
        ({**ok, "params": {"confidence_threshold": 2}}, "confidence_threshold must be between 0 and 1"),
        ({**ok, "params": {"model_config": {"device": "tpu"}}}, "model_config.device must be one of"),
        ({**ok, "params": {"nms": 0.5}}, "unknown parameter"),
        ({**ok, "params": {"output_format": 5}}, "output_format must be a format name"),
        ({**ok, "params": {"include_masks": "yes"}}, "include_masks must be true or false"),
        ({**ok, "review_below": 1.5}, "--review-below"),
        ({**ok, "weights": str(detector)}, "--weights applies to a module:factory"),
        ({"model": "synapse:12"}, "--method synapse-preprocessor"),
        ({**ok, "input_size": "abc"}, "--input-size"),
    ]
    for options, message in cases:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
            A.check(A.Options.from_dict(options), "object-detection")
    with pytest.raises(UsageError, match="cannot label task type 'text-span'"):
        A.check(A.Options.from_dict(ok), "text-span")
    # the model is loaded once on the CPU: a wrong file or missing class names fail before the job
    (tmp_path / "state.pt").write_bytes(b"PK not a model")
    with pytest.raises(UsageError, match="not a TorchScript file"):
        A.check(A.Options.from_dict({"model": str(tmp_path / "state.pt")}), "object-detection")
    anonymous = save_scripted(ColorSegmenter(), tmp_path / "anon.pt")
    with pytest.raises(UsageError, match="no class names"):
        A.check(A.Options.from_dict({"model": str(anonymous)}), "semantic-segmentation")
    with pytest.raises(UsageError, match="unknown class name 'purple'"):
        A.check(A.Options.from_dict({**ok, "params": {"class_filter": ["purple"]}}), "object-detection")


def test_flags_override_the_params_file_and_resolve_defaults():
    from totask_manifest._annotators.inference import effective_params

    options = {
        "params": {"confidence_threshold": 0.8, "post_processing": {"nms_threshold": 0.4, "min_size": 10},
                   "model_config": {"batch_size": 32, "device": "cuda", "use_fp16": True}},
        "confidence_threshold": 0.6, "batch_size": 8,
    }
    p = effective_params(options, "object-detection")
    assert p["confidence_threshold"] == 0.6
    assert p["nms_threshold"] == 0.4 and p["min_object_size"] == 10
    assert p["model_config"] == {"batch_size": 8, "device": "cuda", "use_fp16": True}
    assert p["max_objects"] == 100 and p["output_format"] == "groundtruth"
    assert orjson.loads(orjson.dumps(p)) == p


def test_remote_endpoint_without_image_size_and_with_probabilities(tmp_path):
    """Without ``image_size`` the job reads the image header itself (through the fetch layer);
    ``probabilities`` are accepted for softmax and sigmoid classifiers alike."""
    from aiohttp import web

    image = png(Image.new("RGB", (33, 21), (0, 0, 0)))

    async def handler(request):
        if request.method == "GET":
            return web.Response(body=image, content_type="image/png")
        body = await request.json()
        if body["params"]["task_type"] == "object-detection":
            preds = [{"boxes": [[2, 3, 12, 13]], "scores": [0.8], "labels": [0]} for _ in body["images"]]
        else:
            preds = [{"probabilities": [0.2, 0.7, 0.6]} for _ in body["images"]]
        return web.json_response({"predictions": preds, "class_names": ["a", "b", "c"]})

    with LocalHTTPServer(handler) as server:
        records = [{"source-ref": server.url("img.png")}]
        det = run(tmp_path, "object-detection", {"model": server.url("predict")}, records)
        single = run(tmp_path, "image-classification", {"model": server.url("predict")}, records)
        multi = run(tmp_path, "image-classification-multilabel", {"model": server.url("predict")}, records)
    assert det[0].value["image_size"] == [{"width": 33, "height": 21, "depth": 3}]
    assert det[0].value["annotations"] == [{"class_id": 0, "left": 2, "top": 3, "width": 10, "height": 10}]
    # softmax of log-probabilities renormalises them: 0.7 / 1.5
    assert single[0].value == 1 and single[0].metadata["confidence"] == round(0.7 / 1.5, 4)
    assert multi[0].value == [1, 2] and multi[0].metadata["confidence-map"] == {"1": 0.7, "2": 0.6}


def test_exif_orientation_is_not_applied_labels_are_in_the_stored_frame(tmp_path, detector):
    """A JPEG stored 30 wide and 40 high whose EXIF says 'rotate 90 degrees to display': the model
    gets the pixels as stored, and the box and image_size are written in that frame (docs/inference.md)."""
    stored = boxes_image(30, 40, [((5, 20, 14, 29), (230, 0, 0))])  # as stored: x 5..14, y 20..29
    exif = stored.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display (a phone held upright)
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=100, subsampling=0)
    assert Image.open(tmp_path / "rotated.jpg").getexif()[0x0112] == 6
    (out,) = run(tmp_path, "object-detection", {"model": str(detector)}, [{"source-ref": "rotated.jpg"}])
    assert isinstance(out, Labeled), out
    assert out.value["image_size"] == [{"width": 30, "height": 40, "depth": 3}]
    (box,) = out.value["annotations"]
    assert box["class_id"] == 0
    assert abs(box["left"] - 5) <= 1 and abs(box["top"] - 20) <= 1 and abs(box["width"] - 10) <= 2 and abs(box["height"] - 10) <= 2
