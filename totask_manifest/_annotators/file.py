"""The ``file`` method: each line names a label file somewhere; fetch it, convert it, check it.

This is ToTask's "file" pre-annotation: a model or a colleague already produced labels as files
(Ground Truth values, Synapse ``objects`` or DM v1 documents, COCO, YOLO), and the job turns
each into the line's Ground Truth label. The time goes into waiting for storage, so items are
processed on an event loop with ``concurrency`` requests in flight across batch boundaries
(``fetch.SyncFetcher.map_unordered``); the loop runs in the job's own thread between the
outcomes it hands back (``fetch.inline.InlineLoop``), so no thread hop is paid per line.

One line, start to finish (``FileAnnotator._process``):

1. ``file_source``: where the line's file is (``--url-key K`` or ``--target-specification-name
   S``), resolved against the folder of the manifest given to ``annotate`` (remembered in the
   options as ``relative_to``, so chained, cloned and resumed jobs resolve it the same way), and
   its bytes; an exported line whose URL is missing, expired or refused gets a fresh one from
   Synapse.
2. ``file_convert``: the bytes decoded and either kept as they are (documents already in the
   backend's format, ``--native``) or converted to the task type's label.
3. The job checks the label against its schema and records it (``jobs.recorder``).

``--converter MODULE:CLASS`` replaces steps 1-2 for a line by an existing ToTask plugin's
``convert_data_from_file`` (``file_plugin``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from .._credentials import run_params
from .._errors import TotaskError, UsageError
from .._fetch import FetchOptions, SyncFetcher, base_of, redact_url, scrub
from .._formats.class_names import read_class_names as load_class_names
from .._formats.coco_by_name import CocoImages
from .._formats.detect import TEXT_FORMATS, input_formats
from .._formats.model import FormatError, OtherTaskType
from .._formats.native import NATIVE_FORMATS
from .._jobs.run import JobRun
from .._manifest.naming import METADATA_SUFFIX, label_attribute_violations
from .._options import Options, nested, option
from .._task_types import get_task_type
from .base import Annotator, Failed, Item, Outcome
from .file_convert import (
    AUTO,
    FORMAT_TASK_TYPES,
    GROUNDTRUTH,
    NATIVE_ANY,
    NATIVE_CONVERT,
    NATIVE_KEEP,
    NATIVE_MODES,
    Conversion,
    read_image_size,
)
from .file_plugin import plugin_outcome
from .file_shared import SharedDocuments
from .file_source import LabelFiles, LineFailure, lookup

__all__ = ["CLASS_NAMES_HELP", "FileAnnotator", "FileOptions", "lookup", "read_image_size"]

log = logging.getLogger("totask_manifest")

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
    file_label_attribute: str | None = option(
        None, metavar="NAME", omit_default=True,
        help="the label attribute to take from a label file that is a whole Ground Truth manifest line "
        "holding several labels of the task type (a chained job's line)")
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
        self.conversion = Conversion(
            task_type=get_task_type(context.task_type).name,
            input_format=options.input_format or AUTO,
            native=options.native or NATIVE_KEEP,
            class_names=load_class_names(options.class_names) if options.class_names else None,
            allow_drop=bool(options.allow_drop),
            label_attribute=options.file_label_attribute or None,
            submit_empty=bool(options.submit_empty),
        )
        self.policy = options.fetch.policy()
        base = options.fetch.relative_to or (base_of(context.manifest_url) if context.manifest_url else None)
        self.files = LabelFiles(spec=options.target_specification_name or None, url_key=options.url_key or None,
                                base=base, job_options=context.options, fetcher=lambda: self._fetcher().fetcher)
        self.plugin: Any = None
        if options.converter:
            from .._synapse.plugin import FILE_HOOK, job_params, load_plugin

            self.plugin = load_plugin(options.converter, needs=FILE_HOOK,
                                      params=run_params(options.converter_params or job_params(
                                          context.job_name, "file", context.options), "converter_params"))
        #: documents many lines name, read once (a dataset-wide COCO file: ``file_shared``)
        self.shared = SharedDocuments(self.conversion.shared_form, failed=lambda exc: self._failed(exc, None))
        self._sync: SyncFetcher | None = None

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
            if options.converter_params:  # a credential kept masked, or by a variable unset now: refused before the job runs
                run_params(options.converter_params, "converter_params")
        name = get_task_type(task_type).name
        kept = native != NATIVE_CONVERT and (fmt in NATIVE_FORMATS or (native == NATIVE_ANY and fmt not in TEXT_FORMATS))
        if fmt in FORMAT_TASK_TYPES and name not in FORMAT_TASK_TYPES[fmt] and not kept:
            raise UsageError(
                f"--input-format {fmt} cannot express task type {name}; "
                f"it expresses {', '.join(sorted(FORMAT_TASK_TYPES[fmt]))}"
            )
        if options.file_label_attribute is not None:
            cls._check_file_label_attribute(options.file_label_attribute, fmt, name)
        if fmt == "yolo" and not options.class_names:
            raise UsageError("--input-format yolo needs --class-names FILE (YOLO files number their classes)")
        if options.class_names:
            load_class_names(options.class_names)
        options.fetch.check()

    @classmethod
    def class_names(cls, options: FileOptions, task_type: str) -> tuple[list[str], str] | None:
        """``--class-names``: the ids of every label converted are that file's (a document naming
        a class otherwise fails its line)."""
        if not options.class_names:
            return None
        return load_class_names(options.class_names), f"--class-names {options.class_names}"

    @staticmethod
    def _check_file_label_attribute(name: str, fmt: str, task_type: str) -> None:
        """Refuse an attribute no label file can hold before the job exists: stored, it would fail
        every line, and clone, chain and resume would carry it on (Ground Truth's naming rules,
        ``naming.label_attribute_violations``, with the job's task type: a ``-ref`` suffix is
        required of a semantic segmentation label and refused of any other, a rule that only
        each line's label told before; a ``-metadata`` key is a likely slip for its attribute)."""
        if fmt not in (AUTO, GROUNDTRUTH):
            raise UsageError(f"--file-label-attribute names a label of a Ground Truth manifest line; "
                             f"--input-format {fmt} files hold none")
        if not name:
            raise UsageError("--file-label-attribute is empty; give the label attribute to take from each label file")
        if name.endswith(METADATA_SUFFIX) and name != METADATA_SUFFIX:
            raise UsageError(f"--file-label-attribute {name!r} is a metadata key; give the attribute, not its "
                             f"metadata key: --file-label-attribute {name[: -len(METADATA_SUFFIX)]}")
        found = label_attribute_violations(name, task_type)
        if found:
            raise UsageError(f"--file-label-attribute: {found[0].message}")

    # -- annotation ----------------------------------------------------------------------------

    def _fetcher(self) -> SyncFetcher:
        if self._sync is None:
            self._sync = SyncFetcher(self.policy, inline=True)
        return self._sync

    def annotate(self, items: Iterable[Item]) -> Iterator[tuple[Item, Outcome]]:
        """Outcomes in completion order. A quarter more lines than ``concurrency`` (one at least)
        are pulled, each run by a worker: when a request ends, a worker waiting for one of the
        fetcher's slots (``fetch.slots``) takes it in the same pass of the loop, and a line waiting
        out a retry's backoff leaves its slot to another; more pulled lines would only wait, and would still
        be finished by a job told to stop."""
        concurrency = self.policy.concurrency
        yield from self._fetcher().map_unordered(self._process, items, concurrency + max(1, concurrency // 4))

    def close(self) -> None:
        if self._sync is not None:
            if self.files.has_synapse:
                try:
                    self._sync.loop_thread.run(self.files.aclose(), timeout=10)
                except Exception:  # closing must not hide the job's outcome
                    log.debug("closing the Synapse client failed", exc_info=True)
            self._sync.close()
            self._sync = None

    async def _process(self, item: Item) -> Outcome:
        """One line, start to finish; never raises (a bad line fails alone)."""
        try:
            if self.plugin is not None:
                return await plugin_outcome(self.plugin, item, self.files, submit_empty=self.conversion.submit_empty)
            conversion = self.conversion
            url = await self.files.url(item)
            read = await self.shared.read(url, lambda: self._read(item, url))
            if isinstance(read, Failed):
                return read
            doc, fmt = read
            if isinstance(doc, CocoImages):  # a document of many images: the one the line's source-ref names
                doc = doc.one_image(item.record.get("source-ref"))
            kept = conversion.kept_format(fmt)
            if kept is not None:
                return conversion.kept(doc, kept, url)
            image_size = await self._image_size(item) if conversion.needs_image_size(fmt) else None
            try:
                return conversion.label(doc, fmt, image_size)  # the job checks every label (jobs.recorder), once
            except OtherTaskType as exc:  # the wrong file, not a damaged one: named, as a file that is no JSON
                return _named(url, exc)
        except Exception as exc:
            return self._failed(exc, item)

    @staticmethod
    def _failed(exc: Exception, item: Item | None) -> Failed:
        """The outcome of a line whose work raised ``exc`` (``item``: None for a read whose failure is
        remembered for later lines, ``file_shared``, which words it as each line would)."""
        if isinstance(exc, LineFailure):
            return Failed(exc.reason)
        if isinstance(exc, FormatError):
            return Failed(f"format: {exc}")
        if isinstance(exc, TotaskError):
            return Failed(scrub(str(exc)))
        # a bug or an unforeseen document shape: fail this line, keep the job
        if item is not None:
            log.debug("line %s: unexpected error", item.number, exc_info=exc)
        return Failed(f"internal error: {type(exc).__name__}: {scrub(str(exc), 160)}")

    async def _read(self, item: Item, url: str) -> tuple[Any, str] | Failed:
        """The line's document and its format, or the failure of an empty file or of one whose format
        cannot be told (named: ``detect`` names no file)."""
        url, body = await self.files.fetch(item, url)
        empty = self.conversion.empty(body, url)
        if empty is not None:
            return empty
        try:
            return self.conversion.decode(body, url)
        except FormatError as exc:  # a document of no format known (``{}``): the wrong file, named
            return _named(url, exc)

    async def _image_size(self, item: Item) -> Any:
        """The line's ``image_size`` if it has one, else read from the image ``source-ref`` names."""
        size = item.record.get("image_size")
        if size is not None:
            return size
        return read_image_size(await self.files.image(item))


def _named(url: str, exc: FormatError) -> Failed:
    """The failure of a line whose label file is the wrong one (a format it cannot tell, a task type
    the job's is not), naming the file without its secrets (``redact_url``): the error alone names
    no file, so a job over many files left the user to find which one."""
    return Failed(f"format: {redact_url(url)}: {exc}")

