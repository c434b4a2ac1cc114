"""A file job whose lines each name one COCO file of several images (a dataset-wide instances.json).

Every line failed with "document holds 2 images; pass image_id [format-coco]": ``image_id`` is a
Python keyword no CLI user can give. Each line now takes the image whose ``file_name`` names its
``source-ref`` (``formats.coco_by_name``), the document read once a job however many lines name
it (``annotators.file_shared``). Real files, a real HTTP server, the real CLI in process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer
from totask_manifest._annotators.file_shared import TRANSIENT_READS
from totask_manifest._cli import main
from totask_manifest._formats.coco_by_name import path_parts

CATS = [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}]


def image(image_id: int, file_name: str) -> dict:
    return {"id": image_id, "file_name": file_name, "width": 160, "height": 120}


def box(ann_id: int, image_id: int, left: int, category_id: int = 1) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [left, 10, 20, 30],
            "area": 600, "iscrowd": 0}


def instances(images: list[dict], annotations: list[dict]) -> bytes:
    return orjson.dumps({"images": images, "annotations": annotations, "categories": CATS})


def write_manifest(folder: Path, sources: list[str], ref: str) -> Path:
    manifest = folder / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": s, "annotation-ref": ref}) + b"\n" for s in sources))
    return manifest


def annotate(manifest: Path, out: Path, *extra: str) -> tuple[int, list[dict]]:
    """The exit code of a file job over ``manifest`` and its output lines, in input order."""
    code = main(["annotate", str(manifest), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                 "object-detection", "--method", "file", "--url-key", "annotation-ref", "--output", str(out),
                 *extra])
    output = out / "j" / "manifests" / "output" / "output.manifest"
    return code, [orjson.loads(line) for line in output.read_bytes().splitlines()]


def lefts(line: dict) -> list[int]:
    assert "boxes" in line, line["boxes-metadata"]
    return [a["left"] for a in line["boxes"]["annotations"]]


def reason(line: dict) -> str:
    return line["boxes-metadata"]["failure-reason"]


def test_each_line_takes_the_image_its_source_ref_names(tmp_path: Path) -> None:
    """Matched by the file name's path parts against the end of the source's path: a folder in
    the file name tells two images of one name apart; no image of the name fails that line alone."""
    images = [image(1, "a.jpg"), image(2, "train/b.jpg"), image(3, "val/b.jpg")]
    anns = [box(1, 1, 5), box(2, 2, 6), box(3, 3, 7), box(4, 1, 8, category_id=2)]
    (tmp_path / "instances.json").write_bytes(instances(images, anns))
    manifest = write_manifest(tmp_path, ["images/a.jpg", "/data/val/b.jpg", "s3://bucket/x/train/b.jpg",
                                         "images/c.jpg"], "instances.json")
    code, lines = annotate(manifest, tmp_path / "out", "--allow-root", str(tmp_path))
    assert code == 0
    assert [lefts(line) for line in lines[:3]] == [[5, 8], [7], [6]]
    assert lines[0]["boxes-metadata"]["class-map"] == {"0": "circle", "1": "square"}
    assert "none has the file_name 'c.jpg'" in reason(lines[3]) and "image_id" not in reason(lines[3])


def test_two_images_of_the_name_are_refused_not_one_taken(tmp_path: Path) -> None:
    images = [image(1, "a.jpg"), image(2, "b.jpg"), image(3, "other/a.jpg")]
    (tmp_path / "instances.json").write_bytes(instances(images, [box(1, 1, 5), box(2, 3, 6)]))
    manifest = write_manifest(tmp_path, ["other/a.jpg", "b.jpg"], "instances.json")
    code, lines = annotate(manifest, tmp_path / "out", "--allow-root", str(tmp_path))
    assert code == 0
    said = reason(lines[0])
    assert "images[0] and images[2] both have a file_name naming the line's source-ref" in said, said
    assert "'a.jpg', 'other/a.jpg'" in said and "[format-coco]" in said
    assert lefts(lines[1]) == []


@pytest.fixture
def instances_server():
    """Serves one document, ``server.body``, at ``/instances.json`` (and counts its GETs), with the
    status ``server.statuses`` holds for that GET (the first, the second...; 200 past its end)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        served = server.hits[request.path]
        status = server.statuses[served - 1] if served <= len(server.statuses) else 200
        return web.Response(body=server.body, status=status, content_type="application/json")

    with LocalHTTPServer(handler) as server:
        server.statuses = []
        yield server


