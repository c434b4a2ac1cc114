"""A YOLO folder that lists its images in text files (Darknet, Ultralytics), read as a manifest.

Darknet's ``obj.data`` names its lists (``train = data/train.txt``, ``valid = ...``), one image
path per line; CVAT's "YOLO 1.1" export is such a folder (``obj.data``, ``obj.names``,
``train.txt``, ``obj_train_data/`` with each image's label file beside it). Ultralytics'
``data.yaml`` may name a list file as ``train``/``val``/``test`` ("2) file: path/to/imgs.txt"),
and ``images.txt`` is the list a YOLO export of this tool writes. Without ``index.jsonl`` and
``images/``, such a folder was read as a plain one and refused, naming a label file that has its
image right beside it ("no image for obj_train_data/x.txt under images").

The paths in a list are Darknet's working folder's (``data/obj_train_data/x.jpg``, the dataset
copied to ``darknet/data``): a path is taken below the dataset folder, dropping its leading
folders until it names a file there. A label file is found as the trainers find it: the last
``/images/`` (Ultralytics), else the first, else ``/JPEGImages/`` replaced with ``/labels/``, or
beside the image, the suffix replaced with ``.txt``; an image with none is a background image (no
boxes). A label file no listed image claims is refused (its image size is unknown), as in a plain
folder; an image listed twice is one line.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from .._errors import StorageError
from .._storage import read_bytes, redact_secret_url, url_to_fs

#: list files looked for when no ``obj.data`` or ``data.yaml`` names one
LIST_FILES = ("images.txt", "train.txt", "valid.txt", "val.txt", "test.txt")
_OBJ_DATA_KEY = re.compile(r"\s*(train|valid|test)\s*=\s*(\S.*?)\s*\Z")


def list_files(src: str) -> list[str]:
    """The folder's image lists (paths below it), in the order their dataset files name them."""
    fs, root = url_to_fs(src)
    named: list[str] = []
    if fs.isfile(root + "/obj.data"):
        for line in read_bytes(root + "/obj.data").decode("utf-8", "replace").removeprefix("\ufeff").splitlines():
            m = _OBJ_DATA_KEY.match(line)
            if m:
                named.append(m.group(2))
    if fs.isfile(root + "/data.yaml"):
        from .._yaml import load_yaml

        try:
            data = load_yaml(read_bytes(root + "/data.yaml").decode("utf-8", "replace"))
        except Exception:  # a data.yaml that is not YAML: its class names are read (and refused) elsewhere
            data = None
        if isinstance(data, dict):
            for key in ("train", "val", "test"):
                values = data.get(key) if isinstance(data.get(key), list) else [data.get(key)]
                named += [v for v in values if isinstance(v, str) and v.endswith(".txt")]
    named += LIST_FILES
    found: list[str] = []
    for name in named:
        rel = _below(fs, root, name)
        if rel is not None and rel not in found:
            found.append(rel)
    return found


def list_entries(src: str, image_size: Callable[[str], tuple[int, int, int]],
                 image_suffixes: tuple[str, ...]) -> list[dict]:
    """The images the folder's lists name, each with its label file (``label`` None when it has
    none) and its size (``image_size``); ``[]`` when the folder has no list."""
    fs, root = url_to_fs(src)
    lists = list_files(src)
    protocol = src.split("://", 1)[0] + "://" if "://" in src else ""
    entries: list[dict] = []
    seen: set[str] = set()
    claimed: set[str] = set()
    for listed in lists:
        # a BOM (Notepad's) is no part of the first path, as it is none of a label file's first class
        text = read_bytes(root + "/" + listed).decode("utf-8", "replace").removeprefix("\ufeff")
        for n, raw in enumerate(text.splitlines(), start=1):
            path = raw.strip()
            if not path or path.startswith("#"):
                continue
            image = _below(fs, root, path)
            if image is None:
                raise StorageError(f"{redact_secret_url(src)}: {listed} line {n} names {path}, which is not in "
                                   "the folder (its paths are taken below it, leading folders dropped)")
            if image in seen:
                continue
            seen.add(image)
            label = _label_of(fs, root, image)
            if label is not None:
                claimed.add(label)
            url = protocol + root + "/" + image
            w, h, d = image_size(url)
            entries.append({"label": label, "source-ref": url, "width": w, "height": h, "depth": d})
    if entries:
        _refuse_unclaimed(fs, root, src, set(lists), claimed, image_suffixes,
                          {posixpath.dirname(image) for image in seen})
    return entries


def _below(fs: object, root: str, path: str) -> str | None:
    """``path`` (a list's line, as Darknet's working folder or the dataset names it) as a file
    below ``root``: as it is, else with its leading folders dropped one by one; None if none is."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    for start in range(len(parts)):
        rel = "/".join(parts[start:])
        if fs.isfile(root + "/" + rel):  # type: ignore[attr-defined]
            return rel
    return None


def _label_of(fs: object, root: str, image: str) -> str | None:
    """The label file of ``image`` (a path below ``root``) where a trainer looks for it, or None."""
    stem = image.rsplit(".", 1)[0] if "." in posixpath.basename(image) else image
    slashed = "/" + stem
    candidates = []
    if "/images/" in slashed:
        head, _, tail = slashed.rpartition("/images/")
        candidates.append(head + "/labels/" + tail)  # Ultralytics: the last
        candidates.append(slashed.replace("/images/", "/labels/", 1))  # Darknet: the first
    if "/JPEGImages/" in slashed:
        candidates.append(slashed.replace("/JPEGImages/", "/labels/", 1))
    candidates.append(slashed)  # beside the image
    for candidate in candidates:
        rel = candidate.lstrip("/") + ".txt"
        if fs.isfile(root + "/" + rel):  # type: ignore[attr-defined]
            return rel
    return None


def _refuse_unclaimed(fs: object, root: str, src: str, lists: set[str], claimed: set[str],
                      image_suffixes: tuple[str, ...], image_folders: set[str]) -> None:
    """A label file (a ``.txt`` beside an image, in a folder of listed images, or under
    ``labels/``) that no listed image claims would be lost from the manifest with nothing said:
    refused, named. One in a folder of listed images whose own image is gone counts too."""
    for path in sorted(fs.glob(root + "/**/*.txt")):  # type: ignore[attr-defined]
        rel = path[len(root.rstrip("/")) + 1:] if path.startswith(root.rstrip("/") + "/") else path
        if rel in claimed or rel in lists or rel == "classes.txt":
            continue
        folder, stem = posixpath.dirname(rel), posixpath.basename(rel)[:-4]
        beside = any(fs.isfile(root + "/" + posixpath.join(folder, stem + s))  # type: ignore[attr-defined]
                     for s in image_suffixes)
        if beside or folder in image_folders or rel.startswith("labels/") or "/labels/" in rel:
            raise StorageError(f"{redact_secret_url(src)}: label file {rel} belongs to no image of "
                               f"{', '.join(sorted(lists))}; add its image to a list or move it away")
