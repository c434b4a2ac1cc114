"""A file of another kind given as a manifest (an image of the data set, a PDF, an archive,
columnar data): ``validate`` and ``stats`` of a JPEG said "21 lines that are not a JSON object",
with no word of what the file was. Every reader refuses it before any line is read, in one line
naming what it is, rule ``input-not-text``, exit 1, nothing written. The files are made by the
libraries that write them (Pillow, zipfile, lzma, bz2, pyarrow), not typed in."""

from __future__ import annotations

import bz2
import io
import lzma
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.test_user_mistakes import cli, one_line_error
from totask_manifest._errors import ManifestError
from totask_manifest._manifest.file_kind import _SIGNATURES

LINES = b"".join(b'{"source-ref":"s3://b/%d.jpg"}\n' % i for i in range(200))


def _image(fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(out, format=fmt)
    return out.getvalue()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("in.manifest", LINES)
    return out.getvalue()


def _parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"source-ref": ["s3://b/a.jpg"]}), out)
    return out.getvalue()


KINDS: dict[str, tuple[Callable[[], bytes], str]] = {
    "jpeg": (lambda: _image("JPEG"), "a JPEG image"),
    "png": (lambda: _image("PNG"), "a PNG image"),
    "gif": (lambda: _image("GIF"), "a GIF image"),
    "tiff": (lambda: _image("TIFF"), "a TIFF image"),
    "webp": (lambda: _image("WEBP"), "a WebP image"),
    "pdf": (lambda: _image("PDF"), "a PDF document"),
    "zip": (_zip, "a ZIP archive"),
    "xz": (lambda: lzma.compress(LINES), "xz-compressed data"),
    "bzip2": (lambda: bz2.compress(LINES), "bzip2-compressed data"),
    "parquet": (_parquet, "a Parquet file"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_file_of_another_kind_is_refused_by_the_library(tmp_path: Path, kind: str) -> None:
    from totask_manifest import JobConfig, annotate, evaluate_manifest, manifest_stats, validate_manifest

    make, what = KINDS[kind]
    src = tmp_path / f"data.{kind}"
    src.write_bytes(make())
    for call in (lambda: validate_manifest(str(src)), lambda: manifest_stats(str(src)),
                 lambda: evaluate_manifest(str(src)),
                 lambda: annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"),
                                            label_attribute="boxes", task_type="object-detection", method="file",
                                            options={"url_key": "annotation-ref"}))):
        with pytest.raises(ManifestError) as err:
            call()
        assert err.value.rule == "input-not-text"
        assert str(err.value).startswith(f"{src} is {what}"), str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["validate", "stats"])
def test_an_image_given_to_the_cli_is_named_in_one_line(tmp_path: Path, command: str) -> None:
    (tmp_path / "img_000.jpg").write_bytes(_image("JPEG"))
    r = cli(command, "img_000.jpg", cwd=tmp_path)
    assert r.returncode == 1
    assert one_line_error(r, command) == (
        f"totask-manifest {command}: error: img_000.jpg is a JPEG image, not a manifest (JSON Lines text, one JSON "
        "object a line): give the manifest that lists it [input-not-text]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img_000.jpg"]


def test_no_signature_can_start_a_json_line() -> None:
    """A manifest's first bytes are ``{``, white space or a byte order mark: no signature's bytes
    at offset 0 start so, so no manifest is taken for another kind of file."""
    for what, parts in _SIGNATURES:
        (offset, first), *_ = parts
        assert offset == 0 and first[:1] not in (b"{", b" ", b"\t", b"\r", b"\n", b"\xef"), what