def test_the_document_is_read_once_for_every_line_that_names_it(tmp_path: Path, instances_server) -> None:
    """60 lines, 16 in flight: one GET, where each line fetched and parsed its own copy."""
    names = [f"img_{n:03d}.jpg" for n in range(60)]
    instances_server.body = instances([image(n + 1, name) for n, name in enumerate(names)],
                                                   [box(n + 1, n + 1, n) for n in range(60)])
    manifest = write_manifest(tmp_path, [f"https://images.example/{name}?X-Amz-Signature=s" for name in names],
                              instances_server.url("instances.json"))
    code, lines = annotate(manifest, tmp_path / "out", "--concurrency", "16")
    assert code == 0
    assert [lefts(line) for line in lines] == [[n] for n in range(60)]
    assert instances_server.hits["/instances.json"] == 1


def test_a_fault_of_the_whole_document_fails_each_line_reading_it_once(tmp_path: Path, instances_server) -> None:
    """Two images of one id: which one an annotation is of is unsaid, whichever line asks."""
    instances_server.body = instances([image(1, "a.jpg"), image(1, "b.jpg")], [box(1, 1, 5)])
    manifest = write_manifest(tmp_path, ["a.jpg", "b.jpg"] * 20, instances_server.url("instances.json"))
    code, lines = annotate(manifest, tmp_path / "out", "--concurrency", "4")
    assert code == 1  # no line labeled: the job FAILED
    assert {reason(line) for line in lines} == {
        "format: key 'images[1].id': image id 1 is also images[0]'s; one id names one image [format-coco]"}
    assert instances_server.hits["/instances.json"] == 1


def test_a_document_of_one_image_stays_the_lines_whatever_its_file_name(tmp_path: Path) -> None:
    """The documented rule for a one-image file: it is the line's own (per-image files named
    otherwise than their images, such as by task id, kept working)."""
    (tmp_path / "one.json").write_bytes(instances([image(1, "zzz.jpg")], [box(1, 1, 9)]))
    manifest = write_manifest(tmp_path, ["images/img_002.jpg"], "one.json")
    code, lines = annotate(manifest, tmp_path / "out", "--allow-root", str(tmp_path))
    assert code == 0 and lefts(lines[0]) == [9]


@pytest.mark.parametrize(("path", "parts"), [
    ("img.jpg", ("img.jpg",)),
    ("./train//img.jpg", ("train", "img.jpg")),
    ("https://h.example/a/my%20img.jpg?X-Amz-Signature=s#f", ("a", "my img.jpg")),
    ("s3://bucket/a/my%20img.jpg", ("a", "my%20img.jpg")),  # an object key is as written
    ("file:///data/my%20img.jpg", ("data", "my img.jpg")),  # RFC 8089: a path percent-encoded
    ("/data/my%20img.jpg", ("data", "my%20img.jpg")),  # a plain path is as written
])
def test_path_parts(path: str, parts: tuple[str, ...]) -> None:
    assert path_parts(path) == parts


def test_a_windows_file_name_matches_and_images_without_one_are_counted(tmp_path: Path) -> None:
    """A ``file_name`` written on Windows (``train\\b.jpg``) never matched a source's path, and an
    image without a ``file_name`` (null, absent) was left out of the index without a word: a line
    that found no image was not told why it might be. The backslashes are folders now; the images
    without a name are counted in the failure."""
    images = [image(1, "train\\b.jpg"), {**image(2, "x"), "file_name": None}, {"id": 3, "width": 9, "height": 9}]
    (tmp_path / "instances.json").write_bytes(instances(images, [box(1, 1, 5), box(2, 2, 6)]))
    manifest = write_manifest(tmp_path, ["s3://bucket/train/b.jpg", "images/c.jpg"], "instances.json")
    code, lines = annotate(manifest, tmp_path / "out", "--allow-root", str(tmp_path))
    assert code == 0 and lefts(lines[0]) == [5]
    assert "none has the file_name 'c.jpg' (the line's source-ref, by its last path parts); 2 of them have no " \
           "file_name to match" in reason(lines[1]), reason(lines[1])
    assert path_parts("train\\b.jpg", file_name=True) == ("train", "b.jpg")
    assert path_parts("s3://bucket/a\\b.jpg") == ("a\\b.jpg",)  # a source's object key is as written


