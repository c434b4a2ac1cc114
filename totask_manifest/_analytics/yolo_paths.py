"""Where each image's label file goes in a YOLO folder, and the check that no two lines share one.

The folders are the sources' own below the deepest folder they all share (``common_folder``, folded
over the first read of the manifest), so every label pairs with its image the way trainers look
labels up, whatever the file names. A folder named ``images`` among them is written ``images_``:
Ultralytics replaces the *last* ``/images/`` of an image's path, so ``images/train/images/x.jpg``
would look for ``images/train/labels/x.txt`` (Darknet replaces the first, which both layouts
satisfy).

The export writes in a second read; ``TakenPaths`` then remembers the label paths written as a
64-bit hash of each in an ``IntMap`` (16 bytes a slot, where a set of the strings held hundreds
of bytes a line). A hash met again is checked exactly: the earlier line's path is found again
from the manifest, so two different paths whose hashes collide are both written, never merged.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from urllib.parse import urlsplit

from .._compact import IntMap
from .._errors import ManifestError


def object_path(source: str | None, number: int) -> str:
    """The path part of a data object's reference (``s3://b/k/x.jpg`` -> ``b/k/x.jpg``), normalised."""
    if not source or not source.strip():
        return f"line-{number}"
    if source.startswith(("http://", "https://")):  # a query string or fragment is no part of the file
        parts = urlsplit(source)
        source = parts.netloc + parts.path
    path = source.split("://", 1)[1] if "://" in source else source
    path = posixpath.normpath(path.replace("\\", "/"))
    return path


class CommonFolder:
    """The deepest folder shared by every path ``add``-ed; ``""`` when absolute and relative
    paths are mixed (each is then kept whole), or when there was none."""

    def __init__(self) -> None:
        self._common: str | None = None
        self._mixed = False

    def add(self, path: str) -> None:
        if self._mixed:
            return
        folder = posixpath.dirname(path)
        try:
            self._common = posixpath.commonpath([folder] if self._common is None else [self._common, folder])
        except ValueError:  # absolute and relative paths mixed
            self._mixed = True

    @property
    def path(self) -> str:
        return "" if self._mixed or self._common is None else self._common


def label_path(number: int, source: str | None, common: str) -> tuple[str, str]:
    """``(label file labels/<dirs>/<stem>.txt, image images/<dirs>/<name>)`` of one line."""
    path = object_path(source, number)
    rel = posixpath.relpath(path, common) if common else path.lstrip("/")
    parts = ["__" if part == ".." else part for part in rel.split("/")]  # never above labels/
    rel = "/".join([*("images_" if part == "images" else part for part in parts[:-1]), parts[-1]])
    stem, dot, suffix = rel.rpartition(".")
    if not dot or "/" in suffix:
        stem = rel
    return f"labels/{stem}.txt", "images/" + rel


class TakenPaths:
    """The label paths already written; ``path_of(line)`` finds a line's path again (read from the
    manifest: only when a hash is met twice, which is a duplicate but for a 64-bit collision)."""

    def __init__(self, path_of: Callable[[int], str]) -> None:
        self._path_of = path_of
        self._hashes = IntMap()  # hash of a label path -> the line that took it
        self._collided: dict[str, int] = {}  # paths whose hash an earlier, different path had: held whole

    def take(self, label: str, image: str, number: int) -> None:
        """Record ``label`` for line ``number``; refuses a label an earlier line took."""
        first = self._collided.get(label)
        if first is None:
            key = int.from_bytes(hashlib.blake2b(label.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                 "little", signed=True)
            first = self._hashes.setdefault(key, number)
            if first == number:
                return
            if self._path_of(first) != label:  # two paths, one hash: both are written
                self._collided[label] = number
                return
        raise ManifestError(f"line {first} and this line label the same image ({image[len('images/'):]}); a YOLO "
                            "folder holds one label file per image", line=number, key="source-ref",
                            rule="yolo-duplicate-image")
