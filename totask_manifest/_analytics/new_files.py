"""The files an export makes, so one stopped part way (an error, Ctrl-C) removes them again.

A conversion that writes many files before its last one (COCO masks before the manifest, YOLO
label files on S3) would otherwise leave those it finished, named by nothing. A file there before
is not the export's to remove; on a local disk the folders it made for its files go too when
they are left empty.
"""

from __future__ import annotations

import contextlib
import os

from .._errors import StorageError
from .._storage import exists, is_local, remove_file, url_to_fs


class NewFiles:
    def __init__(self) -> None:
        self.files: list[str] = []
        #: local folders made for them, outermost first
        self.folders: list[str] = []
        self._known: set[str] = set()

    def note(self, url: str) -> None:
        """Before ``url`` is written: remember it (and its missing folders) if it is new."""
        if exists(url):
            return
        self.files.append(url)
        fs, path = url_to_fs(url)
        if not is_local(fs):
            return
        missing = []
        folder = os.path.dirname(os.path.abspath(path))
        while folder not in self._known and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            missing.append(folder)
            folder = os.path.dirname(folder)
        self._known.update(missing)
        self._known.add(folder)
        self.folders.extend(reversed(missing))

    def remove(self) -> None:
        """Each new file, then each folder made for them that is left empty (innermost first)."""
        for url in self.files:
            with contextlib.suppress(StorageError):
                remove_file(url)
        for folder in reversed(self.folders):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
