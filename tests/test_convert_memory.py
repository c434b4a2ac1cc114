"""What an export holds while it runs does not grow with the manifest, where the format lets it stream.

Measured with tracemalloc in a process of its own (a thread another test left running would count
in this one's window), on generated files of two sizes: the larger one's peak may not grow by more
than a small share of what holding every line cost (about 1.4 KB a box line for COCO).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO


def box_manifest(path: Path, lines: int) -> str:
    """``lines`` lines with two boxes each under ``boxes``, as a job writes them."""
    with path.open("wb") as f:
        for i in range(lines):
            value = {"image_size": [{"width": 640, "height": 480, "depth": 3}],
                     "annotations": [{"class_id": 0, "left": 10 + i % 50, "top": 20, "width": 30, "height": 40},
                                     {"class_id": 1, "left": 100, "top": 120, "width": 60, "height": 20}]}
            meta = {"objects": [{"confidence": 0.9}, {"confidence": 0.4}], "class-map": {"0": "cat", "1": "dog"},
                    "type": "groundtruth/object-detection", "human-annotated": "no",
                    "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/boxes"}
            f.write(orjson.dumps({"source-ref": f"s3://bucket/images/{i:08d}.jpg", "boxes": value,
                                  "boxes-metadata": meta}) + b"\n")
    return str(path)


_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._analytics.convert import convert
to, key = sys.argv[1], sys.argv[2]
convert(sys.argv[3], sys.argv[4], to=to)  # imports and compiles what the measured calls would count
out = []
for src, dst in zip(sys.argv[5::2], sys.argv[6::2]):
    tracemalloc.start()
    try:
        result = convert(src, dst, to=to)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([result.counts[key], peak])
print(orjson.dumps(out).decode())
"""