def test_a_file_url_is_percent_decoded_as_an_http_one(tmp_path: Path, instances_server) -> None:
    """``file:///data/my%20image.jpg`` (as ``Path.as_uri()`` writes ``my image.jpg``) found no
    image: only an http(s) URL's path was decoded. Both are now, a plain path and an object key not."""
    images = [image(1, "my image.jpg"), image(2, "other image.jpg"), image(3, "plain%20name.jpg")]
    (tmp_path / "instances.json").write_bytes(instances(images, [box(1, 1, 5), box(2, 2, 6), box(3, 3, 7)]))
    local = tmp_path / "data" / "my image.jpg"
    local.parent.mkdir()
    local.write_bytes(b"")
    assert local.as_uri().endswith("/data/my%20image.jpg")
    manifest = write_manifest(tmp_path, [local.as_uri(), instances_server.url("imgs/other%20image.jpg"),
                                         "/data/plain%20name.jpg"], "instances.json")
    code, lines = annotate(manifest, tmp_path / "out", "--allow-root", str(tmp_path))
    assert code == 0
    assert [lefts(line) for line in lines] == [[5], [6], [7]]


def fetched_by_every_line(tmp_path: Path, server, *extra: str, lines: int = 40) -> tuple[int, list[dict]]:
    """A job of ``lines`` lines naming the server's ``instances.json``, four in flight, no retries."""
    manifest = write_manifest(tmp_path, [f"img_{n:03d}.jpg" for n in range(lines)], server.url("instances.json"))
    return annotate(manifest, tmp_path / "out", "--concurrency", "4", "--retries", "0", *extra)


@pytest.mark.parametrize(("statuses", "body", "extra", "said", "rule"), [
    ([404], b"gone", (), "fetch: HTTP 404", "http-404"),
    ([410], b"gone", (), "fetch: HTTP 410", "http-410"),
    ([], b"x" * 2048, ("--max-body-bytes", "1024"), "fetch: too large", "too-large"),
    ([], b"<html>not json</html>", (), "is not valid JSON", "not-json"),
    ([], b'{"info": {}}', ("--input-format", "coco"), "document needs an 'images' list", "format-invalid"),
    ([], b"", (), "empty annotation file", "empty-annotation-file"),  # read whole, and no document: fetched a line
    ([], b"\xef\xbb\xbf \n", (), "empty annotation file", "empty-annotation-file"),
])
def test_a_lasting_failure_of_the_document_is_read_once_a_job(tmp_path: Path, instances_server, statuses: list[int],
                                                               body: bytes, extra: tuple[str, ...], said: str,
                                                               rule: str) -> None:
    """A failure any read would meet again was handed only to the lines waiting for that read: each
    later line fetched (and parsed) the document once more, 100,000 GETs for 100,000 lines naming a
    missing instances.json. It is remembered now: every line fails with the first one's reason."""
    instances_server.statuses, instances_server.body = statuses * 100, body
    code, lines = fetched_by_every_line(tmp_path, instances_server, *extra)
    assert code == 1  # no line labeled: the job FAILED
    assert len({reason(line) for line in lines}) == 1 and said in reason(lines[0]), reason(lines[0])
    assert {line["boxes-metadata"]["failure-rule"] for line in lines} == {rule}
    assert instances_server.hits["/instances.json"] == 1


def test_a_retried_failure_is_read_again_a_few_times_then_remembered(tmp_path: Path, instances_server) -> None:
    """A 503 the fetcher already tried again may pass for a later line: read again, but only until
    ``TRANSIENT_READS`` reads in a row failed so (a server down for good cost that many reads)."""
    instances_server.statuses, instances_server.body = [503] * 100, b"{}"
    code, lines = fetched_by_every_line(tmp_path, instances_server)
    assert code == 1
    assert {line["boxes-metadata"]["failure-rule"] for line in lines} == {"http-503"}
    assert instances_server.hits["/instances.json"] == TRANSIENT_READS


def test_a_retried_failure_does_not_fail_the_lines_after_a_read_that_worked(tmp_path: Path, instances_server) -> None:
    """One 503 then the document: the lines that met the 503 fail, the later ones are labeled."""
    names = [f"img_{n:03d}.jpg" for n in range(40)]
    instances_server.statuses = [503]
    instances_server.body = instances([image(n + 1, name) for n, name in enumerate(names)],
                                      [box(n + 1, n + 1, n) for n in range(40)])
    code, lines = fetched_by_every_line(tmp_path, instances_server)
    assert code == 0
    failed = [line for line in lines if "boxes" not in line]
    assert 1 <= len(failed) <= 5 and {line["boxes-metadata"]["failure-rule"] for line in failed} == {"http-503"}
    assert [lefts(line) for line in lines[len(failed):]] == [[n] for n in range(len(failed), 40)]
    assert instances_server.hits["/instances.json"] == 2
