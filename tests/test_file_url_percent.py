"""A ``file://`` URL's path is percent-decoded (RFC 8089 paths are RFC 3986 ones), as
``Path.as_uri()`` writes ``my data`` as ``my%20data``: such a URL was read, and checked against
``--allow-root``, as a folder named ``my%20data``, so ``validate file:///.../in%20put.manifest``
said "no such file" and a file-method job failed every line ``outside-allow-root``. A plain path
is its name as it is: a literal ``%20`` in it stays."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from tests.jobs_helpers import REPO
from totask_manifest._cli import main

SAMPLE = REPO / "sample_data"


def _spaced_job_input(tmp_path: Path) -> tuple[Path, Path]:
    """Three sample lines whose ``source-ref`` and ``annotation-ref`` are ``file://`` URLs of an
    image and a label file in ``my data/`` (``ann 0.json``), written by ``Path.as_uri()``; the
    manifest and that folder."""
    folder = tmp_path / "my data"
    folder.mkdir()
    rows = []
    for i in range(3):
        label = folder / f"ann {i}.json"
        shutil.copy(SAMPLE / "annotations" / f"img_00{i}.json", label)
        image = folder / f"img {i}.jpg"
        shutil.copy(SAMPLE / "images" / f"img_00{i}.jpg", image)
        rows.append(orjson.dumps({"source-ref": image.as_uri(), "annotation-ref": label.as_uri()}))
    manifest = folder / "in put.manifest"
    manifest.write_bytes(b"\n".join(rows) + b"\n")
    return manifest, folder


def test_a_percent_encoded_file_url_is_read_and_allowed_under_its_decoded_root(tmp_path: Path, capsys) -> None:
    manifest, folder = _spaced_job_input(tmp_path)
    assert "%20" in manifest.as_uri()
    assert main(["annotate", manifest.as_uri(), "--job-name", "sp", "--label-attribute", "boxes",
                 "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                 "--class-names", str(SAMPLE / "class_names.txt"), "--native", "convert",
                 "--allow-root", str(folder), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "success=3 failed=0" in out, out
    assert "outside-allow-root" not in out


def test_validate_reads_a_percent_encoded_file_url(tmp_path: Path, capsys) -> None:
    manifest, _folder = _spaced_job_input(tmp_path)
    assert main(["validate", manifest.as_uri()]) == 0, capsys.readouterr().err
    assert "valid: 3 lines" in capsys.readouterr().out


def test_a_plain_path_keeps_a_literal_percent_in_its_name(tmp_path: Path, capsys) -> None:
    manifest, _folder = _spaced_job_input(tmp_path)
    literal = tmp_path / "a%20b.manifest"  # a file whose name holds "%20", not a space
    shutil.copy(manifest, literal)
    assert main(["validate", str(literal)]) == 0, capsys.readouterr().err
    # as a URL, its "%" is written %25, and decoded once only
    assert main(["validate", literal.as_uri()]) == 0, capsys.readouterr().err
    assert "%2520" in literal.as_uri()


def test_a_file_url_decoding_to_a_nul_byte_is_one_line_refused(tmp_path: Path, capsys) -> None:
    """``%00`` decodes to a NUL byte, on which ``open`` raises ``ValueError``: ``validate`` gave a
    traceback (before the decoding, ``%00`` was a name's three characters: "no such file")."""
    url = (tmp_path / "a").as_uri() + "%00b.manifest"
    assert main(["validate", url]) == 2
    err = capsys.readouterr().err
    assert "%00" in err and "NUL byte" in err and len(err.strip().splitlines()) == 1, err


def test_a_data_item_path_holding_a_nul_byte_fails_its_line_refused_by_policy(tmp_path: Path, capsys) -> None:
    """A label file's ``file://`` URL with ``%00``, or a path with ``\\u0000``: its line fails
    ``refused-by-policy``, the third line is labeled (it failed as an ``internal-error``, a
    ``ValueError`` of ``realpath``)."""
    manifest, folder = _spaced_job_input(tmp_path)
    rows = [orjson.loads(line) for line in manifest.read_bytes().splitlines()]
    rows[0]["annotation-ref"] = rows[0]["annotation-ref"].replace("ann%200", "ann%00")
    rows[1]["annotation-ref"] = str(folder / "ann\x001.json")
    manifest.write_bytes(b"\n".join(map(orjson.dumps, rows)) + b"\n")
    assert main(["annotate", str(manifest), "--job-name", "nul", "--label-attribute", "boxes",
                 "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                 "--class-names", str(SAMPLE / "class_names.txt"), "--native", "convert",
                 "--allow-root", str(folder), "--output", str(tmp_path / "out")]) == 0
    assert "success=1 failed=2" in capsys.readouterr().out
    failures = [orjson.loads(line) for line in (tmp_path / "out" / "nul" / "failures.jsonl").read_bytes().splitlines()]
    assert [(f["line"], f["rule"]) for f in failures] == [(1, "refused-by-policy"), (2, "refused-by-policy")]
    assert all("NUL byte" in f["reason"] for f in failures), failures
