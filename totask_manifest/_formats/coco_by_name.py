"""One image of a COCO document of several, picked by the file name a manifest line names.

A dataset-wide COCO file (``instances.json``) holds many images. A file-method job whose lines
each name such a file labels each line from the image whose ``file_name`` names the line's
``source-ref``: the file name's path parts are the last parts of the source's path, so
``img_002.jpg`` and ``train/img_002.jpg`` both name ``s3://bucket/train/img_002.jpg`` and
``val/img_002.jpg`` does not. Parts are compared as written, letter case included (an http(s)
URL's path is percent-decoded first, as its server reads it, and a ``file://`` URL's, as RFC 8089
writes a path in one: ``Path.as_uri()`` makes ``my image.jpg`` ``my%20image.jpg``; ``.`` and
empty parts are left out). Two images that both name the source are refused: which one was meant is nowhere said. No
image naming it fails the line, naming the file name looked for. A document of one image is not
read here: it is the line's, whatever its ``file_name`` (``coco.coco_to_gt``).

The document is indexed once (``CocoImages``), so a job reads and parses it once, not once a line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from .._errors import json_text
from .coco import FMT
from .model import FormatError

#: schemes whose URL's path is percent-encoded (a plain path, an object store's key are as written)
_DECODED_SCHEMES = ("http", "https", "file")


def path_parts(path: str, *, file_name: bool = False) -> tuple[str, ...]:
    """The parts of a file name or a source's path that a match compares (the module docstring):
    a URL's query and fragment (a presigned URL's signature) are no part of the file's name. A
    ``file_name`` written on Windows (``train\\img_002.jpg``) is split at its backslashes too:
    it never matched a source's path."""
    if "://" in path:
        split = urlsplit(path)
        path = unquote(split.path) if split.scheme.lower() in _DECODED_SCHEMES else split.path
    elif file_name:
        path = path.replace("\\", "/")
    return tuple(part for part in path.split("/") if part not in ("", "."))


def holds_several_images(doc: Any) -> bool:
    """Whether ``doc`` is a COCO document of more than one image (read with ``CocoImages``)."""
    return isinstance(doc, Mapping) and isinstance(doc.get("images"), list) and len(doc["images"]) > 1


class CocoImages:
    """A COCO document of several images, indexed by file name and image id: ``one_image`` gives
    the one-image document a line converts, as if its own file held it. Built once a job for each
    such document; it keeps the document's images and annotations (the bulk of its memory), not
    its bytes."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        images = doc["images"]
        self.count = len(images)
        self._images = images
        self._categories = doc.get("categories")
        #: the last part of a file name -> (index, all its parts) of each image it ends one
        self._by_name: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        #: images without a file name (absent, null, empty): none can be matched to a line
        self.unnamed = 0
        ids = self._index_images(images)
        self._annotations = self._by_image(doc.get("annotations", []), ids)

    def _index_images(self, images: list[Any]) -> dict[Any, int]:
        """Image id -> index. An image without an id, or whose id is another's, is refused: its
        annotations, which name an image by id alone, could not be told from another's."""
        ids: dict[Any, int] = {}
        for n, image in enumerate(images):
            if not isinstance(image, Mapping) or image.get("id") is None:
                raise FormatError("image needs an 'id' (its annotations name it by id)", fmt=FMT, key=f"images[{n}]")
            if image["id"] in ids:
                raise FormatError(f"image id {json_text(image['id'])} is also images[{ids[image['id']]}]'s; one id "
                                  "names one image", fmt=FMT, key=f"images[{n}].id")
            ids[image["id"]] = n
            name = image.get("file_name")
            if isinstance(name, str) and (parts := path_parts(name, file_name=True)):
                self._by_name.setdefault(parts[-1], []).append((n, parts))
            else:  # no line can pick it: said where a line finds no image
                self.unnamed += 1
        return ids

    @staticmethod
    def _by_image(annotations: Any, ids: Mapping[Any, int]) -> dict[Any, list[Any]]:
        """Annotations grouped by image id. One naming no image of the document is refused: no
        line would ever carry it."""
        if not isinstance(annotations, list):
            raise FormatError("'annotations' must be a list", fmt=FMT, key="annotations")
        grouped: dict[Any, list[Any]] = {}
        for i, ann in enumerate(annotations):
            if not isinstance(ann, Mapping):
                raise FormatError("annotation must be an object", fmt=FMT, key=f"annotations[{i}]")
            if ann.get("image_id") not in ids:
                raise FormatError(f"image_id {json_text(ann.get('image_id'))} names no image of 'images'", fmt=FMT,
                                  key=f"annotations[{i}].image_id")
            grouped.setdefault(ann["image_id"], []).append(ann)
        return grouped

    def one_image(self, source: Any) -> dict[str, Any]:
        """The one-image document of the image whose ``file_name`` names ``source`` (the line's
        ``source-ref``); ``FormatError`` when none does or two do."""
        parts = path_parts(source) if isinstance(source, str) else ()
        if not parts:
            raise FormatError(f"document holds {self.count} images and the line has no 'source-ref' to pick one "
                              "by its file_name", fmt=FMT, key="images")
        found = [n for n, name in self._by_name.get(parts[-1], ()) if name == parts[-len(name):]]
        if not found:
            unnamed = f"; {self.unnamed} of them have no file_name to match" if self.unnamed else ""
            raise FormatError(f"document holds {self.count} images and none has the file_name {parts[-1]!r} (the "
                              f"line's source-ref, by its last path parts){unnamed}", fmt=FMT, key="images")
        if len(found) > 1:
            first, second = found[:2]
            raise FormatError(f"images[{first}] and images[{second}] both have a file_name naming the line's source-ref "
                              f"({self._images[first]['file_name']!r}, {self._images[second]['file_name']!r}); which "
                              "one was meant is nowhere said: give each a file_name with enough of its folder to tell "
                              "them apart", fmt=FMT, key=f"images[{second}].file_name")
        image = self._images[found[0]]
        return {"images": [image], "annotations": self._annotations.get(image["id"], []),
                "categories": self._categories}
