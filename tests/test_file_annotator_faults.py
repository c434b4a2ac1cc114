"""The file annotator against a misbehaving world: a real server on 127.0.0.1 that answers 500,
429 with Retry-After, stalls past the timeout, cuts bodies short, sends invalid JSON on a fifth
of requests and oversize bodies, all decided by URL; local files outside the root; and S3
through moto's server mode. Every item must end Labeled or Failed with a reason, exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer, cut_short, stream_chunks
from totask_manifest import _api as api
from totask_manifest._annotators.base import Failed, Item, Labeled
from totask_manifest._annotators.file import FileAnnotator
from totask_manifest._jobs.config import JobConfig
from totask_manifest.testing.runs import job_run

N = 200
TIMEOUT = 1.0
RETRIES = 2  # three attempts in all
LIMIT = 10_000


def label_doc(i: int) -> bytes:
    return json.dumps({"label": i % 4, "metadata": {"class-name": f"class-{i % 4}", "confidence": 0.5}}).encode()


#: i % 20 -> (fault, attempts the server should see, expected outcome)
PLAN = {
    0: ("500 twice", 3, "labeled"),
    1: ("429 once with Retry-After", 2, "labeled"),
    2: ("stall once", 2, "labeled"),
    3: ("cut short once", 2, "labeled"),
    5: ("500 always", 3, "HTTP 500"),
    6: ("stall always", 3, "timed out after 1 s"),
    7: ("cut short always", 3, "body cut short"),
    8: ("oversize", 1, "too large"),
    10: ("404", 1, "HTTP 404"),
}


def expected(i: int) -> tuple[int, str]:
    if i % 5 == 4:
        return 1, "not valid JSON"
    _fault, attempts, outcome = PLAN.get(i % 20, ("none", 1, "labeled"))
    return attempts, outcome


@pytest.fixture(scope="module")
def faulty_server():
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        i = int(name.split(".")[0])
        hit = server.hits[request.path]
        body = label_doc(i)
        if i % 5 == 4:
            return web.Response(body=body[: len(body) // 2] + b"}}", content_type="application/json")
        kind = i % 20
        if (kind == 0 and hit <= 2) or kind == 5:
            return web.Response(status=500, text="boom")
        if kind == 1 and hit == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if (kind == 2 and hit == 1) or kind == 6:
            await asyncio.sleep(TIMEOUT * 10)
        if (kind == 3 and hit == 1) or kind == 7:
            return await cut_short(request, body[:10])
        if kind == 8:
            return await stream_chunks(request, b" " * 4096, 5)
        if kind == 10:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/json")

    with LocalHTTPServer(handler) as server:
        yield server


def options(**extra) -> dict:
    return {"url_key": "u", "timeout": TIMEOUT, "retries": RETRIES, "max_body_bytes": LIMIT, "native": "convert",
            **extra}


@pytest.mark.slow
def test_every_item_ends_once_with_the_right_outcome(faulty_server):
    faulty_server.hits.clear()
    items = [Item(i, i + 1, {"source-ref": f"s3://b/{i}.jpg", "u": faulty_server.url(f"doc/{i}.json")})
             for i in range(N)]
    context = job_run("faults", "cls", "image-classification", options(concurrency=16))
    with FileAnnotator(context) as annotator:
        pairs = list(annotator.annotate(iter(items)))
    seen = [item.index for item, _ in pairs]
    assert sorted(seen) == list(range(N))  # none lost, none duplicated
    for item, outcome in pairs:
        i = item.index
        attempts, want = expected(i)
        assert faulty_server.hits[f"/doc/{i}.json"] == attempts, (i, want)
        if want == "labeled":
            assert isinstance(outcome, Labeled), (i, outcome)
            assert outcome.value == i % 4 and outcome.metadata["class-name"] == f"class-{i % 4}"
        else:
            assert isinstance(outcome, Failed), (i, outcome)
            assert want in outcome.reason, (i, outcome.reason)
            assert outcome.reason.startswith(("fetch: ", "parse: "))
    reasons = {item.index: o.reason for item, o in pairs if isinstance(o, Failed)}
    assert "3 attempts" in reasons[5] and "3 attempts" in reasons[6]
    assert f"limit of {LIMIT:,} bytes" in reasons[8]


@pytest.mark.slow
def test_a_job_over_the_faulty_server_writes_every_line_once(faulty_server, tmp_path):
    faulty_server.hits.clear()
    manifest = tmp_path / "in.manifest"
    manifest.write_text("".join(
        json.dumps({"source-ref": f"s3://b/{i}.jpg", "u": faulty_server.url(f"doc/{i}.json")}) + "\n"
        for i in range(60)
    ))
    config = JobConfig(job_name="faults", input=str(manifest), output_root=str(tmp_path / "out"),
                       label_attribute="cls", task_type="image-classification", method="file",
                       options=options(concurrency=8), checkpoint_every=7)
    result = api.annotate(config)
    out = [orjson.loads(x) for x in Path(result.output_manifest).read_bytes().splitlines()]
    assert [r["source-ref"] for r in out] == [f"s3://b/{i}.jpg" for i in range(60)]
    for i, record in enumerate(out):
        _attempts, want = expected(i)
        meta = record["cls-metadata"]
        if want == "labeled":
            assert record["cls"] == i % 4 and "failure-reason" not in meta
        else:
            assert "cls" not in record and want in meta["failure-reason"]
    assert result.metrics["failed"] == sum(expected(i)[1] != "labeled" for i in range(60))


def test_local_files_outside_the_root_and_oversize_files_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.json").write_bytes(label_doc(1))
    (root / "big.json").write_bytes(b" " * (LIMIT + 1) + label_doc(1))
    (tmp_path / "outside.json").write_bytes(label_doc(2))
    os.symlink(tmp_path / "outside.json", root / "link.json")
    records = [
        {"source-ref": "x", "u": "ok.json"},
        {"source-ref": "x", "u": f"file://{tmp_path}/outside.json"},
        {"source-ref": "x", "u": "../outside.json"},
        {"source-ref": "x", "u": "link.json"},
        {"source-ref": "x", "u": "big.json"},
        {"source-ref": "x", "u": "/etc/hostname"},
    ]
    items = [Item(i, i + 1, r) for i, r in enumerate(records)]
    context = job_run("j", "cls", "image-classification",
                               options(allow_root=str(root), relative_to=str(root)))
    with FileAnnotator(context) as annotator:
        out = dict((item.index, o) for item, o in annotator.annotate(items))
    assert isinstance(out[0], Labeled) and out[0].value == 1
    for i in (1, 2, 3, 5):
        assert isinstance(out[i], Failed) and "outside the allowed root" in out[i].reason, out[i]
    assert isinstance(out[4], Failed) and out[4].reason.startswith("fetch: too large")


# ---------------------------------------------------------------- S3 through moto's server mode


@pytest.mark.slow
def test_s3_labels_and_images_through_moto(s3, tmp_path):
    from PIL import Image

    bucket = s3.new_bucket("labels").removeprefix("s3://")
    fs = s3.filesystem()
    objects = {"objects": [{"type": "bbox", "class_id": 1, "coordinates": {"x": 2, "y": 3, "width": 4, "height": 5},
                            "properties": {"label": "dog", "confidence": 0.8}}]}
    fs.pipe(f"{bucket}/run/a.json", json.dumps(objects).encode())
    fs.pipe(f"{bucket}/run/big.json", b" " * (LIMIT + 1))
    png = tmp_path / "img.png"
    Image.new("RGB", (40, 30)).save(png)
    fs.pipe(f"{bucket}/run/img.png", png.read_bytes())
    records = [
        {"source-ref": f"s3://{bucket}/run/img.png", "u": f"s3://{bucket}/run/a.json"},
        {"source-ref": "img.png", "u": "a.json"},  # relative to the manifest's S3 folder
        {"source-ref": "img.png", "u": "missing.json"},
        {"source-ref": "img.png", "u": "big.json"},
    ]
    items = [Item(i, i + 1, r) for i, r in enumerate(records)]
    context = job_run("s3job", "boxes", "object-detection",
                               options(relative_to=f"s3://{bucket}/run", allow_hosts=[bucket]))
    with FileAnnotator(context) as annotator:
        out = dict((item.index, o) for item, o in annotator.annotate(items))
    for i in (0, 1):
        assert isinstance(out[i], Labeled), out[i]
        assert out[i].value == {"image_size": [{"width": 40, "height": 30, "depth": 3}],
                                "annotations": [{"class_id": 1, "left": 2, "top": 3, "width": 4, "height": 5}]}
        assert out[i].metadata == {"objects": [{"confidence": 0.8}], "class-map": {"1": "dog"}}
    assert isinstance(out[2], Failed) and out[2].reason.startswith(f"fetch: no such object (s3://{bucket}/run/")
    assert isinstance(out[3], Failed) and out[3].reason.startswith("fetch: too large")
    # the host allow-list applies to buckets too
    context = job_run("s3job", "boxes", "object-detection", options(allow_hosts=["another-bucket"]))
    with FileAnnotator(context) as annotator:
        ((_, outcome),) = list(annotator.annotate([items[0]]))
    assert isinstance(outcome, Failed) and "not in --allow-host" in outcome.reason
