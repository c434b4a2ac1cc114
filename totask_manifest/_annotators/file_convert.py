"""From a label file's bytes to the line's outcome: the second step of the ``file`` method.

The body is decoded (JSON, or text for YOLO), its format detected (``--input-format auto``),
and then either kept or converted:

- a document already in the backend's format (DM schema v1, Synapse ``objects``; with
  ``native: any`` every JSON document) travels as it is, as a custom label naming its format
  (``formats.native``), whatever the task type; with ``native: keep`` it must pass its format's
  own schema;
- anything else (and everything with ``native: convert``) is converted to the task type's
  Ground Truth label (``formats.detect.to_label``), refusing a conversion that would drop
  something unless ``allow_drop``.

The label itself is checked against its schema once, by the job (``jobs.recorder``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .._errors import json_error_detail
from .._fetch import redact_url, scrub
from .._formats.coco import images_of
from .._formats.coco_by_name import CocoImages, holds_several_images
from .._formats.detect import TEXT_FORMATS, detect_input_format, to_label
from .._formats.model import FormatError
from .._formats.native import ANY, NATIVE_FORMATS, empty_failure, native_label, refused_as_empty
from .._manifest.file_kind import other_encoding
from .._outcomes import Failed, Labeled, Outcome
from .._synapse.taskdata import loads_exact
from .file_source import LineFailure

AUTO = "auto"
GROUNDTRUTH = "groundtruth"
DETECTION = "object-detection"
#: formats that carry no image size: for bounding boxes the size comes from the line or the image
SIZELESS_FORMATS = frozenset({"synapse-objects", "dm-schema-v1", "yolo"})
#: task types each format can express (``groundtruth`` expresses every type)
FORMAT_TASK_TYPES: dict[str, frozenset[str]] = {
    "coco": frozenset({DETECTION}),
    "yolo": frozenset({DETECTION}),
    "synapse-objects": frozenset({DETECTION, "image-classification", "image-classification-multilabel"}),
    "dm-schema-v1": frozenset({DETECTION, "image-classification", "image-classification-multilabel"}),
}
#: what happens to documents in the backend's own format (see the module docstring)
NATIVE_KEEP, NATIVE_ANY, NATIVE_CONVERT = "keep", "any", "convert"
NATIVE_MODES = (NATIVE_KEEP, NATIVE_ANY, NATIVE_CONVERT)
_BOM = b"\xef\xbb\xbf"


def read_image_size(data: bytes) -> tuple[int, int, int]:
    """(width, height, depth) from an image's header; Pillow decodes no pixels for this."""
    from .._imaging import ImageError, read_info

    try:
        info = read_info(data)
    except ImageError as exc:
        raise LineFailure(f"image size: {scrub(exc.reason, 160)}") from None
    return info.width, info.height, info.depth


def _refuse_not_utf8(body: bytes, url: str) -> None:
    """A JSON body that is no UTF-8 fails as ``not-utf8`` (the README's rule), saying what it is:
    a UTF-16 file (Notepad's "Unicode") failed as ``not-json``, in orjson's words ("str is not
    valid UTF-8: surrogates not allowed"). Asked only of a body JSON refused: no cost otherwise."""
    if (found := other_encoding(body[:4])) is not None:  # the manifests' table: a UTF-32 file is no UTF-16 one
        raise LineFailure(f"parse: {redact_url(url)} {found[1]}, not UTF-8 text: save it as UTF-8") from None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineFailure(f"parse: {redact_url(url)} is not UTF-8 text ({exc.reason})") from None


