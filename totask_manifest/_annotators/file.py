"""The ``file`` method: each line names a label file somewhere; fetch it, convert it, check it.

This is ToTask's "file" pre-annotation: a model or a colleague already produced labels as files
(Ground Truth values, Synapse ``objects`` or DM v1 documents, COCO, YOLO), and the job turns
each into the line's Ground Truth label. The time goes into waiting for storage, so items are
processed on an event loop with ``concurrency`` requests in flight across batch boundaries
(``fetch.SyncFetcher.map_unordered``); the loop runs in the job's own thread between the
outcomes it hands back (``fetch.inline.InlineLoop``), so no thread hop is paid per line.

Where a line's file is: ``--url-key K`` (a key, or a dotted path into nested objects) or
``--target-specification-name S`` (the Synapse files map an exported line carries under
``synapse.files``). Relative references resolve against the folder of the manifest given to
``annotate`` (remembered in the options as ``relative_to``, so chained, cloned and resumed jobs
resolve them the same way).

A document already in the backend's format (DM schema v1, Synapse ``objects``; with ``native:
any`` every JSON document) is not converted: it travels as it is, as a custom label naming its
format (``formats.native``), whatever the task type. ``native: convert`` converts it to the task
type instead, refusing a line whose conversion would drop something unless ``allow_drop``.
An exported line whose URL is missing, expired, or refused with 400/401/403 gets a fresh one
from Synapse (``synapse.fresh_urls``). ``converter`` names an existing ToTask plugin class
whose ``convert_data_from_file`` produces the task data instead (``synapse.plugin``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from .._errors import FetchError, TotaskError, UsageError, json_kind
from .._fetch import (
    FetchOptions,
    SyncFetcher,
    base_for_line,
    base_of,
    has_scheme,
    redact_url,
    resolve_reference,
    scrub,
)
from .._formats.class_names import read_class_names as load_class_names
from .._formats.detect import TEXT_FORMATS, detect_input_format, input_formats, to_label
from .._formats.model import FormatError
from .._formats.native import ANY, EMPTY_RESULT, NATIVE_FORMATS, native_label, refused_as_empty
from .._jobs.run import JobRun
from .._options import Options, nested, option
from .._task_types import get_task_type
from .base import Annotator, Failed, Item, Outcome

log = logging.getLogger("totask_manifest")

AUTO = "auto"
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


class _LineFailure(Exception):
    """A reason to fail one line (no URL, unreadable document, no image size)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def lookup(record: dict, key: str) -> Any:
    """``record[key]``, or, when no such key exists, the dotted path ``a.b.c`` into nested objects."""
    if key in record:
        return record[key]
    node: Any = record
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(key)
    return node


def read_image_size(data: bytes) -> tuple[int, int, int]:
    """(width, height, depth) from an image's header; Pillow decodes no pixels for this."""
    from .._imaging import ImageError, read_info

    try:
        info = read_info(data)
    except ImageError as exc:
        raise _LineFailure(f"image size: {scrub(exc.reason, 160)}") from None
    return info.width, info.height, info.depth


CLASS_NAMES_HELP = "class names, one per line (line index = class id); needed for YOLO, fixes ids for the others"


@dataclass(frozen=True)
class FileOptions(Options):
    """``--method file``'s options (see the module docstring)."""

    target_specification_name: str | None = option(
        None, metavar="S", exclusive="where",
        help="take each line's file URL from the Synapse files map: synapse.files[S].url (exported lines)")
    url_key: str | None = option(
        None, metavar="K", exclusive="where",
        help="take each line's file URL from key K (a dotted path such as 'labels.url' reaches nested keys)")
    input_format: str = option(AUTO, choices=[AUTO, *input_formats()],
                               help="format of the label files (default: auto, detected per file)")
    class_names: str | None = option(None, metavar="FILE", help=CLASS_NAMES_HELP, path=True)
    native: str = option(
        NATIVE_KEEP, choices=NATIVE_MODES, omit_default=True,
        help="documents in the backend's format: keep DM v1 and objects documents as they are (default), "
        "keep every JSON document as it is (any: for schema=any targets), or convert them to the task type")
    allow_drop: bool = option(
        False, action="store_true", omit_default=True,
        help="let a conversion drop what the target cannot hold (polygons, rotation, attributes, a second "
        "media...); the line's metadata records what was dropped. Without it such a line fails")
    converter: str | None = option(
        None, metavar="MODULE:CLASS", omit_default=True,
        help="an existing ToTask plugin class whose convert_data_from_file(primary_file_url, primary_file_name, "
        "data_file_url, data_file_name, task_data=...) returns each task's data (written unchanged)")
    fetch: FetchOptions = nested(FetchOptions)
    #: keep an empty document (set by a ``schema: any`` ToTask run)
    submit_empty: bool = option(False, cli=False, omit_default=True)
    #: the ToTask parameters a converter plugin reads as ``self.params`` (set by the ToTask action)
    converter_params: dict | None = option(None, cli=False, omit_default=True)


