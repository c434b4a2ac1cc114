"""A YOLO export to an object store (S3): staged under a hidden prefix, put in place only whole.

Nothing can be renamed on S3, and a YOLO dataset is many files. Written straight to their names,
a re-export stopped part way (a box outside its image on line 8, a network error, Ctrl-C) left
the label files it had rewritten beside the previous export's others and its ``index.jsonl``:
a folder mixing two exports, with no word of it. So the export writes every file under
``<dst>/.yolo-stage-<uuid>/`` first; the folder is not touched until the last one is there.
Then, under the prefix's lease (``_jobs.lease``: the only writer):

1. ``<stage>/.swap`` is written: the stage is whole, its files are to go in place;
2. the previous ``index.jsonl`` is removed (a reader never finds an index naming other files);
3. each staged file is copied to its name (a server-side copy: a reader sees the old object or
   the new one), the previous export's label files not written again are removed, and
   ``index.jsonl`` comes last: it is there only when its whole export is;
4. the journal goes, then the stage.

An export stopped before step 1 removes its stage (a ``kill -9``'s is removed by the next
export); the folder is as it was. One stopped after it (the store failing, a kill) leaves a
journaled stage, and its error names the folder as mixed and says to run the export again: the
next export to the prefix finishes the stopped one from its stage first (``settle``), then
writes its own.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import re
import uuid
from collections.abc import Iterator
from typing import IO, Any

from .._errors import StorageError
from .._storage import AtomicWriter, join, redact_url

log = logging.getLogger("totask_manifest")

#: a stage's name in the dataset's folder
STAGE_PREFIX = ".yolo-stage-"
_STAGE = re.compile(r"\.yolo-stage-[0-9a-f]{32}\Z")
#: in a stage: the staged files' names, written once all are staged (the stage is then to finish)
JOURNAL = ".swap"
#: the folder's top files, ``index.jsonl`` (which names every label file) last
TOP_FILES = ("images.txt", "classes.txt", "data.yaml", "index.jsonl")


class RemoteStage:
    """The files of one export to ``dst`` (an object-store URL), staged, then put in place."""

    def __init__(self, fs: Any, dst: str) -> None:
        self.fs = fs
        self.dst = dst
        self.name = STAGE_PREFIX + uuid.uuid4().hex
        self.written: list[str] = []

    def write(self, rel: str, data: bytes) -> None:
        """A file of the dataset (``labels/a/x.txt``, ``classes.txt``), staged: an object appears
        whole or not at all, and no one reads the stage, so no temporary is needed."""
        self.written.append(rel)
        self.fs.pipe_file(_path(self.fs, join(self.dst, f"{self.name}/{rel}")), data)

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        """A file to write as a stream (``index.jsonl``), staged; one stopped part way is discarded."""
        self.written.append(rel)
        with AtomicWriter(join(self.dst, f"{self.name}/{rel}")) as f:
            yield f

    def discard(self) -> None:
        """The export stopped before its files went in place: its stage removed, the folder untouched."""
        with contextlib.suppress(Exception):
            self.fs.rm(_path(self.fs, join(self.dst, self.name)), recursive=True)

    def commit(self) -> None:
        """Every staged file to its name (see the module docstring); the stage removed."""
        finish(self.fs, self.dst, self.name, list(dict.fromkeys(self.written)), journal=True)


def settle(fs: Any, dst: str) -> None:
    """Stages an earlier export left in ``dst`` (called under the prefix's lease, so none is a
    live export's): one with a journal is finished (the folder then holds that export whole),
    one without is removed (its export never touched the folder)."""
    root = _path(fs, dst)
    with contextlib.suppress(Exception):
        fs.invalidate_cache(root)
    try:
        entries = fs.ls(root, detail=False)
    except FileNotFoundError:
        return
    for entry in entries:
        name = str(entry).rstrip("/").rsplit("/", 1)[-1]
        if not _STAGE.match(name):
            continue
        try:
            names = fs.cat_file(f"{root}/{name}/{JOURNAL}").decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            with contextlib.suppress(Exception):
                fs.rm(f"{root}/{name}", recursive=True)
            continue
        finish(fs, dst, name, [n for n in names if n], journal=False)


def finish(fs: Any, dst: str, name: str, rels: list[str], *, journal: bool) -> None:
    """Steps 1 to 4 of the module docstring for the stage ``name`` holding ``rels``; the journal
    is written first where ``journal`` (else it is there: a stopped export's, finished again).
    An error from step 1 on names the folder as mixed and what to do; so does an interrupt (logged,
    then raised on: a ``KeyboardInterrupt`` is no error, and "interrupted" alone hid the mixed folder)."""
    root, stage = _path(fs, dst), _path(fs, join(dst, name))
    try:
        if journal:
            fs.pipe_file(f"{stage}/{JOURNAL}", "".join(r + "\n" for r in rels).encode())
    except Exception:
        with contextlib.suppress(Exception):
            fs.rm(stage, recursive=True)
        raise
    try:
        labels = [r for r in rels if r.startswith("labels/")]
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(f"{root}/index.jsonl")
        if labels:
            fs.copy([f"{stage}/{r}" for r in labels], [f"{root}/{r}" for r in labels])
        _remove_others(fs, root, set(labels))
        for top in TOP_FILES:
            if top in rels:
                fs.copy(f"{stage}/{top}", f"{root}/{top}")
            else:
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(f"{root}/{top}")
        fs.rm_file(f"{stage}/{JOURNAL}")  # done: what is left in the stage is only to remove
    except BaseException as exc:
        shown = redact_url(dst)
        why = f"cannot write {shown}: {getattr(exc, 'strerror', None) or exc}" if isinstance(exc, Exception) \
            else f"{shown}: interrupted"
        mixed = (f"{why}; the export stopped while putting its files in place, so {shown} now holds part of it and "
                 f"part of the previous one (its index.jsonl may be missing); run the convert to {shown} again: it "
                 f"first finishes this export from {name}/, then writes its own")
        if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: still an interrupt (its exit code), said whole
            log.error("%s", mixed)
            raise
        raise StorageError(mixed) from None
    with contextlib.suppress(Exception):
        fs.rm(stage, recursive=True)


def _remove_others(fs: Any, root: str, labels: set[str]) -> None:
    """The label files a previous export left that this one did not write again (a writer's
    ``.tmp-*`` temporaries are left to the stale-temporary rules)."""
    with contextlib.suppress(Exception):  # s3fs caches listings: what is there now
        fs.invalidate_cache(f"{root}/labels")
    try:
        found = fs.find(f"{root}/labels")
    except FileNotFoundError:
        return
    others = []
    for path in found:
        rel = "labels/" + path[len(root) + len("/labels"):].lstrip("/")
        if rel not in labels and not posixpath.basename(rel).startswith(".tmp-"):
            others.append(path)
    if others:
        fs.rm(others)


def _path(fs: Any, url: str) -> str:
    return str(fs._strip_protocol(url)).rstrip("/")