def peaks(tmp_path: Path, to: str, sizes: tuple[int, int], key: str = "images",
          suffix: str = ".json") -> list[tuple[int, int]]:
    """``(result.counts[key], tracemalloc's peak)`` of ``convert(..., to=to)`` over box manifests
    of each size, after one over a small file (the imports it makes are not counted)."""
    args = [box_manifest(tmp_path / "warm.manifest", 20), str(tmp_path / f"warm{suffix}")]
    for n in sizes:
        args += [box_manifest(tmp_path / f"in-{n}.manifest", n), str(tmp_path / f"out-{n}{suffix}")]
    done = subprocess.run([sys.executable, "-c", _PEAKS, to, key, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return [tuple(p) for p in orjson.loads(done.stdout)]


@pytest.mark.slow
def test_coco_export_memory_does_not_grow_with_the_manifest(tmp_path: Path) -> None:
    (small_images, small_peak), (large_images, large_peak) = peaks(tmp_path, "coco", (6_000, 24_000))
    assert (small_images, large_images) == (6_000, 24_000)
    # holding the document cost about 1.4 KB a line: 25 MB more for the 18,000 more lines
    assert large_peak - small_peak < 1 << 20, (small_peak, large_peak)
    doc = orjson.loads((tmp_path / "out-24000.json").read_bytes())
    assert [i["id"] for i in doc["images"]] == list(range(1, 24_001))
    assert [a["id"] for a in doc["annotations"]] == list(range(1, 48_001))
    assert doc["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def test_a_coco_export_stopped_part_way_leaves_no_file(tmp_path: Path) -> None:
    """Written as it is read, the document still appears whole or not at all: a class named
    otherwise on line 3 stops it after two images were written, and nothing is left."""
    from totask_manifest._analytics.convert import convert
    from totask_manifest._errors import ManifestError

    src = tmp_path / "in.manifest"
    box_manifest(src, 3)
    lines = src.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"0":"cat"', b'"0":"lynx"')
    src.write_bytes(b"".join(lines))
    with pytest.raises(ManifestError, match="category id 1 is 'lynx' here but 'cat'") as caught:
        convert(str(src), str(tmp_path / "out.json"), to="coco")
    assert caught.value.line == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


_YOLO_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._analytics.convert import convert
convert(sys.argv[1], sys.argv[2], to="yolo")  # imports and compiles what the measured calls would count
out = []
for src, dst in zip(sys.argv[3::2], sys.argv[4::2]):
    tracemalloc.start()
    try:
        result = convert(src, dst, to="yolo")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([result.counts["images"], peak])
print(orjson.dumps(out).decode())
"""


@pytest.mark.slow
def test_yolo_export_memory_holds_a_few_bytes_a_line(tmp_path: Path) -> None:
    """A YOLO folder is written in two reads of the manifest (the folder the images share, then
    the files); between them it holds a compact table of the label paths' hashes, not the paths
    (about 545 bytes a line were held: 6.5 MB more for 12,000 more lines)."""
    args = [box_manifest(tmp_path / "warm.manifest", 20), str(tmp_path / "warm")]
    for n in (4_000, 16_000):
        args += [box_manifest(tmp_path / f"in-{n}.manifest", n), str(tmp_path / f"out-{n}")]
    done = subprocess.run([sys.executable, "-c", _YOLO_PEAKS, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (small_images, small_peak), (large_images, large_peak) = orjson.loads(done.stdout)
    assert (small_images, large_images) == (4_000, 16_000)
    # 16 bytes a slot of the table of hashes, at most 64 a line of the larger file while it grows
    assert large_peak - small_peak < 16_000 * 64, (small_peak, large_peak)
    out = tmp_path / "out-16000"
    assert len(list((out / "labels").iterdir())) == 16_000
    assert (out / "labels" / "00000000.txt").read_text().splitlines()[0].startswith("0 ")


def test_yolo_label_paths_with_one_hash_are_told_apart_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every path hashed alike: different paths are all taken (the earlier line's path found again),
    the same path twice is refused naming both lines."""
    import hashlib

    from totask_manifest._analytics import yolo_paths
    from totask_manifest._errors import ManifestError

    class Same:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def digest(self) -> bytes:
            return b"\x01" * 8

    monkeypatch.setattr(yolo_paths, "hashlib", type("H", (), {"blake2b": Same}))
    assert hashlib.blake2b is not Same
    paths = {1: "labels/a.txt", 2: "labels/b.txt", 3: "labels/c.txt"}
    taken = yolo_paths.TakenPaths(paths.__getitem__)
    for number, label in paths.items():
        taken.take(label, "images/" + label[7:-4] + ".jpg", number)
    with pytest.raises(ManifestError, match=r"line 2 and this line label the same image \(b.jpg\)") as caught:
        taken.take("labels/b.txt", "images/b.jpg", 4)
    assert caught.value.line == 4 and caught.value.rule == "yolo-duplicate-image"
    with pytest.raises(ManifestError, match="line 1 and this line"):
        taken.take("labels/a.txt", "images/a.jpg", 5)


@pytest.mark.parametrize("to", ["dm-schema-v1", "synapse-objects"])
def test_task_data_export_is_written_as_it_is_read(tmp_path: Path, to: str) -> None:
    """The task data lines were gathered in a list before being written (about 560 bytes a line:
    1.3 GB peak RSS at 2,000,000 box lines); now the peak does not grow with the manifest."""
    (small_lines, small_peak), (large_lines, large_peak) = peaks(tmp_path, to, (8_000, 24_000), key="lines",
                                                                suffix=".jsonl")
    assert (small_lines, large_lines) == (8_000, 24_000)
    # holding the lines cost about 560 bytes each: 9 MB more for the 16,000 more lines
    assert large_peak - small_peak < 1 << 20, (small_peak, large_peak)
    lines = (tmp_path / "out-24000.jsonl").read_bytes().splitlines()
    assert [orjson.loads(raw)["line"] for raw in lines] == list(range(1, 24_001))


def test_a_task_data_export_with_nothing_labeled_writes_nothing(tmp_path: Path) -> None:
    from totask_manifest._analytics.convert import convert
    from totask_manifest._errors import ManifestError

    src = tmp_path / "in.manifest"
    src.write_bytes(b'{"source-ref":"s3://b/a.jpg"}\n{"source-ref":"s3://b/b.jpg"}\n')
    with pytest.raises(ManifestError):
        convert(str(src), str(tmp_path / "out" / "out.dm.jsonl"), to="dm-schema-v1", label_attribute="boxes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


_IMPORT_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._analytics.convert import convert
fmt, human = sys.argv[1], sys.argv[2] or None
opts = {"human_annotated": human} if human else {}
for src in sys.argv[3:]:
    convert(src, src + ".task", to=fmt)
convert(sys.argv[3] + ".task", sys.argv[3] + ".back", from_format=fmt, to="manifest", **opts)  # imports what is counted
out = []
for src in sys.argv[4:]:
    tracemalloc.start()
    try:
        result = convert(src + ".task", src + ".back", from_format=fmt, to="manifest", **opts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([result.counts["lines"], peak])
print(orjson.dumps(out).decode())
"""


@pytest.mark.parametrize(("fmt", "human"), [("dm-schema-v1", ""), ("synapse-objects", ""), ("dm-schema-v1", "yes")])
def test_task_data_import_is_written_as_it_is_read(tmp_path: Path, fmt: str, human: str) -> None:
    """The import gathered every line's label before writing (to choose human-annotated); now the
    peak does not grow with the file, whether it looks for a confidence first or is told."""
    args = [box_manifest(tmp_path / "warm.manifest", 20)]
    for n in (8_000, 24_000):
        args.append(box_manifest(tmp_path / f"in-{n}.manifest", n))
    done = subprocess.run([sys.executable, "-c", _IMPORT_PEAKS, fmt, human, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (small_lines, small_peak), (large_lines, large_peak) = orjson.loads(done.stdout)
    assert (small_lines, large_lines) == (8_000, 24_000)
    assert large_peak - small_peak < 1 << 20, (small_peak, large_peak)
    lines = (tmp_path / "in-24000.manifest.back").read_bytes().splitlines()
    assert len(lines) == 24_000
    first = orjson.loads(lines[0])
    assert first["source-ref"] == "s3://bucket/images/00000000.jpg"
    assert first["label-metadata"]["human-annotated"] == (human or "no")  # the boxes carry confidences


def test_parquet_row_groups_end_by_bytes_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row group's rows are Python objects until it is written: 50,000 lines of 50 boxes each
    held 1.1 GB. A group now also ends once its lines hold ``GROUP_BYTES``."""
    import pyarrow.parquet as pq

    from totask_manifest._analytics import parquet_io
    from totask_manifest._analytics.convert import convert

    src = box_manifest(tmp_path / "in.manifest", 400)
    line_bytes = len(Path(src).read_bytes()) // 400
    monkeypatch.setattr(parquet_io, "GROUP_BYTES", 50 * line_bytes, raising=False)
    convert(src, str(tmp_path / "out.parquet"), to="parquet")
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert meta.num_rows == 400
    assert meta.num_row_groups >= 7
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 51
    convert(str(tmp_path / "out.parquet"), str(tmp_path / "back.manifest"), to="manifest")
    assert (tmp_path / "back.manifest").read_bytes() == Path(src).read_bytes()