@dataclass(frozen=True)
class Conversion:
    """How a job turns documents into labels: its task type and the file options that bear on it."""

    task_type: str
    input_format: str = AUTO
    native: str = NATIVE_KEEP
    class_names: list[str] | None = None
    allow_drop: bool = False
    #: the attribute to take from a Ground Truth manifest line holding several labels (``--file-label-attribute``)
    label_attribute: str | None = None
    #: keep an empty document (a ``schema: any`` ToTask run submits it, as the SDK's file method)
    submit_empty: bool = False

    def empty(self, body: bytes, url: str) -> Failed | None:
        """The failure of a file with no content: only a declared YOLO file may be empty (an image
        without boxes); any other is a lost file."""
        if not body.removeprefix(_BOM).strip() and self.input_format != "yolo":
            return Failed(f"empty annotation file: {redact_url(url)} has no content", rule="empty-annotation-file")
        return None

    def decode(self, body: bytes, url: str) -> tuple[Any, str]:
        """The document (parsed JSON, or text for YOLO) and its format."""
        if body.startswith(_BOM):
            body = body[len(_BOM):]
        fmt = self.input_format
        if fmt in TEXT_FORMATS:
            try:
                return body.decode("utf-8"), fmt
            except UnicodeDecodeError as exc:
                raise LineFailure(f"parse: {redact_url(url)} is not UTF-8 text ({exc.reason})") from None
        try:
            doc = loads_exact(body)  # a document kept as it is keeps its integers, as the SDK's .json()
        except ValueError as exc:
            _refuse_not_utf8(body, url)
            if fmt == AUTO:
                try:
                    detected = detect_input_format(body)
                except FormatError:
                    detected = None
                if detected in TEXT_FORMATS:
                    return body.decode("utf-8"), detected
            raise LineFailure(f"parse: {redact_url(url)} is not valid JSON ({scrub(json_error_detail(exc), 160)})") from None
        if fmt == AUTO:
            try:
                fmt = detect_input_format(doc)
            except FormatError:
                if self.native != NATIVE_ANY:
                    raise
                fmt = ANY  # with native: any, a document of no known format still travels as it is
        return doc, fmt

    def kept_format(self, fmt: str) -> str | None:
        """The format a document travels as, unconverted; None when it is converted."""
        if self.native == NATIVE_CONVERT or fmt in TEXT_FORMATS:
            return None
        if fmt in NATIVE_FORMATS or self.native == NATIVE_ANY:
            return fmt
        return None

    def kept(self, doc: Any, fmt: str, url: str) -> Outcome:
        """A document kept as it is (``kept_format``): a custom label, or why it cannot be one
        (an empty one names ``url``, the file it came from)."""
        if refused_as_empty(doc, fmt, submit_empty=self.submit_empty):
            return empty_failure(redact_url(url))
        problem = document_problem(doc, fmt) if self.native == NATIVE_KEEP else None
        return Failed(problem) if problem else native_label(doc, fmt)

    def shared_form(self, doc: Any, fmt: str) -> CocoImages | None:
        """The form many lines share of a document they all name (``file_shared``): a converted
        COCO document of several images, indexed by file name (``coco_by_name``); None for
        any other document, which is the line's own. A document read as COCO that is not
        (``--input-format coco`` on another JSON) raises here, as its conversion would on each
        line: the failure is remembered for the URL, not fetched and parsed again a line."""
        if fmt != "coco" or self.kept_format(fmt) is not None:
            return None
        images_of(doc)
        return CocoImages(doc) if holds_several_images(doc) else None

    def needs_image_size(self, fmt: str) -> bool:
        """Boxes from a format that carries no image size need the line's (or the image's)."""
        return self.task_type == DETECTION and fmt in SIZELESS_FORMATS

    def label(self, doc: Any, fmt: str, image_size: Any) -> Labeled:
        """The document converted to the task type's label (``FormatError`` when it cannot be)."""
        return to_label(doc, fmt, self.task_type, image_size=image_size, class_names=self.class_names,
                        allow_drop=self.allow_drop, label_attribute=self.label_attribute)


def document_problem(doc: Any, fmt: str) -> str | None:
    """The violations of the format's own schema (``schemas/dm-schema-v1.json``,
    ``schemas/synapse-objects.json``) by a document kept as it is, or None."""
    if fmt not in NATIVE_FORMATS:
        return None
    try:
        from .._manifest.schemas import format_path
    except ImportError:  # pragma: no cover - validation always ships
        return None
    check = _format_validator(fmt)
    if check.is_valid(doc):
        return None
    errors = [f"{format_path(err.path) or '/'}: {err.message}" for err in check.errors(doc)]
    if not errors:
        return None
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"schema: {fmt}: " + "; ".join(errors[:3]) + more


@functools.cache
def _format_validator(fmt: str) -> Any:
    """The compiled schema of a format (compiling costs far more than checking)."""
    from .._manifest.schemas import validator

    return validator(fmt)