class FileAnnotator(Annotator):
    """Labels each line from a file it names (``--method file``)."""

    name: ClassVar[str] = "file"
    Options = FileOptions

    def __init__(self, context: JobRun) -> None:
        super().__init__(context)
        options: FileOptions = self.options
        self.check(options, context.task_type)
        self.task_type = get_task_type(context.task_type).name
        self.url_key: str | None = options.url_key or None
        self.spec: str | None = options.target_specification_name or None
        self.input_format: str = options.input_format or AUTO
        self.class_names: list[str] | None = load_class_names(options.class_names) if options.class_names else None
        self.policy = options.fetch.policy()
        base = options.fetch.relative_to or (base_of(context.manifest_url) if context.manifest_url else None)
        self.base: str | None = base
        self.native: str = options.native or NATIVE_KEEP
        self.allow_drop = bool(options.allow_drop)
        #: keep an empty document (a ``schema: any`` ToTask run submits it, as the SDK's file method)
        self.submit_empty = bool(options.submit_empty)
        self.plugin: Any = None
        if options.converter:
            from .._synapse.plugin import FILE_HOOK, job_params, load_plugin

            self.plugin = load_plugin(options.converter, needs=FILE_HOOK,
                                      params=options.converter_params
                                      or job_params(context.job_name, "file", context.options))
        self._sync: SyncFetcher | None = None
        self._urls: Any = None

    @classmethod
    def check(cls, options: FileOptions, task_type: str) -> None:
        url_key, spec = options.url_key, options.target_specification_name
        if not url_key and not spec:
            raise UsageError("--method file needs --url-key K or --target-specification-name S")
        if url_key and spec:
            raise UsageError("give either --url-key or --target-specification-name, not both")
        fmt = options.input_format or AUTO
        known = [AUTO, *input_formats()]
        if fmt not in known:
            raise UsageError(f"unknown --input-format {fmt!r}; known: {', '.join(known)}")
        native = options.native or NATIVE_KEEP
        if native not in NATIVE_MODES:
            raise UsageError(f"unknown --native {native!r}; choose {', '.join(NATIVE_MODES)}")
        if options.converter:
            from .._synapse.plugin import FILE_HOOK, load_plugin

            load_plugin(options.converter, needs=FILE_HOOK)
        name = get_task_type(task_type).name
        kept = native != NATIVE_CONVERT and (fmt in NATIVE_FORMATS or (native == NATIVE_ANY and fmt not in TEXT_FORMATS))
        if fmt in FORMAT_TASK_TYPES and name not in FORMAT_TASK_TYPES[fmt] and not kept:
            raise UsageError(
                f"--input-format {fmt} cannot express task type {name}; "
                f"it expresses {', '.join(sorted(FORMAT_TASK_TYPES[fmt]))}"
            )
        if fmt == "yolo" and not options.class_names:
            raise UsageError("--input-format yolo needs --class-names FILE (YOLO files number their classes)")
        if options.class_names:
            load_class_names(options.class_names)
        options.fetch.check()

    # -- annotation ----------------------------------------------------------------------------

    def _fetcher(self) -> SyncFetcher:
        if self._sync is None:
            self._sync = SyncFetcher(self.policy, inline=True)
        return self._sync

    def annotate(self, items: Iterable[Item]) -> Iterator[tuple[Item, Outcome]]:
        """Outcomes in completion order, ``2 × concurrency`` items in flight at most."""
        yield from self._fetcher().map_unordered(self._process, items, 2 * self.policy.concurrency)

    def close(self) -> None:
        if self._sync is not None:
            if self._urls is not None:
                try:
                    self._sync.loop_thread.run(self._urls.aclose(), timeout=10)
                except Exception:  # closing must not hide the job's outcome
                    log.debug("closing the Synapse client failed", exc_info=True)
                self._urls = None
            self._sync.close()
            self._sync = None

    async def _process(self, item: Item) -> Outcome:
        """One line, start to finish; never raises (a bad line fails alone)."""
        try:
            if self.plugin is not None:
                return await self._with_plugin(item)
            url, body = await self._fetch_label_file(item)
            if not body.removeprefix(_BOM).strip() and self.input_format != "yolo":
                # only a declared YOLO file may be empty (an image without boxes); else it is a lost file
                return Failed(f"empty annotation file: {redact_url(url)} has no content", rule="empty-annotation-file")
            doc, fmt = self._decode(body, url)
            kept = self._kept_format(fmt)
            if kept is not None:
                if refused_as_empty(doc, kept, submit_empty=self.submit_empty):
                    return Failed(EMPTY_RESULT)
                problem = document_problem(doc, kept) if self.native == NATIVE_KEEP else None
                return Failed(problem) if problem else native_label(doc, kept)
            image_size = None
            if self.task_type == DETECTION and fmt in SIZELESS_FORMATS:
                image_size = await self._image_size(item)
            labeled = to_label(doc, fmt, self.task_type, image_size=image_size, class_names=self.class_names,
                               allow_drop=self.allow_drop)
            return labeled  # the job checks every label against its schema (jobs.recorder), once
        except _LineFailure as exc:
            return Failed(exc.reason)
        except FormatError as exc:
            return Failed(f"format: {exc}")
        except TotaskError as exc:
            return Failed(scrub(str(exc)))
        except Exception as exc:  # a bug or an unforeseen document shape: fail this line, keep the job
            log.debug("line %s: unexpected error", item.number, exc_info=True)
            return Failed(f"internal error: {type(exc).__name__}: {scrub(str(exc), 160)}")

    def _kept_format(self, fmt: str) -> str | None:
        """The format a document travels as, unconverted; None when it is converted."""
        if self.native == NATIVE_CONVERT or fmt in TEXT_FORMATS:
            return None
        if fmt in NATIVE_FORMATS or self.native == NATIVE_ANY:
            return fmt
        return None

    # -- fresh URLs for exported lines -------------------------------------------------------------

    def _refreshable(self, item: Item) -> bool:
        """An exported line whose file is named by specification: the backend can issue its URL again."""
        tid = item.task_id
        return self.spec is not None and isinstance(tid, int) and not isinstance(tid, bool)

    def _file_urls(self) -> Any:
        if self._urls is None:
            from .._synapse.fresh_urls import FileUrls

            self._urls = FileUrls()
        return self._urls

    async def _fresh_url(self, item: Item, why: str) -> str:
        log.debug("[task %s] %s: asking Synapse for a fresh file URL", item.display, why)
        try:
            return await self._file_urls().url(item.task_id, self.spec)
        except TotaskError as exc:
            raise _LineFailure(f"no URL: {why}, and a fresh one could not be had: {scrub(str(exc), 200)}") from None

    async def _label_file_url(self, item: Item) -> str:
        """The line's file URL; a fresh one when it is missing or has expired (exported lines)."""
        from .._synapse.fresh_urls import is_expired

        try:
            ref = self._reference(item)
        except _LineFailure as exc:
            if not self._refreshable(item):
                raise
            return await self._fresh_url(item, exc.reason.removeprefix("no URL: "))
        if self._refreshable(item) and is_expired(ref):
            return await self._fresh_url(item, "the URL has expired")
        return resolve_reference(ref, base_for_line(self.context.options, item.index, self.base))

    async def _fetch_label_file(self, item: Item) -> tuple[str, bytes]:
        from .._synapse.fresh_urls import needs_refresh

        url = await self._label_file_url(item)
        fetcher = self._sync.fetcher  # type: ignore[union-attr]
        try:
            return url, await fetcher.fetch(url)
        except FetchError as exc:
            if not (self._refreshable(item) and needs_refresh(exc)):
                raise _LineFailure(f"fetch: {exc}") from None
            first = exc
        url = await self._fresh_url(item, f"the URL was refused ({str(first).split(' (', 1)[0]})")
        try:
            return url, await fetcher.fetch(url)
        except FetchError as exc:
            raise _LineFailure(f"fetch: {exc} (with a fresh URL from Synapse)") from None

    # -- an existing ToTask plugin as the converter ------------------------------------------------

    async def _with_plugin(self, item: Item) -> Outcome:
        """``convert_data_from_file`` with the SDK's arguments; what it returns is the task data."""
        from .._synapse.fresh_urls import task_files
        from .._synapse.plugin import converted_outcome, file_name_of, hook_failure, task_data_of_line

        record = item.record
        task = None
        if self._refreshable(item) and self._has_credentials():
            task = await self._file_urls().task(item.task_id)  # the SDK reads each task right before converting
        files = task_files(task or task_data_of_line(record))
        primary = next((f for f in files.values() if isinstance(f, dict) and f.get("is_primary") and f.get("url")),
                       None)
        primary_url = primary["url"] if primary else record.get("source-ref")
        primary_name = (primary or {}).get("file_name_original") or (
            file_name_of(primary_url) if isinstance(primary_url, str) else None)
        if task is not None:
            entry = files.get(self.spec) if isinstance(files.get(self.spec), dict) else {}
            data_url, data_name = entry.get("url"), entry.get("file_name_original")
            if not data_url:
                raise _LineFailure(f"no URL: task {item.task_id} has no file of specification {self.spec!r}")
        else:
            data_url = await self._label_file_url(item)
            entry = files.get(self.spec) if self.spec and isinstance(files.get(self.spec), dict) else {}
            data_name = entry.get("file_name_original")
        data_name = data_name or file_name_of(data_url)
        try:
            converted = await asyncio.to_thread(self.plugin.convert_data_from_file, primary_url, primary_name,
                                                data_url, data_name, task_data=task or task_data_of_line(record))
        except Exception as exc:  # the plugin's own failure fails this task, as in the SDK
            return Failed(hook_failure("convert", exc))
        return converted_outcome(converted, "convert", submit_empty=self.submit_empty)

    def _has_credentials(self) -> bool:
        from .._synapse.settings import SynapseSettings

        try:
            SynapseSettings.from_env().require_credentials()
        except TotaskError:
            return False
        return True

    def _reference(self, item: Item) -> str:
        record = item.record
        if self.spec is not None:
            syn = record.get("synapse")
            files = syn.get("files") if isinstance(syn, dict) else None
            if not isinstance(files, dict):
                raise _LineFailure("no URL: the line has no synapse.files map (export it with 'totask-manifest export')")
            entry = files.get(self.spec)
            if not isinstance(entry, dict):
                have = ", ".join(sorted(map(str, files))) or "none"
                raise _LineFailure(f"no URL: synapse.files has no specification {self.spec!r} (it has: {have})")
            url = entry.get("url")
            where = f"synapse.files.{self.spec}.url"
        else:
            assert self.url_key is not None
            try:
                url = lookup(record, self.url_key)
            except KeyError:
                raise _LineFailure(f"no URL: the line has no key {self.url_key!r}") from None
            where = self.url_key
        if not isinstance(url, str) or not url.strip():
            raise _LineFailure(f"no URL: {where} is {'empty' if isinstance(url, str) else json_kind(url)}")
        return url

    def _decode(self, body: bytes, url: str) -> tuple[Any, str]:
        """The document (parsed JSON, or text for YOLO) and its format."""
        if body.startswith(_BOM):
            body = body[len(_BOM):]
        fmt = self.input_format
        if fmt in TEXT_FORMATS:
            try:
                return body.decode("utf-8"), fmt
            except UnicodeDecodeError as exc:
                raise _LineFailure(f"parse: {redact_url(url)} is not UTF-8 text ({exc.reason})") from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if fmt == AUTO:
                try:
                    detected = detect_input_format(body)
                except FormatError:
                    detected = None
                if detected in TEXT_FORMATS:
                    return body.decode("utf-8"), detected
            raise _LineFailure(f"parse: {redact_url(url)} is not valid JSON ({scrub(str(exc), 120)})") from None
        if fmt == AUTO:
            try:
                fmt = detect_input_format(doc)
            except FormatError:
                if self.native != NATIVE_ANY:
                    raise
                fmt = ANY  # with native: any, a document of no known format still travels as it is
        return doc, fmt

    async def _image_size(self, item: Item) -> Any:
        """The line's ``image_size`` if it has one, else read from the image ``source-ref`` names."""
        record = item.record
        if record.get("image_size") is not None:
            return record["image_size"]
        source = record.get("source-ref")
        if not isinstance(source, str) or not source.strip():
            raise _LineFailure(
                "image size: this format carries none, and the line has neither 'image_size' nor 'source-ref'"
            )
        try:
            url = resolve_reference(source, base_for_line(self.context.options, item.index, self.base))
            data = await self._sync.fetcher.fetch(url)  # type: ignore[union-attr]
        except FetchError as exc:
            raise _LineFailure(f"image size: {exc}") from None
        return read_image_size(data)


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


def _absolute(url: str) -> str:
    return url if has_scheme(url) else os.path.abspath(url)
