"""What a file given as a manifest is when it is not UTF-8 JSON Lines, told from its first bytes:
gzip, another encoding (UTF-16 or UTF-32, by its byte order mark), or another kind of file
altogether (an image, a PDF, an archive). Each is refused in one line before any line is read:
read as it is, every line of it was "not valid UTF-8" or "not a single JSON object" (a JPEG given
to ``validate`` or ``stats``: "21 lines that are not a JSON object"), with no word of what it was.
"""

from __future__ import annotations

import shlex
from typing import IO

from .. import _storage as storage
from .._errors import ManifestError
from .line import GZIP_MAGIC

#: byte order marks of the encodings a manifest is sometimes saved in by mistake (Windows
#: PowerShell 5's ``>``, Notepad's "Unicode"), longest first: UTF-32LE's begins as UTF-16LE's
_OTHER_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
               (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def other_encoding(head: bytes) -> tuple[str, str] | None:
    """The encoding other than UTF-8 that a byte order mark at the start of ``head`` says
    (``_OTHER_BOMS``), and how to say it (``is UTF-32 text (it starts with the byte order mark FF
    FE 00 00)``); None for none. The one table of them: a COCO import and the file method name a
    UTF-16 or UTF-32 annotation file with it (they said orjson's "str is not valid UTF-8:
    surrogates not allowed", or "UTF-16" for a UTF-32 file). UTF-8's own mark is not among them:
    every reader drops it."""
    for bom, encoding in _OTHER_BOMS:
        if head.startswith(bom):
            return encoding, f"is {encoding} text (it starts with the byte order mark {bom.hex(' ').upper()})"
    return None


#: (what the file is, its signature as (offset, bytes) pairs, all of which it must hold): the
#: files a manifest's neighbours are (the images it lists, archives, documents, columnar data).
#: Every first pair is at offset 0 and none is printable text there, where a JSON line starts
#: with ``{``, white space or a byte order mark
_SIGNATURES: tuple[tuple[str, tuple[tuple[int, bytes], ...]], ...] = (
    ("a JPEG image", ((0, b"\xff\xd8\xff"),)),
    ("a PNG image", ((0, b"\x89PNG\r\n\x1a\n"),)),
    ("a GIF image", ((0, b"GIF8"),)),
    ("a TIFF image", ((0, b"II*\x00"),)),
    ("a TIFF image", ((0, b"MM\x00*"),)),
    ("a WebP image", ((0, b"RIFF"), (8, b"WEBP"))),
    ("an MP4 or MOV video", ((0, b"\x00\x00"), (4, b"ftyp"))),
    ("a PDF document", ((0, b"%PDF-"),)),
    ("a ZIP archive (or a .docx, .xlsx)", ((0, b"PK\x03\x04"),)),
    ("xz-compressed data", ((0, b"\xfd7zXZ\x00"),)),
    ("bzip2-compressed data", ((0, b"BZh"),)),
    ("zstd-compressed data", ((0, b"\x28\xb5\x2f\xfd"),)),
    ("a 7-Zip archive", ((0, b"7z\xbc\xaf\x27\x1c"),)),
    ("a Parquet file", ((0, b"PAR1"),)),
    ("an Arrow file", ((0, b"ARROW1"),)),
)
#: the bytes read to tell them
_HEAD = 12


def refuse_not_text(f: IO[bytes], url: str) -> None:
    """A gzip-compressed manifest (``x.manifest.gz``, or one named ``.manifest``), one in UTF-16
    or UTF-32 (told by its byte order mark), or a file of another kind (``_SIGNATURES``), refused
    in one line, exit 1, before any line is read. It is not decoded instead: ``annotate``,
    ``validate``, ``stats`` and ``evaluate`` read a file in byte ranges, and no range of a gzip
    stream but the first can be read on its own; a job's output keeps its input's bytes, in UTF-8.
    ``f`` is at its start and is left there: a local file (a FIFO too, which cannot seek back) is
    peeked at, another is read and sought back."""
    peek = getattr(f, "peek", None)
    if peek is not None:
        head = peek(_HEAD)[:_HEAD]
    elif f.seekable():
        head = f.read(_HEAD)
        f.seek(0)
    else:  # nothing to go back to: the lines' own rules speak
        return
    name = storage.redact_url(str(url))  # a Path, from the library
    base = name.rsplit("/", 1)[-1]
    if head.startswith(GZIP_MAGIC):
        # a local file's path as given, quoted (the user runs it where they are); a URL's file name
        given = shlex.quote(name.removeprefix("file://")) if "://" not in name.removeprefix("file://") else base
        how = (f"gunzip -k {given}" if base.endswith(".gz")  # gunzip wants .gz
               else f"gunzip -c {given} > {shlex.quote('plain-' + base)}")
        raise ManifestError(f"{name} is gzip-compressed; manifests are read as plain text: decompress it "
                            f"({how}) and give the decompressed file", rule="input-gzip")
    if (found := other_encoding(head)) is not None:
        encoding, said = found
        raise ManifestError(f"{name} {said}; manifests are UTF-8: convert it (iconv -f {encoding} -t UTF-8 {base} > "
                            f"utf8-{base}) and give the converted file", rule="input-encoding")
    for what, signature in _SIGNATURES:
        if all(head.startswith(part, offset) for offset, part in signature):
            lists = " that lists it" if what.endswith(("image", "video")) else ""
            raise ManifestError(f"{name} is {what}, not a manifest (JSON Lines text, one JSON object a line): "
                                f"give the manifest{lists}", rule="input-not-text")
